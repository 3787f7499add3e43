from flask import abort, flash, g, redirect, url_for
from flask_appbuilder import expose, has_access, permission_name
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.models import AuditLog
from app.services import audit_checks
from app.services.errors import DomainError
from app.services.jobs import get_job
from app.views.base import ScopedModelView
from app.fab.datamodel import CEInterface
from app.views.formatting import beijing_seconds


def audit_notices(sm):
    """The failed chain checks the user must see (auditors: may acknowledge them)."""
    if not sm.has_access("can_acknowledge", "AuditLogView"):
        return []
    return [(c, [audit_checks.finding_text(f) for f in audit_checks.findings_of(c)][:5])
            for c in audit_checks.open_failures()]


class AuditLogView(ScopedModelView):
    """Read-only: the log is append-only.  The 安全审计员 runs the chain check here
    (a job) and acknowledges a failed run (nightly or not)."""

    datamodel = CEInterface(AuditLog)
    base_permissions = ["can_list", "can_show", "can_verify", "can_acknowledge"]
    list_template = "audit/list.html"
    list_title = show_title = _l("操作日志")
    list_columns = ["at", "username", "ip", "action", "object_type", "object_id", "region_code"]
    show_columns = list_columns + ["unit_id", "detail"]
    search_columns = ["at", "username", "action", "object_type", "object_id", "region_code"]
    order_columns = ["at"]
    formatters_columns = {"at": beijing_seconds}
    base_order = ("id", "desc")
    label_columns = {
        "at": _l("时间（北京时间）"),
        "username": _l("用户"),
        "ip": _l("来源地址"),
        "action": _l("操作"),
        "object_type": _l("对象类型"),
        "object_id": _l("对象编号"),
        "region_code": _l("区划"),
        "unit_id": _l("单位编号"),
        "detail": _l("内容（原值/新值）"),
    }

    def render_template(self, template, **kwargs):
        if template == self.list_template:
            sm = self.appbuilder.sm
            kwargs["ce_audit_notices"] = audit_notices(sm)
            kwargs["ce_audit_can_verify"] = sm.has_access("can_verify", self.class_permission_name)
            kwargs["ce_audit_checks"] = audit_checks.latest(5) if kwargs["ce_audit_can_verify"] else []
        return super().render_template(template, **kwargs)

    @expose("/verify", methods=["POST"])
    @has_access
    def verify(self):
        """Run the chain check as a job; its page shows the outcome."""
        try:
            job = audit_checks.submit(audit_checks.CONSOLE, user=g.user)
        except DomainError as e:
            flash(str(e), "danger")
            return redirect(url_for(".list"))
        return redirect(url_for(".check", job_id=job.id))

    @expose("/check/<int:job_id>")
    @has_access
    @permission_name("verify")
    def check(self, job_id):
        job = get_job(job_id, g.user)
        if job is None or job.kind != audit_checks.JOB_KIND:
            abort(404)
        result = audit_checks.check_of_job(job.id)
        findings = [audit_checks.finding_text(f) for f in audit_checks.findings_of(result)]
        return self.render_template("audit/check.html", job=job, check=result, findings=findings,
                                    summary=audit_checks.summary(result) if result else None)

    @expose("/acknowledge/<int:check_id>", methods=["POST"])
    @has_access
    def acknowledge(self, check_id):
        if audit_checks.acknowledge(check_id, g.user):
            flash(_("已确认该次校验结果。"), "info")
        return redirect(url_for(".list"))
