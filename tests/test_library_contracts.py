"""What the kept speed-ups rely on in Flask-AppBuilder's non-public names
(docs/performance.md lists each with what it buys).  Each test fails when FAB
stops calling the hook the way the app expects, so an upgrade shows it here
instead of as a slow or wrong page.  Pinned: flask-appbuilder in requirements.txt."""
import inspect

from flask_appbuilder.api import ModelRestApi
from flask_appbuilder.baseviews import BaseCRUDView
from flask_appbuilder.security.sqla.manager import SecurityManager

from app.views.hours import HourRecordView


def _params(func):
    return list(inspect.signature(func).parameters)


def test_fab_asks_builtin_roles_through_the_hook_the_permission_cache_wraps(app, login_as, monkeypatch):
    """Permission caching (app/views/security.py CESecurityManager
    ._has_access_builtin_roles): FAB's has_access asks this method for each
    builtin role; the app remembers each answer.  A second request of the same
    page asks FAB's method nothing, and the answers stay FAB's own."""
    assert _params(SecurityManager._has_access_builtin_roles) == ["self", "role", "permission_name", "view_name"]
    calls = []
    real = SecurityManager._has_access_builtin_roles

    def counted(self, role, permission_name, view_name):
        calls.append((role.name, permission_name, view_name))
        return real(self, role, permission_name, view_name)

    monkeypatch.setattr(SecurityManager, "_has_access_builtin_roles", counted)
    sm = app.appbuilder.sm
    sm.__dict__.pop("_ce_builtin_access", None)
    client = login_as("clerk_a")
    page = client.get("/hourrecordview/list/").get_data(as_text=True)
    assert "学时记录" in page and calls, "FAB no longer checks builtin roles through _has_access_builtin_roles"
    first = len(calls)
    client.get("/hourrecordview/list/")
    assert len(calls) == first  # every answer came from the cache
    with app.app_context():
        for (role_name, permission_name, view_name), answer in list(sm.__dict__["_ce_builtin_access"].items()):
            role = sm.find_role(role_name)
            assert real(sm, role, permission_name, view_name) is answer
    # and the cache widens nothing: a clerk still may not reach the accounts grid
    assert client.get("/users/list/").status_code in (302, 403)
    assert client.get("/users/list/").status_code in (302, 403)


def test_fab_builds_a_list_page_through_get_list_widget(login_as):
    """The fast grid (app/views/grid.py FastListMixin._get_list_widget): FAB's
    _list calls _get_list_widget with these arguments, and the page shown is
    the one the fast grid built (its capped count bar)."""
    params = _params(BaseCRUDView._get_list_widget)
    for name in ("filters", "actions", "order_column", "order_direction", "page", "page_size", "widgets"):
        assert name in params, (name, params)
    assert "_get_list_widget(" in inspect.getsource(BaseCRUDView._list)
    assert hasattr(BaseCRUDView, "_base_filters") and hasattr(HourRecordView, "_serialize_pk_if_composite")
    page = login_as("bureau_js").get("/hourrecordview/list/").get_data(as_text=True)
    assert 'class="pull-right ce-record-count"' in page


def test_fab_keeps_a_views_active_filters_in_the_attribute_made_per_request():
    """Per-request filters (app/fab/filters.py RequestFiltersMixin): FAB keeps a
    view's and an API's active filters in `_filters` and fills them with
    get_filter_args / _handle_filters_args; the mixin makes that attribute a
    per-request copy (tests/test_grid_paging.py checks two requests at once)."""
    assert hasattr(BaseCRUDView, "_filters") and hasattr(ModelRestApi, "_filters")
    assert "self._filters" in inspect.getsource(BaseCRUDView._list)
    assert _params(ModelRestApi._handle_filters_args) == ["self", "rison_args"]
    assert "self._filters" in inspect.getsource(ModelRestApi._handle_filters_args)
