"""Portal login pages (issue 23): the buttons' redirect, the portal's return,
and the registration of a portal user not known yet (fields locked).

Thin: the protocol is app.security.portal's, the rules app.services.portal_login's.
"""
from flask import abort, flash, g, redirect, request, session, url_for
from flask_appbuilder import BaseView, expose
from flask_babel import gettext as _
from flask_login import login_user

from app.extensions import db
from app.security import portal
from app.services import accounts, portal_login
from app.services.errors import DomainError


def _form(*names):
    return {n: (request.form.get(n) or "").strip() for n in names}


class PortalLoginView(BaseView):
    route_base = "/portal"
    default_view = "login"

    def _provider(self, name=None):
        provider = portal.active_provider()
        if provider is None or (name is not None and provider.name != name):
            abort(404)
        return provider

    def _refused(self, message, code=400):
        return self.render_template("accounts/portal_error.html", message=message), code

    @expose("/login/<kind>")
    def login(self, kind):
        if kind not in portal.KINDS:
            abort(404)
        provider = self._provider()
        try:
            return provider.start(kind)
        except portal.PortalError as exc:
            portal_login.record_failure(provider.name, kind, exc.reason, exc)
            return self._refused(str(exc), 502)

    @expose("/callback/<provider>")
    def callback(self, provider):
        provider = self._provider(provider)
        kind = (session.get(portal.FLOW_KEY) or {}).get("kind")
        identity = None
        try:
            answer = provider.finish(request.args)
            identity = portal_login.identity_from_answer(answer)
            binding = portal_login.bind(identity)
        except (portal.PortalError, DomainError) as exc:
            db.session.rollback()
            reason = getattr(exc, "reason", None) or ("invalid_answer" if identity is None else "refused_account")
            portal_login.record_failure(provider.name, kind, reason, exc, identity)
            return self._refused(str(exc))
        if binding.user is not None:
            return self._sign_in(binding.user, provider.name)
        session[portal.IDENTITY_KEY] = identity.to_session()
        endpoint = "PortalLoginView.register_person" if binding.register == "person" else "PortalLoginView.register_unit"
        return redirect(url_for(endpoint))

    def _sign_in(self, user, provider, message=None):
        portal.begin_portal_session(provider)
        g.ce_login_provider = provider  # the login's audit entry names it (accounts.record_login)
        login_user(user, remember=False)
        self.appbuilder.sm.update_user_auth_stat(user, True)  # audited and committed
        if message:
            flash(message, "success")  # after the session was renewed
        return redirect(self.appbuilder.get_url_for_index)

    def _identity(self, kind):
        from flask import current_app

        identity = portal_login.PortalIdentity.from_session(
            session.get(portal.IDENTITY_KEY), float(current_app.config.get("PORTAL_REGISTER_MAX_AGE", 1800)))
        if identity is None or identity.kind != kind:
            session.pop(portal.IDENTITY_KEY, None)
            return None
        return identity

    @expose("/register/person", methods=["GET", "POST"])
    def register_person(self):
        identity = self._identity(portal.PERSON)
        if identity is None:
            return self._refused(_("政务服务网登录信息已失效，请返回登录页重新登录"))
        values = _form("phone", "credit_code", "city", "region_code", "unit_id")
        values["freelancer"] = bool(request.form.get("freelancer"))
        if request.method == "POST":
            try:
                user = portal_login.register_person(
                    identity, phone=values["phone"], credit_code=values["credit_code"],
                    unit_id=values["unit_id"], freelancer=values["freelancer"])
            except DomainError as exc:
                db.session.rollback()
                flash(str(exc), "danger")
            else:
                return self._sign_in(user, identity.provider,
                                     _("注册成功。所选单位确认您的归属后，即可查看学时记录和申报学时。"))
        values.update(name=identity.name, id_number=identity.id_number, phone=identity.mobile or values["phone"])
        units = accounts.registrable_units(values["region_code"], values["freelancer"]) if values["region_code"] else []
        return self.render_template(
            "accounts/register_person.html", values=values, units=units, portal_identity=identity,
            locked={"name", "id_number"} | ({"phone"} if identity.mobile else set()),
            cities=accounts.cities(), districts=accounts.districts())

    @expose("/register/unit", methods=["GET", "POST"])
    def register_unit(self):
        identity = self._identity(portal.LEGAL)
        if identity is None:
            return self._refused(_("政务服务网登录信息已失效，请返回登录页重新登录"))
        values = _form("city", "region_code", "kind", "contact_name", "contact_phone", "admin_name", "username")
        if request.method == "POST":
            try:
                unit, user = portal_login.register_unit(
                    identity, region_code=values["region_code"], kind=values["kind"],
                    contact_name=values["contact_name"], contact_phone=values["contact_phone"],
                    admin_name=values["admin_name"], username=values["username"])
            except DomainError as exc:
                db.session.rollback()
                flash(str(exc), "danger")
            else:
                return self._sign_in(user, identity.provider, _(
                    "单位“%(name)s”注册成功，待所在地人社局审核通过后即可使用。管理员账号：%(user)s",
                    name=unit.name, user=user.username))
        values.update(name=identity.org_name, credit_code=identity.credit_code)
        kinds = [(k.name, _(k.value)) for k in accounts.REGISTRABLE_KINDS]
        return self.render_template(
            "accounts/register_unit.html", values=values, kinds=kinds, portal_identity=identity,
            locked={"name", "credit_code"}, cities=accounts.cities(), districts=accounts.districts())


def register(appbuilder):
    appbuilder.add_view_no_menu(PortalLoginView)
    from flask import current_app

    current_app.add_template_global(portal.login_page_options, "portal_login_options")
