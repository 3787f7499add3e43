from flask import g, redirect, url_for
from flask_appbuilder import IndexView, expose
from flask_babel import lazy_gettext as _l

from app.security import roles as R
from app.security.scope import current_scope
from app.services import sessions, workbench

# Shortcuts on the home page: (view, permission, label, endpoint, figure key).
# A shortcut shows only when the user has that permission.
SHORTCUTS = [
    ("DeclarationView", "can_declare", _l("申报学时"), "DeclarationView.new", None),
    ("DeclarationView", "can_mine", _l("我的学时"), "DeclarationView.mine", None),
    ("ReviewTodoView", "can_list", _l("待核准申报"), "ReviewTodoView.list", "pending"),
    ("AttachmentConfirmView", "can_list", _l("人员归属确认"), "AttachmentConfirmView.list", "attachments"),
    ("UnitApprovalView", "can_list", _l("单位注册审核"), "UnitApprovalView.list", "units"),
    ("HourRecordView", "can_list", _l("学时记录"), "HourRecordView.list", None),
    ("ImportView", "can_import", _l("批量导入"), "ImportView.index", None),
    ("DashboardView", "can_index", _l("达标统计"), "DashboardView.index", None),
    ("CertificatePrintView", "can_print", _l("打印学时证书"), "CertificatePrintView.index", None),
]


class HomeView(IndexView):
    index_template = "ce/index.html"

    @expose("/")
    def index(self):
        if not g.user or not g.user.is_authenticated:
            return redirect(url_for("AuthDBView.login"))
        scope = current_scope()
        sm = self.appbuilder.sm
        figures = {}
        shortcuts = []
        for view, perm, label, endpoint, key in SHORTCUTS:
            if not sm.has_access(perm, view):
                continue
            if key == "pending":
                figures[key] = workbench.pending_declarations(scope)
            elif key == "attachments":
                figures[key] = workbench.pending_attachments(scope)
            elif key == "units":
                figures[key] = workbench.pending_unit_registrations(scope)
            shortcuts.append((label, url_for(endpoint), figures.get(key)))
        mine = None
        if g.user.person_id and scope.person_ids:
            mine = workbench.my_year(g.user.person_id)
        role_labels = [R.ROLE_LABELS.get(r, r) for r in sorted(scope.roles)]
        from app.views.audit import audit_notices

        return self.render_template(
            self.index_template, role_labels=role_labels, user=g.user, shortcuts=shortcuts, mine=mine,
            ce_audit_notices=audit_notices(sm),
            login_notice=sessions.login_notice(g.user),
        )
