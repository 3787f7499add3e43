"""Accounts (issue 6): public registration, the unit's confirmation of persons,
unit / bureau account administration, unit approval, the forced password change.

Thin views: every rule (scope, role limits, duplicates, password policy, audit)
lives in app.services.accounts.
"""
from flask import flash, g, jsonify, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.actions import action
from flask_appbuilder.models.sqla.filters import FilterEqual
from flask_appbuilder.security.decorators import permission_name
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.extensions import db
from app.models import Region, Unit
from app.security import roles as R
from app.services import accounts
from app.services.errors import DomainError
from app.views.base import ScopedModelView
from app.fab.datamodel import CEInterface
from app.views.formatting import translated


def _form(*names):
    return {n: (request.form.get(n) or "").strip() for n in names}


# ---------------------------------------------------------------- registration (public)


class RegistrationView(BaseView):
    """Offline self-registration: no reCAPTCHA, no mail."""

    route_base = "/register"
    default_view = "index"

    @expose("/")
    def index(self):
        return self.render_template("accounts/register_index.html")

    def _regions(self):
        return {"cities": accounts.cities(), "districts": accounts.districts()}

    @expose("/unit", methods=["GET", "POST"])
    def unit(self):
        fields = ("name", "credit_code", "city", "region_code", "kind", "contact_name", "contact_phone",
                  "admin_name", "username")
        values = _form(*fields)
        error_field = None
        if request.method == "POST":
            try:
                unit, user = accounts.register_unit(
                    name=values["name"], credit_code=values["credit_code"], region_code=values["region_code"],
                    kind=values["kind"], contact_name=values["contact_name"],
                    contact_phone=values["contact_phone"], admin_name=values["admin_name"],
                    username=values["username"], password=request.form.get("password", ""),
                    confirm=request.form.get("confirm", ""),
                )
            except DomainError as exc:
                db.session.rollback()
                flash(str(exc), "danger")
                error_field = exc.details.get("field")
            else:
                flash(_("单位“%(name)s”注册成功，待所在地人社局审核通过后即可使用。管理员账号：%(user)s",
                        name=unit.name, user=user.username), "success")
                return redirect(url_for("RegistrationView.done"))
        kinds = [(k.name, _(k.value)) for k in accounts.REGISTRABLE_KINDS]
        return self.render_template("accounts/register_unit.html", values=values, kinds=kinds,
                                    error_field=error_field, **self._regions())

    @expose("/person", methods=["GET", "POST"])
    def person(self):
        fields = ("name", "id_number", "phone", "username", "credit_code", "city", "region_code", "unit_id")
        values = _form(*fields)
        values["freelancer"] = bool(request.form.get("freelancer"))
        error_field = None
        if request.method == "POST":
            try:
                user = accounts.register_person(
                    name=values["name"], id_number=values["id_number"], phone=values["phone"],
                    username=values["username"], password=request.form.get("password", ""),
                    confirm=request.form.get("confirm", ""), credit_code=values["credit_code"],
                    unit_id=values["unit_id"], freelancer=values["freelancer"],
                )
            except DomainError as exc:
                db.session.rollback()
                flash(str(exc), "danger")
                error_field = exc.details.get("field")
            else:
                flash(_("注册成功，登录账号：%(user)s。所选单位确认您的归属后，即可查看学时记录和申报学时。",
                        user=user.username), "success")
                return redirect(url_for("RegistrationView.done"))
        units = accounts.registrable_units(values["region_code"], values["freelancer"]) if values["region_code"] else []
        return self.render_template("accounts/register_person.html", values=values, units=units,
                                    error_field=error_field, **self._regions())

    @expose("/units")
    def units(self):
        """Approved units of a district (agencies for freelancers), for the person form."""
        rows = accounts.registrable_units(request.args.get("region", ""), request.args.get("freelancer") == "1")
        return jsonify([{"id": i, "name": n} for i, n in rows])

    @expose("/done")
    def done(self):
        return self.render_template("accounts/register_done.html")


# ---------------------------------------------------------------- gate pages


class AccountPasswordView(BaseView):
    """Change one's own password; where the account gate sends a user whose
    password was set by someone else."""

    route_base = "/account"
    default_view = "change"

    @expose("/password", methods=["GET", "POST"])
    @has_access
    @permission_name("change")
    def change(self):
        if request.method == "POST":
            try:
                accounts.change_own_password(
                    g.user, request.form.get("current", ""), request.form.get("password", ""),
                    request.form.get("confirm", ""),
                )
            except DomainError as exc:
                db.session.rollback()
                flash(str(exc), "danger")
            else:
                flash(_("密码已修改"), "success")
                return redirect(self.appbuilder.get_url_for_index)
        return self.render_template("accounts/password.html", forced=bool(g.user.must_change_password))


class AccountStatusView(BaseView):
    """Where users of a unit awaiting approval land after signing in."""

    route_base = "/account"
    default_view = "pending"

    @expose("/pending")
    @has_access
    @permission_name("pending")
    def pending(self):
        unit = db.session.get(Unit, g.user.unit_id) if g.user.unit_id else None
        if unit is None or unit.approved:
            return redirect(self.appbuilder.get_url_for_index)
        return self.render_template("accounts/pending.html", unit=unit)


# ---------------------------------------------------------------- account administration


class AccountAdminView(BaseView):
    """A UnitAdmin's accounts of its unit; a bureau user's bureau accounts of its
    region subtree.  Every id posted here is looked up through the service,
    which refuses users and roles outside the actor's reach."""

    route_base = "/accounts/users"
    default_view = "list"

    def _back(self, user_id=None):
        if user_id is not None:
            return redirect(url_for("AccountAdminView.show", pk=user_id))
        return redirect(url_for("AccountAdminView.list"))

    @expose("/")
    @has_access
    @permission_name("list")
    def list(self):
        search = request.args.get("q", "")
        try:
            page = max(int(request.args.get("page", 0)), 0)
        except ValueError:
            page = 0
        count, capped, users = accounts.managed_users_page(g.user, search, page)
        size = accounts.ACCOUNTS_PAGE_SIZE
        return self.render_template(
            "accounts/users.html", users=users, role_labels=R.ROLE_LABELS,
            can_create=not accounts.scope_of(g.user).everything,
            search=search, page=page, count=count, capped=capped,
            has_next=capped or (page + 1) * size < count,
            page_url=lambda p: url_for("AccountAdminView.list", page=p, **({"q": search} if search else {})),
        )

    @expose("/<int:pk>")
    @has_access
    @permission_name("list")
    def show(self, pk):
        try:
            user = accounts.get_managed_user(g.user, pk)
        except DomainError as exc:
            flash(str(exc), "danger")
            return self._back()
        roles = [self.appbuilder.sm.find_role(n) for n in accounts.manageable_roles(g.user)]
        return self.render_template(
            "accounts/user.html", user=user, roles=[r for r in roles if r is not None],
            role_labels=R.ROLE_LABELS, is_self=user.id == g.user.id,
        )

    @expose("/add", methods=["GET", "POST"])
    @has_access
    @permission_name("add")
    def add(self):
        values = _form("username", "first_name", "region_code")
        chosen = request.form.getlist("roles")
        if request.method == "POST":
            try:
                user = accounts.create_account(
                    g.user, username=values["username"], first_name=values["first_name"],
                    password=request.form.get("password", ""), roles=chosen, region_code=values["region_code"],
                )
            except DomainError as exc:
                db.session.rollback()
                flash(str(exc), "danger")
            else:
                flash(_("账号%(user)s已创建，首次登录时须修改密码", user=user.username), "success")
                return self._back(user.id)
        roles = [self.appbuilder.sm.find_role(n) for n in accounts.manageable_roles(g.user)]
        regions = []
        if R.BUREAU in accounts.scope_of(g.user).roles and g.user.region_code:
            from app.models.regions import region_prefix, region_range

            regions = db.session.execute(
                db.select(Region).where(region_range(Region.code, region_prefix(g.user.region_code)))
                .order_by(Region.code)
            ).scalars().all()
        return self.render_template(
            "accounts/user_add.html", values=values, chosen=chosen, roles=[r for r in roles if r],
            role_labels=R.ROLE_LABELS, regions=regions,
        )

    def _do(self, pk, fn, message):
        try:
            fn()
        except DomainError as exc:
            db.session.rollback()
            flash(str(exc), "danger")
            return self._back(pk if isinstance(exc, accounts.ValidationFailed) else None)
        flash(message, "success")
        return self._back(pk)

    @expose("/<int:pk>/grant", methods=["POST"])
    @has_access
    @permission_name("edit")
    def grant(self, pk):
        return self._do(pk, lambda: accounts.grant_role(g.user, pk, request.form.get("role_id", "")),
                        _("已授予角色"))

    @expose("/<int:pk>/revoke", methods=["POST"])
    @has_access
    @permission_name("edit")
    def revoke(self, pk):
        return self._do(pk, lambda: accounts.revoke_role(g.user, pk, request.form.get("role_id", "")),
                        _("已撤销角色"))

    @expose("/<int:pk>/reset", methods=["POST"])
    @has_access
    @permission_name("edit")
    def reset(self, pk):
        return self._do(
            pk,
            lambda: accounts.reset_password(g.user, pk, request.form.get("password", ""),
                                            request.form.get("confirm", "")),
            _("密码已重置，该用户下次登录时须修改密码"),
        )

    @expose("/<int:pk>/active", methods=["POST"])
    @has_access
    @permission_name("edit")
    def active(self, pk):
        on = request.form.get("active") == "1"
        return self._do(pk, lambda: accounts.set_active(g.user, pk, on), _("账号已启用") if on else _("账号已停用"))


# ---------------------------------------------------------------- unit approval (bureau)


class UnitApprovalView(ScopedModelView):
    """Unit registrations awaiting approval in the bureau user's region subtree."""

    datamodel = CEInterface(Unit)
    base_permissions = ["can_list", "can_show"]
    base_filters = [["approved", FilterEqual, False]]
    list_title = show_title = _l("单位注册审核")
    list_columns = ["name", "credit_code", "kind", "region", "contact_name", "contact_phone"]
    show_columns = list_columns
    search_columns = ["name", "credit_code", "region_code"]
    base_order = ("id", "asc")
    label_columns = {
        "name": _l("单位名称"),
        "credit_code": _l("统一社会信用代码"),
        "kind": _l("单位类型"),
        "region": _l("所在区划"),
        "region_code": _l("所在区划"),
        "contact_name": _l("联系人"),
        "contact_phone": _l("联系电话"),
    }
    formatters_columns = {"kind": translated}

    @action("approve", _l("审核通过"), _l("确定通过所选单位的注册吗？"), "fa-check")
    def approve(self, items):
        items = items if isinstance(items, list) else [items]
        try:
            done, ignored = accounts.approve_units([u.id for u in items], g.user)
        except DomainError as exc:
            db.session.rollback()
            flash(str(exc), "danger")
        else:
            flash(_("已审核通过%(n)d家单位", n=len(done)), "success")
            if ignored:
                flash(_("%(n)d家单位不在您的辖区或已审核，已忽略", n=ignored), "warning")
        return redirect(url_for("UnitApprovalView.list"))

    @action("reject", _l("退回注册"), _l("退回后将删除所选单位的注册信息及其账号，确定吗？"), "fa-times")
    def reject(self, items):
        items = items if isinstance(items, list) else [items]
        try:
            removed, ignored = accounts.reject_units([u.id for u in items], g.user)
        except DomainError as exc:
            db.session.rollback()
            flash(str(exc), "danger")
        else:
            flash(_("已退回%(n)d家单位的注册", n=len(removed)), "success")
            if ignored:
                flash(_("%(n)d家单位不在您的辖区、已审核或已有人员选择，未退回", n=ignored), "warning")
        return redirect(url_for("UnitApprovalView.list"))


# ---------------------------------------------------------------- attachment confirmation (unit)


class AttachmentConfirmView(BaseView):
    """Persons who registered and chose this unit (or agency): confirm or decline."""

    route_base = "/accounts/attachments"
    default_view = "list"

    @expose("/")
    @has_access
    @permission_name("list")
    def list(self):
        persons = db.session.execute(accounts.pending_attachments_query(g.user)).scalars().all()
        counts = accounts.imported_record_counts([p.id for p in persons])
        return self.render_template("accounts/attachments.html", persons=persons, counts=counts)

    @expose("/<int:pk>/confirm", methods=["POST"])
    @has_access
    @permission_name("confirm")
    def confirm(self, pk):
        try:
            if request.form.get("decision") == "reject":
                person = accounts.reject_attachment(pk, g.user, request.form.get("reason"))
                flash(_("已退回%(name)s的归属申请", name=person.name), "warning")
            else:
                person = accounts.confirm_attachment(pk, g.user)
                flash(_("已确认%(name)s为本单位人员", name=person.name), "success")
        except DomainError as exc:
            db.session.rollback()
            flash(str(exc), "danger")
        return redirect(url_for("AttachmentConfirmView.list"))


# ---------------------------------------------------------------- applicant's own unit


class MyUnitView(BaseView):
    route_base = "/account/unit"
    default_view = "show"

    @expose("/")
    @has_access
    @permission_name("show")
    def show(self):
        person = g.user.person
        return self.render_template(
            "accounts/my_unit.html", person=person,
            confirmed=accounts.person_attachment_confirmed(person), values={},
        )

    @expose("/request", methods=["POST"])
    @has_access
    @permission_name("request")
    def request_unit(self):
        try:
            accounts.request_attachment(
                g.user, credit_code=request.form.get("credit_code"),
                freelancer=bool(request.form.get("freelancer")),
            )
        except DomainError as exc:
            db.session.rollback()
            flash(str(exc), "danger")
        else:
            flash(_("申请已提交，等待单位确认"), "success")
        return redirect(url_for("MyUnitView.show"))


def register(appbuilder):
    """Views, menus and the rate limit of the registration pages."""
    reg = appbuilder.add_view_no_menu(RegistrationView)
    sm = appbuilder.sm
    if sm.registration_limited:  # per address (AUTH_RATE_LIMIT); logins count failures instead
        sm.limiter.limit(sm.auth_rate_limit, methods=["POST"])(reg.blueprint)
    appbuilder.add_view_no_menu(AccountPasswordView)
    appbuilder.add_view_no_menu(AccountStatusView)
    cat = dict(category="Accounts", category_label=_l("账号管理"), category_icon="fa-users")
    appbuilder.add_view(AccountAdminView, "AccountAdmin", label=_l("账号与权限"), icon="fa-user-plus", **cat)
    appbuilder.add_view(UnitApprovalView, "UnitApprovals", label=_l("单位注册审核"), icon="fa-check-circle",
                        **cat)
    appbuilder.add_view(AttachmentConfirmView, "AttachmentConfirm", label=_l("人员归属确认"),
                        icon="fa-user-check", **cat)
    appbuilder.add_view(MyUnitView, "MyUnit", label=_l("我的单位"), icon="fa-building", **cat)
