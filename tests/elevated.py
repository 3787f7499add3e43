"""A second app on the test database in which every role may add, edit and
delete on every grid, plus a probe action.

The real roles give most users read access only, so on the real app a foreign
edit is refused by the permission check before the row scope is even asked.
Here the permission check passes, and only the row scope (ScopedModelView,
ScopeFilter) stands between a user and another scope's rows.

`ProbeActionView` is a ScopedModelView with one action, `touch`, that marks the
rows it receives; `StockProbeView` is the same on stock FAB's ModelView, to show
the hole ScopedModelView closes (stock `action_post` ignores `base_filters`).
"""
import re

from flask import redirect
from flask_appbuilder import ModelView
from flask_appbuilder.actions import action

from app import create_app
from app.extensions import db
from app.models import HourRecord
from app.security import roles as R
from app.security.scope import ScopeFilter
from app.views.base import ScopedModelView
from app.fab.datamodel import CEInterface

GRIDS = ["HourRecordView", "PersonView", "UnitView", "RegionView", "AuditLogView"]
CRUD = ["can_list", "can_show", "can_add", "can_edit", "can_delete"]
TOUCHED = "PROBE-TOUCHED"


def _touch(items):
    items = items if isinstance(items, list) else [items]
    for item in items:
        item.review_comment = TOUCHED
    db.session.commit()
    return redirect("/")


class ProbeActionView(ScopedModelView):
    route_base = "/probeaction"
    datamodel = CEInterface(HourRecord)
    list_columns = ["course_name"]

    @action("touch", "touch", "", "fa-hand-o-up", multiple=True, single=True)
    def touch(self, items):
        return _touch(items)


class StockProbeView(ModelView):
    route_base = "/stockprobe"
    datamodel = CEInterface(HourRecord)
    list_columns = ["course_name"]
    base_filters = [["id", ScopeFilter, None]]

    @action("touch", "touch", "", "fa-hand-o-up", multiple=True, single=True)
    def touch(self, items):
        return _touch(items)


def elevated_roles():
    roles = R.fab_roles()
    for role in R.ROLE_PERMISSIONS:
        extra = [[re.escape(v) + r"\Z", re.escape(p) + r"\Z"] for v in GRIDS for p in CRUD]
        extra += [[r"(ProbeActionView|StockProbeView)\Z", r"(touch|can_list|can_show)\Z"]]
        roles[role] = list(roles[role]) + extra
    return roles


def make_elevated_app(config_class):
    class Elevated(config_class):
        FAB_ROLES = elevated_roles()

    app = create_app(Elevated)
    with app.app_context():
        app.appbuilder.add_view_no_menu(ProbeActionView)
        app.appbuilder.add_view_no_menu(StockProbeView)
    return app


def dispose(app):
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
