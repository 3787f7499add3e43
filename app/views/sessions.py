"""我的会话, the second factor's pages, and the security administrator's page
for an account's sessions and second factor (issue 25).  Thin: the rules are in
app.services.sessions and app.security.mfa."""
from flask import flash, g, redirect, request, session, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.security.decorators import permission_name
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, logout_user
from markupsafe import Markup

from app.extensions import db
from app.security import mfa
from app.security.sessions import MFA_KEY
from app.services import sessions as svc
from app.services.errors import DomainError

ENROL_KEY = "_ce_mfa_secret"
CODES_KEY = "_ce_mfa_codes"


def _signed_in():
    return current_user and current_user.is_authenticated


class MfaView(BaseView):
    """After the password: enrol (QR code + secret, first code) or give a code."""

    route_base = "/mfa"
    default_view = "verify"

    def _done(self):
        session.pop(MFA_KEY, None)
        return redirect(self.appbuilder.get_url_for_index)

    def _too_many(self):
        if svc.too_many_failures(current_user):
            logout_user()
            flash(_("动态口令错误次数过多，请稍后重新登录"), "danger")
            return redirect(url_for("AuthDBView.login"))
        return None

    @expose("/enroll", methods=["GET", "POST"])
    def enroll(self):
        if not _signed_in():
            return redirect(url_for("AuthDBView.login"))
        if mfa.enrolled(current_user.id) and not session.get(CODES_KEY):
            return redirect(url_for("MfaView.verify"))
        secret = session.get(ENROL_KEY)
        if not secret:
            secret = session[ENROL_KEY] = mfa.new_secret()
        if request.method == "POST":
            try:
                codes = svc.confirm_enrolment(current_user, secret, request.form.get("code"))
            except DomainError as exc:
                flash(str(exc), "danger")
                return self._too_many() or redirect(url_for("MfaView.enroll"))
            session.pop(ENROL_KEY, None)
            session[CODES_KEY] = codes
            return redirect(url_for("MfaView.recovery"))
        uri = mfa.provisioning_uri(secret, current_user.username)
        return self.render_template("security/mfa_enroll.html", qr=Markup(mfa.qr_svg(uri)), secret=secret)

    @expose("/recovery", methods=["GET", "POST"])
    def recovery(self):
        """The recovery codes, shown once."""
        if not _signed_in():
            return redirect(url_for("AuthDBView.login"))
        if request.method == "POST":
            session.pop(CODES_KEY, None)
            return self._done()
        codes = session.get(CODES_KEY)
        if not codes:
            return self._done()
        return self.render_template("security/mfa_recovery.html", codes=codes)

    @expose("/verify", methods=["GET", "POST"])
    def verify(self):
        if not _signed_in():
            return redirect(url_for("AuthDBView.login"))
        if session.get(MFA_KEY) != "pending":
            return redirect(self.appbuilder.get_url_for_index)
        if not mfa.enrolled(current_user.id):
            return redirect(url_for("MfaView.enroll"))
        if request.method == "POST":
            try:
                svc.second_factor(current_user, code=request.form.get("code"),
                                  recovery_code=request.form.get("recovery_code"))
            except DomainError as exc:
                flash(str(exc), "danger")
                return self._too_many() or redirect(url_for("MfaView.verify"))
            return self._done()
        return self.render_template("security/mfa_verify.html")


class MySessionsView(BaseView):
    """我的会话: the user's live sessions; end any of them."""

    route_base = "/my/sessions"
    default_view = "list"

    @expose("/")
    def list(self):
        if not _signed_in():
            return redirect(url_for("AuthDBView.login"))
        return self.render_template("security/my_sessions.html", sessions=svc.my_sessions(current_user))

    @expose("/<int:pk>/end", methods=["POST"])
    def end(self, pk):
        if not _signed_in():
            return redirect(url_for("AuthDBView.login"))
        try:
            svc.end_my_session(current_user, pk)
        except DomainError as exc:
            db.session.rollback()
            flash(str(exc), "danger")
        else:
            flash(_("会话已结束"), "success")
        return redirect(url_for("MySessionsView.list"))


class SessionAdminView(BaseView):
    """The security administrator: an account's sessions and second factor."""

    route_base = "/security/accounts"
    default_view = "index"

    @expose("/")
    @has_access
    @permission_name("manage")
    def index(self):
        user = svc.find_user(request.args.get("username"))
        if request.args.get("username") and user is None:
            flash(_("账号不存在"), "warning")
        status = svc.account_status(user) if user is not None else None
        return self.render_template("security/session_admin.html", target=user, status=status,
                                    username=request.args.get("username", ""))

    def _do(self, pk, fn, message):
        try:
            result = fn(g.user, pk)
        except DomainError as exc:
            db.session.rollback()
            flash(str(exc), "danger")
        else:
            flash(message(result), "success")
        target = svc._target(pk) if pk else None
        return redirect(url_for("SessionAdminView.index", username=target.username if target else ""))

    @expose("/<int:pk>/end-sessions", methods=["POST"])
    @has_access
    @permission_name("manage")
    def end_sessions(self, pk):
        return self._do(pk, svc.end_all_sessions, lambda n: _("已结束该账号的 %(n)s 个会话，其 API 令牌同时失效", n=n))

    @expose("/<int:pk>/reset-mfa", methods=["POST"])
    @has_access
    @permission_name("manage")
    def reset_mfa(self, pk):
        return self._do(pk, svc.reset_second_factor, lambda had: _("已重置该账号的动态口令，下次登录时须重新绑定"))


def register(appbuilder):
    appbuilder.add_view_no_menu(MfaView)
    appbuilder.add_view_no_menu(MySessionsView)
    appbuilder.add_view(SessionAdminView, "AccountSecurity", label=_l("会话与动态口令"), icon="fa-key",
                        category="Security")
    _register_banner(appbuilder)


ADMIN_ROLES = ("Admin", "SysAdmin", "SecAdmin", "Auditor")


def mfa_off_banner():
    """Administrators are told when the second factor is off (the demo)."""
    if mfa.mfa_roles() or not _signed_in():
        return False
    return any(r.name in ADMIN_ROLES for r in current_user.roles or ())


def _register_banner(appbuilder):
    from flask import current_app

    current_app.context_processor(lambda: {"mfa_off_banner": mfa_off_banner})
