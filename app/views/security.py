"""The app's SecurityManager: FAB's, with the scoped user model, audited logins,
the password policy on FAB's own forms, failed-login limits and a Chinese
rate-limit page, and the
account gate (forced password change, units awaiting approval)."""
import logging
import secrets
from functools import cached_property

from flask import current_app, g, has_request_context, redirect, render_template, request, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.const import LOGMSG_WAR_SEC_LOGIN_FAILED
from flask_appbuilder.security.sqla.manager import SecurityManager
from flask_appbuilder.security.utils import is_null_password
from flask_appbuilder.security import views as fab_views
from flask_appbuilder.security.views import UserDBModelView
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import bindparam, select
from sqlalchemy.orm import aliased, contains_eager
from wtforms.validators import DataRequired

from app.models import Person, Unit
from app.models.user import CEUser
from app.security.login_limits import FailedLoginLimits, LoginRefused
from app.security import passwords
from app.security.passwords import hash_password
from app.security.api import SecurityApi, jwt_error_handlers
from app.security.roles import ROLE_LABELS
from app.views.fields import RelatedLookupField, label_blank_choices
from app.services.localtime import local_beijing_text
from app.views.formatting import display
from app.fab.filters import RequestFiltersMixin

log = logging.getLogger(__name__)

# Endpoints a user may still reach while the account gate holds it.
GATE_OPEN_ENDPOINTS = frozenset({
    "AccountPasswordView.change",
    "AccountStatusView.pending",
    "AuthDBView.logout",
    "LocaleView.index",
    "health",  # /health answers without the database (app/web.py)
    "static",
    "appbuilder.static",
})


class AuthDBView(fab_views.AuthDBView):
    """FAB's login, with links to the offline registration pages.  Same class
    name as FAB's, so that its endpoint stays `AuthDBView.login`."""

    login_template = "accounts/login_db.html"


class CEUserDBModelView(RequestFiltersMixin, UserDBModelView):
    """Admin's user grid, with the binding that decides each user's row scope.
    Accounts the admin creates must change their password at first login; role
    grants and revocations, activation changes and deletions are audited."""

    list_columns = ["username", "first_name", "last_name", "active", "roles", "region", "unit", "person"]
    add_columns = [
        "first_name", "last_name", "username", "active", "email", "roles",
        "region", "unit", "person", "password", "conf_password",
    ]
    edit_columns = [
        "first_name", "last_name", "username", "active", "email", "roles", "region", "unit", "person",
        "must_change_password",
    ]
    show_fieldsets = [
        (_l("账号"), {"fields": ["username", "active", "roles", "region", "unit", "person",
                                 "must_change_password", "login_count"]}),
        (_l("个人信息"), {"fields": ["first_name", "last_name", "email"], "expanded": True}),
        (
            _l("审计信息"),
            {"fields": ["last_login", "fail_login_count", "created_on", "created_by", "changed_on", "changed_by"]},
        ),
    ]
    label_columns = dict(
        UserDBModelView.label_columns,
        region=_l("所属区划（人社局）"),
        unit=_l("所属单位"),
        person=_l("对应人员（个人）"),
        must_change_password=_l("下次登录须修改密码"),
    )
    # Typed, not picked from every unit and person (app/views/fields.py).
    _lookups = {
        "unit": RelatedLookupField(label_columns["unit"], model=Unit),
        "person": RelatedLookupField(label_columns["person"], model=Person),
    }
    add_form_extra_fields = dict(UserDBModelView.add_form_extra_fields or {}, **_lookups)
    # FAB's "a role or a group" check reads a groups field these forms leave out
    # (a form without a role answered 500).
    validators_columns = {"roles": [DataRequired(message=_l("请至少选择一个角色"))]}
    edit_form_extra_fields = dict(UserDBModelView.edit_form_extra_fields or {}, **_lookups)

    # Cells as the app's grids show them: 是/否, nothing for no region or unit,
    # role names in the user's language (FAB prints True, None and a list).
    formatters_columns = {
        "active": display, "region": display, "unit": display, "person": display,
        "roles": lambda roles: "、".join(gettext(ROLE_LABELS.get(r.name, r.name)) for r in roles or ()),
        # FAB writes these with the server's local time; shown in Beijing time.
        **{c: local_beijing_text for c in ("last_login", "created_on", "changed_on")},
    }

    def _init_forms(self):
        super()._init_forms()
        label_blank_choices(self.add_form, self.edit_form, self.search_form)

    def _place(self, item):
        unit = item.unit
        return {"unit_id": item.unit_id, "region_code": unit.region_code if unit else item.region_code}

    def pre_add(self, item):
        from app.services.accounts import check_separation

        # FAB's UserDBModelView.pre_add only hashes the password (werkzeug's
        # scrypt); the app's hash is Argon2id (app/security/passwords.py).
        item.password = hash_password(item.password)
        _guarded(check_separation, current_user, item, [r.name for r in item.roles])
        item.must_change_password = True

    def post_add(self, item):
        from app.extensions import db
        from app.services import audit

        audit.record("create_account", "CEUser", item.id,
                     new={"username": item.username, "roles": [r.name for r in item.roles]}, **self._place(item))
        db.session.commit()

    @expose("/edit/<pk>", methods=["GET", "POST"])
    @has_access
    def edit(self, pk):
        # FAB's form population lazy-loads relations (autoflush), which wipes the
        # attribute history pre_update would read: note the old state first.
        from app.extensions import db

        if request.method == "POST" and str(pk).isdigit():
            user = db.session.get(CEUser, int(pk))
            if user is not None:
                g._ce_user_before = (bool(user.active), {r.name for r in user.roles})
        return super().edit(pk)

    def pre_update(self, item):
        from app.services import audit

        from app.services.accounts import check_separation

        super().pre_update(item)
        before = g.pop("_ce_user_before", None)
        if before is None:
            return
        was_active, had = before
        now = {r.name for r in item.roles}
        _guarded(check_separation, current_user, item, now, had)
        for name in sorted(now - had):
            audit.record("grant_role", "CEUser", item.id, new={"role": name},
                         username_target=item.username, **self._place(item))
        for name in sorted(had - now):
            audit.record("revoke_role", "CEUser", item.id, old={"role": name},
                         username_target=item.username, **self._place(item))
        if was_active != bool(item.active):
            audit.record("activate_account" if item.active else "deactivate_account", "CEUser", item.id,
                         new={"active": bool(item.active)}, username_target=item.username, **self._place(item))

    def pre_delete(self, item):
        from app.services import audit

        super().pre_delete(item)
        audit.record("delete_account", "CEUser", item.id, old={"username": item.username},
                     **self._place(item))


class RoleModelView(RequestFiltersMixin, fab_views.RoleModelView):
    """FAB's role grid, searched by name, permission and group.  FAB's search
    form also offered the role's accounts, as a drop-down of every account: at
    province scale (350 000 accounts) the page took 15 s to render (now 90 ms).
    Same class name as FAB's (endpoints and permissions stay)."""

    search_columns = ["name", "permissions", "groups"]

    # Role and permission changes are in the audit log (等保: who changed which
    # role's permissions, when, from where).  The roles the app defines are
    # builtin (roles.py); these entries cover the rows FAB's pages edit.
    @staticmethod
    def _perms(role):
        return {str(p) for p in role.permissions}

    def post_add(self, item):
        from app.extensions import db
        from app.services import audit

        audit.record("create_role", "Role", item.id, new={"name": item.name, "permissions": sorted(self._perms(item))})
        db.session.commit()

    @expose("/edit/<pk>", methods=["GET", "POST"])
    @has_access
    def edit(self, pk):
        # As CEUserDBModelView.edit: the old permissions, before the form fills the row.
        from app.extensions import db
        from flask_appbuilder.security.sqla.models import Role

        if request.method == "POST" and str(pk).isdigit():
            role = db.session.get(Role, int(pk))
            if role is not None:
                g._ce_role_before = (role.name, self._perms(role))
        return super().edit(pk)

    def pre_update(self, item):
        from app.services import audit

        super().pre_update(item)
        before = g.pop("_ce_role_before", None)
        if before is None:
            return
        name, had = before
        now = self._perms(item)
        if name != item.name or had != now:
            audit.record("change_role", "Role", item.id, old={"name": name}, new={"name": item.name},
                         granted=sorted(now - had), revoked=sorted(had - now))

    def pre_delete(self, item):
        from app.services import audit

        super().pre_delete(item)
        audit.record("delete_role", "Role", item.id, old={"name": item.name, "permissions": sorted(self._perms(item))})


class UserGroupModelView(RequestFiltersMixin, fab_views.UserGroupModelView):
    """FAB's group grid, searched without the drop-down of every account (as
    RoleModelView above)."""

    search_columns = ["name", "label", "description", "roles"]

    # 三员分立: a group's roles reach its members; the same guard as the user grid.
    @expose("/edit/<pk>", methods=["GET", "POST"])
    @has_access
    def edit(self, pk):
        from app.extensions import db
        from flask_appbuilder.security.sqla.models import Group

        if request.method == "POST" and str(pk).isdigit():
            group = db.session.get(Group, int(pk))
            if group is not None:
                g._ce_group_before = ({u.id for u in group.users}, {r.name for r in group.roles})
        return super().edit(pk)

    def _check(self, item, before=(set(), set())):
        from app.services.accounts import check_separation

        from app.extensions import db

        old_members, old_roles = before
        new_roles = {r.name for r in item.roles}
        with db.session.no_autoflush:  # (the form's group is not stored before the check)
            members = [(u, {r.name for r in u.roles},
                        {r.name for grp in u.groups if grp is not item for r in grp.roles}) for u in item.users]
        for user, own, others in members:
            had = own | others | (old_roles if user.id in old_members else set())
            _guarded(check_separation, current_user, user, own | others | new_roles, had)
        actor_id = getattr(current_user, "id", None)
        if actor_id in old_members and actor_id not in {u.id for u in item.users} and old_roles:
            _guarded(check_separation, current_user, current_user, set(), old_roles)

    def pre_add(self, item):
        super().pre_add(item)
        self._check(item)

    def pre_update(self, item):
        super().pre_update(item)
        self._check(item, g.pop("_ce_group_before", (set(), set())))


class CESecurityManager(SecurityManager):
    user_model = CEUser
    security_api = SecurityApi
    userdbmodelview = CEUserDBModelView
    rolemodelview = RoleModelView
    groupmodelview = UserGroupModelView
    authdbview = AuthDBView

    def __init__(self, appbuilder):
        from app.services.accounts import fab_password_complexity

        # The password policy also on FAB's own password forms.
        current_app.config.setdefault("FAB_PASSWORD_COMPLEXITY_ENABLED", True)
        current_app.config.setdefault("FAB_PASSWORD_COMPLEXITY_VALIDATOR", fab_password_complexity)
        super().__init__(appbuilder)
        current_app.before_request(self.account_gate)
        current_app.before_request(self.check_api_login)

    def create_jwt_manager(self, app):
        """FAB's JWT manager, every token problem answered 401 in Chinese."""
        return jwt_error_handlers(super().create_jwt_manager(app))

    # ---- per-request cost (issue 7) -----------------------------------------

    def load_user(self, pk):
        """The signed-in user with its roles, groups, unit and person in one query
        (FAB's lazy loads take three on every request; the account gate and the
        row scope read the unit and the person)."""
        try:
            pk = int(pk)
        except (TypeError, ValueError):
            return None
        user = self.session.execute(self._load_user_stmt, {"pk": pk}).unique().scalar_one_or_none()
        return user if user is not None and user.is_active else None

    @cached_property
    def _load_user_stmt(self):
        """Built once: composing the loader options is half the cost of the query.

        The roles and groups are joined flat (LEFT JOIN user-role, LEFT JOIN role),
        not as joinedload's nested `LEFT JOIN (user-role JOIN role)`: SQLite
        materializes such a nested join by scanning the whole association table,
        one row per account, on every request."""
        user, group = self.user_model, self.group_model
        role, group_role = aliased(self.role_model), aliased(self.role_model)
        user_roles = user.roles.property.secondary
        user_groups = user.groups.property.secondary
        group_roles = group.roles.property.secondary
        return (
            select(user)
            .outerjoin(user.unit).outerjoin(user.person)
            .outerjoin(user_roles, user_roles.c.user_id == user.id)
            .outerjoin(role, role.id == user_roles.c.role_id)
            .outerjoin(user_groups, user_groups.c.user_id == user.id)
            .outerjoin(group, group.id == user_groups.c.group_id)
            .outerjoin(group_roles, group_roles.c.group_id == group.id)
            .outerjoin(group_role, group_role.id == group_roles.c.role_id)
            .options(contains_eager(user.unit), contains_eager(user.person),
                     contains_eager(user.roles.of_type(role)),
                     contains_eager(user.groups.of_type(group)).contains_eager(group.roles.of_type(group_role)))
            .where(user.id == bindparam("pk"))
        )

    def get_public_permissions(self):
        """The Public role's permissions, read once per request: FAB reads the role
        and its permissions (two queries) for every menu item an anonymous visitor's
        page checks, fourteen queries on the login page.  Per request, not longer:
        an administrator may change the Public role at run time."""
        if not has_request_context():
            return super().get_public_permissions()
        if "_ce_public_permissions" not in g:
            g._ce_public_permissions = list(super().get_public_permissions())
        return g._ce_public_permissions

    def _has_access_builtin_roles(self, role, permission_name, view_name):
        # Builtin roles are fixed configuration (app/security/roles.py): remember
        # each answer instead of matching every regex again (~30 checks a page).
        cache = self.__dict__.setdefault("_ce_builtin_access", {})
        key = (role.name, permission_name, view_name)
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = super()._has_access_builtin_roles(role, permission_name, view_name)
        return hit

    # ---- rate limiting with a Chinese page ---------------------------------

    def create_limiter(self, app):
        limiter = super().create_limiter(app)
        app.register_error_handler(429, _rate_limited)
        app.register_error_handler(LoginRefused, _login_refused)
        return limiter

    @property
    def is_auth_limited(self):
        """FAB limits every POST to the login form per client address (so an office
        behind one address, or everyone behind an unresolved proxy, was refused
        at the eleventh login of a minute).  Logins are limited by their failures
        instead (`failed_logins`); FAB's limiter keeps the registration pages'
        limit (`registration_limited`)."""
        return False

    @property
    def registration_limited(self):
        return bool(current_app.config.get("AUTH_RATE_LIMITED"))

    @cached_property
    def failed_logins(self):
        """The failed-login counters (app/security/login_limits.py), or None when
        AUTH_RATE_LIMITED is off."""
        config = current_app.config
        if not config.get("AUTH_RATE_LIMITED"):
            return None
        return FailedLoginLimits(
            config.get("AUTH_FAILED_PER_ACCOUNT"), config.get("AUTH_FAILED_PER_ADDRESS"),
            config.get("REDIS_URL") or config.get("RATELIMIT_STORAGE_URI"),
        )

    def check_api_login(self):
        """Before the API's JWT login (before FAB's view, whose error catcher
        would turn the refusal into a 500): refused (429) while its account or
        address has used up its failed logins."""
        if request.endpoint != "SecurityApi.login" or request.method != "POST":
            return None
        limits = self.failed_logins
        if limits is None:
            return None
        payload = request.get_json(silent=True)
        username = payload.get("username") if isinstance(payload, dict) else None
        if isinstance(username, str):
            _check_audited(limits, username, request.remote_addr)
        return None

    # ---- accounts that sign in with their ID number -------------------------

    def find_user(self, username=None, email=None):
        """FAB's lookup, plus: a typed resident ID number finds the account stored
        under that number's digest (services.accounts.id_account_name), so the
        account table holds no ID number in clear."""
        if username:
            from app.services.accounts import sign_in_name

            alias = sign_in_name(username)
            if alias:
                user = super().find_user(username=alias)
                if user is not None:
                    return user
        return super().find_user(username=username, email=email)

    # ---- audited logins -----------------------------------------------------

    def auth_user_db(self, username, password):
        """FAB's password check (the login form and the API's JWT login), refused
        without looking at the password while the account or the address has
        used up its failed logins; a failure is counted, a success never."""
        limits = self.failed_logins
        address = request.remote_addr if request else None
        if limits is not None:
            _check_audited(limits, username, address)
        g._ce_login_audited = False
        user = self._check_password(username, password)
        if user is not None and request.blueprint == "AuthDBView" and is_machine_account(user):
            # A machine account (the national system's) signs in to the API only.
            return None
        if user is None and not g.get("_ce_login_audited"):
            # Unknown or inactive account: FAB records nothing, we do.
            from app.extensions import db
            from app.services.accounts import record_login

            record_login(None, False, username=username)
            db.session.commit()
        if user is None and limits is not None and username:
            limits.failed(username, address)
            scope = limits.locked(username, address)
            if scope is not None:  # this failure used up the account's (or address's) attempts
                from app.extensions import db
                from app.services.accounts import record_lockout

                record_lockout(username, scope, "locked")
                db.session.commit()
        return user

    def _check_password(self, username, password):
        """FAB's AUTH_DB check (SecurityManager.auth_user_db, whose hash is
        werkzeug's, called directly), with the app's Argon2id
        (app/security/passwords.py): the same lookups, the same balancing of an
        unknown account's cost against a known one's, and the same statistics;
        a correct password stored under an older hash (scrypt, pbkdf2) is
        re-hashed with Argon2id and committed with the login's statistics."""
        if not username or is_null_password(password):
            log.info(LOGMSG_WAR_SEC_LOGIN_FAILED, username)
            return None
        first_user = self.get_first_user()
        user = self.find_user(username=username)
        if user is None:
            user = self.find_user(email=username)
        else:
            _ = self.find_user(email=username)  # balance failure and success
        if user is None or not user.is_active:
            passwords.spend_like_a_check()
            log.info(LOGMSG_WAR_SEC_LOGIN_FAILED, username)
            if first_user:
                self.noop_user_update(first_user)
            return None
        if passwords.verify_password(user.password, password):
            passwords.upgrade(user, password)
            self.update_user_auth_stat(user, True)
            return user
        self.update_user_auth_stat(user, False)
        log.info(LOGMSG_WAR_SEC_LOGIN_FAILED, username)
        return None

    # ---- every other password FAB stores: Argon2id ---------------------------

    def add_user(self, username, first_name, last_name, email, role=None, password="", hashed_password="",
                 groups=None, commit=True):
        """FAB's add_user (the CLI's create-admin, the demo data, the administrators
        created by `flask ce`), the password hashed with Argon2id; no password:
        a random one nobody knows, as FAB does."""
        if not hashed_password:
            hashed_password = hash_password(password or secrets.token_urlsafe(32))
        return super().add_user(username, first_name, last_name, email, role, hashed_password=hashed_password,
                                groups=groups, commit=commit)

    def add_register_user(self, username, first_name, last_name, email, password="", hashed_password=""):
        if not hashed_password:
            hashed_password = hash_password(password)
        return super().add_register_user(username, first_name, last_name, email, hashed_password=hashed_password)

    def api_second_factor(self, user, code):
        """The API's JWT login of an account in MFA_ROLES: the `totp` field (a code
        or a recovery code) is required and checked as on the login page (accepted
        once, a wrong one counts as a failed login).  Returns the refusal's
        Chinese message, or None.  The national system's machine account keeps
        its own credential (no second factor)."""
        from app.security import mfa
        from app.services import sessions as svc
        from app.services.errors import DomainError

        if is_machine_account(user) or not mfa.required(user):
            return None
        if not mfa.enrolled(user.id):
            return gettext("此账号需要动态口令，但尚未绑定：请先在网页登录并完成动态口令绑定")
        if not code:
            return gettext("此账号需要动态口令：请在登录请求的 totp 字段中提供 6 位动态口令或恢复码")
        code = code.strip()
        is_totp = len(code) == 6 and code.isdigit()
        try:
            svc.second_factor(user, code=code if is_totp else None, recovery_code=None if is_totp else code)
        except DomainError as exc:
            if self.failed_logins is not None:
                self.failed_logins.failed(user.username, request.remote_addr)
            return str(exc)
        return None

    def update_user_auth_stat(self, user, success=True):
        from app.services.accounts import record_login

        # Added before FAB's update_user() commits, so both land together.
        record_login(user, success)
        g._ce_login_audited = True
        super().update_user_auth_stat(user, success)

    # ---- logout (portal login, issue 23) -------------------------------------

    def on_user_logout(self, user):
        """FAB's hook after logout: the whole session ends; after a portal login
        the login page offers the portal's logout (app/security/portal.py)."""
        from app.extensions import db
        from app.security.portal import end_portal_session
        from app.services.accounts import record_logout

        super().on_user_logout(user)
        record_logout(user, "logout")
        db.session.commit()
        end_portal_session()

    # ---- FAB's password reset views ------------------------------------------

    def reset_password(self, userid, password):
        """FAB's "reset password" (admin, for another user) and "reset my password":
        audited; a password set by someone else must be changed at next login."""
        from app.services import audit

        user = self.get_user_by_id(userid)
        by_other = not (current_user and current_user.is_authenticated and current_user.id == user.id)
        user.must_change_password = by_other
        audit.record("reset_password" if by_other else "change_password", "CEUser", user.id,
                     username_target=user.username, unit_id=user.unit_id, region_code=user.region_code)
        user.password = hash_password(password)  # (FAB's reset_password hashes with scrypt)
        self.update_user(user)
        if by_other and self.failed_logins is not None:
            self.failed_logins.clear(user.username)  # the new password opens the account now

    # ---- the account gate ----------------------------------------------------

    def account_gate(self):
        """Before every request: a user who must change the password goes to the
        change page; a user of a unit awaiting approval to the waiting page."""
        endpoint = request.endpoint or ""
        if endpoint in GATE_OPEN_ENDPOINTS or endpoint.endswith(".static"):
            return None
        if not (current_user and current_user.is_authenticated):
            return None
        if getattr(current_user, "must_change_password", False):
            return redirect(url_for("AccountPasswordView.change"))
        from app.services.accounts import unit_pending

        if unit_pending(current_user):
            return redirect(url_for("AccountStatusView.pending"))
        return None


def _check_audited(limits, username, address):
    """limits.check, with a refused attempt (account or address locked) in the audit log."""
    try:
        limits.check(username, address)
    except LoginRefused as exc:
        from app.extensions import db
        from app.services.accounts import record_lockout

        record_lockout(username, exc.scope, "refused", retry_at=exc.retry_at)
        db.session.commit()
        raise


def _login_refused(exc):
    """A login refused by the failed-login limits: 429 with the time to try again."""
    from flask import jsonify

    if request.path.startswith("/api/"):
        resp = jsonify(message=exc.message)
    else:
        appbuilder = current_app.appbuilder
        resp = current_app.make_response(render_template(
            "accounts/rate_limited.html", appbuilder=appbuilder, base_template=appbuilder.base_template,
            message=exc.message,
        ))
    resp.status_code = 429
    resp.headers["Retry-After"] = str(exc.retry_after)
    return resp
def _guarded(check, *args):
    """Run a service check before FAB stores a form: on refusal, forget the form's
    changes (FAB shows the message and stores nothing)."""
    from app.extensions import db
    from app.services.errors import DomainError

    try:
        check(*args)
    except DomainError:
        db.session.rollback()
        raise


def is_machine_account(user):
    from app.security.roles import MACHINE_ROLES

    return any(r.name in MACHINE_ROLES for r in user.roles)


def _rate_limited(exc):
    """429 in Chinese: the login and registration pages say why; an API gets JSON.
    (A blueprint with its own 429 handler, like the certificate check, keeps it.)"""
    from flask import jsonify
    from flask_babel import gettext as _

    if request.blueprint in ("AuthDBView", "RegistrationView"):
        message = _("操作过于频繁，请稍后再试（为保护账号安全，登录和注册尝试次数受到限制）")
    else:
        message = _("请求过于频繁，请稍后再试")
    if request.path.startswith("/api/"):
        return jsonify(message=message), 429
    appbuilder = current_app.appbuilder
    html = render_template(
        "accounts/rate_limited.html", appbuilder=appbuilder, base_template=appbuilder.base_template,
        message=message,
    )
    return html, 429
