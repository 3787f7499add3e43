"""三员分立 (issue 25): the system, security and audit administrators are each
refused outside their duty on every route of the app.  The route list comes
from the app's URL map; the duties are written here from the issue, not read
from app/security/roles.py, so a wrong grant there shows up."""
import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, CEUser
from tests.conftest import csrf_token, login, post

# Views each administrator works in (everything else is refused).
DUTIES = {
    "sysadmin": {"RegionView", "UnitView", "StandardsView"},
    "secadmin": {"CEUserDBModelView", "RoleModelView", "UserGroupModelView", "PermissionModelView",
                 "ViewMenuModelView", "PermissionViewModelView", "ResetPasswordView", "SessionAdminView"},
    "auditor": {"AuditLogView"},
}
# Pages of every signed-in user (own profile, password, sessions, second factor,
# language) and the public ones (login, registration, certificate check).
COMMON = {
    "HomeView", "UtilView", "LocaleView", "AuthDBView", "MySessionsView", "MfaView", "AccountPasswordView",
    "AccountStatusView", "UserInfoEditView", "ResetMyPasswordView", "RegistrationView", "CertificateVerifyView",
    "SecurityApi", "MenuApi", "LargeTextView",
}
COMMON_ENDPOINTS = {"CEUserDBModelView.userinfo", "CEUserDBModelView.resetmypassword", "static",
                    "appbuilder.static", "health"}
# The pages each one must open.
OPENS = {
    "sysadmin": ["/regionview/list/", "/unitview/list/", "/standards/"],
    "secadmin": ["/users/list/", "/roles/list/", "/security/accounts/?username=clerk_a"],
    "auditor": ["/auditlogview/list/"],
}


def _routes(app):
    out = []
    views = {v.__class__.__name__: v for v in app.appbuilder.baseviews}
    for rule in app.url_map.iter_rules():
        endpoint = rule.endpoint
        view = endpoint.split(".")[0]
        if endpoint in COMMON_ENDPOINTS or view in COMMON or endpoint.endswith(".static"):
            continue
        values = {}
        # A real action (FAB answers 500 to an unknown one), not the user's own password reset.
        actions = [a for a in getattr(views.get(view), "actions", None) or () if a not in ("resetmypassword",)]
        if "name" in rule.arguments and "/action" in rule.rule:
            if not actions:
                continue
            values["name"] = actions[0]
        for arg in rule.arguments:
            if arg in values:
                continue
            values[arg] = 1 if type(rule._converters[arg]).__name__ in ("IntegerConverter",) else "1"
        try:
            url = rule.build(values, append_unknown=False)[1]
        except Exception:  # noqa: BLE001 (a converter that takes no "1": skip that rule)
            continue
        out.append((endpoint, view, url, sorted(rule.methods - {"HEAD", "OPTIONS"})))
    return out


def _refused(client, url, resp):
    if resp.status_code in (400, 401, 403, 404, 405):
        return True
    if resp.status_code not in (301, 302, 303):
        return False
    location = resp.headers.get("Location", "")
    if "/login" in location:
        return True
    # FAB's actions send a refused user back with "访问被拒绝"; the app's action
    # guard refuses an action by GET (no CSRF token) with "请求无效".
    # The flash shows on the next page drawn with the layout (the home page).
    html = client.get("/", follow_redirects=True).get_data(as_text=True)
    return "访问被拒绝" in html or "请求无效，请刷新页面后重试" in html


@pytest.mark.parametrize("username", ["sysadmin", "secadmin", "auditor"])
def test_each_administrator_is_refused_outside_its_duty(app, username):
    c = app.test_client()
    assert login(c, username).request.path == "/"
    for url in OPENS[username]:
        assert c.get(url).status_code == 200, url
    token = csrf_token(c)
    routes = _routes(app)
    assert len(routes) > 100  # the whole app, not a sample
    wrong = []
    checked = 0
    for endpoint, view, url, methods in routes:
        if view in DUTIES[username]:
            continue
        for method in methods:
            if method == "GET":
                resp = c.get(url)
            else:
                resp = c.open(url, method=method, data={"csrf_token": token})
            checked += 1
            if not _refused(c, url, resp):
                wrong.append((method, url, endpoint, resp.status_code, resp.headers.get("Location")))
    assert not wrong, wrong
    assert checked > 100
    # Still signed in: the refusals were refusals, not a lost session.
    assert c.get(OPENS[username][0]).status_code == 200


def test_duties_positive(app):
    """Each does its own job: the system administrator edits a unit, the security
    administrator ends a user's sessions, the auditor sees both in the log."""
    sa = app.test_client()
    login(sa, "sysadmin")
    with app.app_context():
        from app.models import Unit

        unit = db.session.execute(select(Unit).order_by(Unit.id)).scalars().first()
        uid = unit.id
    assert sa.get(f"/unitview/edit/{uid}").status_code == 200
    sec = app.test_client()
    login(sec, "secadmin")
    with app.app_context():
        clerk = db.session.execute(select(CEUser.id).where(CEUser.username == "clerk_a")).scalar_one()
    resp = sec.post(f"/security/accounts/{clerk}/end-sessions", data={"csrf_token": csrf_token(sec)},
                    follow_redirects=True)
    assert "已结束该账号" in resp.get_data(as_text=True)
    aud = app.test_client()
    login(aud, "auditor")
    html = aud.get("/auditlogview/list/?_flt_0_action=end_all_sessions").get_data(as_text=True)
    assert "secadmin" in html
    with app.app_context():
        assert db.session.execute(select(AuditLog).where(AuditLog.action == "end_all_sessions",
                                                         AuditLog.username == "secadmin")).first()


def test_admins_create_prints_one_time_passwords(app):
    runner = app.test_cli_runner()
    with app.app_context():
        for name in ("sysadmin", "secadmin", "auditor"):
            user = db.session.execute(select(CEUser).where(CEUser.username == name)).scalar_one()
            db.session.delete(user)
        db.session.commit()
    result = runner.invoke(args=["ce", "admins", "create"])
    assert result.exit_code == 0, result.output
    passwords = dict(line.split(" ", 1)[0:1] + [line.rsplit(" ", 1)[1]] for line in result.output.splitlines())
    assert set(passwords) == {"sysadmin", "secadmin", "auditor"} and len(set(passwords.values())) == 3
    assert "安全审计员" in result.output
    c = app.test_client()
    resp = login(c, "auditor", passwords["auditor"])
    assert resp.request.path == "/account/password"  # must change it first
    assert c.get("/auditlogview/list/").headers["Location"].endswith("/account/password")
    again = runner.invoke(args=["ce", "admins", "create"])
    assert again.output.count("already exists") == 3


# ---------------------------------------------------------------- the guard of 三员分立


def _user(app, username):
    with app.app_context():
        u = db.session.execute(select(CEUser).where(CEUser.username == username)).scalar_one()
        return u.id, sorted(r.name for r in u.roles), u.email, u.unit_id, u.region_code


def _role_id(app, name):
    with app.app_context():
        return app.appbuilder.sm.find_role(name).id


def _edit_roles(c, app, username, roles):
    pk, _roles, email, unit_id, region = _user(app, username)
    form = {"first_name": "x", "last_name": "y", "username": username, "email": email or f"{username}@demo.invalid",
            "active": "y", "roles": [str(_role_id(app, r)) for r in roles]}
    if unit_id:
        form["unit"] = str(unit_id)
    if region:
        form["region"] = region
    return post(c, f"/users/edit/{pk}", form, follow_redirects=True).get_data(as_text=True)


def test_security_administrator_cannot_grant_itself_or_cross_the_duties(app):
    c = app.test_client()
    assert login(c, "secadmin").request.path == "/"
    # Its own roles: not even adding one.
    for roles in (["SecAdmin", "Admin"], ["SecAdmin", "Auditor"], ["SysAdmin"], ["SecAdmin", "Bureau"]):
        html = _edit_roles(c, app, "secadmin", roles)
        assert "不能修改自己账号的角色" in html, roles
        assert _user(app, "secadmin")[1] == ["SecAdmin"]
    # Another account: never two administrators' duties, never an administrator with a business role,
    # never Admin (the demo's).
    html = _edit_roles(c, app, "auditor", ["Auditor", "SysAdmin"])
    assert "不能由同一账号兼任" in html and _user(app, "auditor")[1] == ["Auditor"]
    html = _edit_roles(c, app, "bureau_nj", ["Bureau", "Auditor"])
    assert "不能与业务角色" in html and _user(app, "bureau_nj")[1] == ["Bureau"]
    html = _edit_roles(c, app, "auditor", ["Admin"])
    assert "只能由超级管理员授予" in html and _user(app, "auditor")[1] == ["Auditor"]
    # Through a group: joining one that carries Admin, or giving a member's group a second duty.
    with app.app_context():
        audit_log = [a for a in db.session.execute(select(AuditLog.action)).scalars()]
    assert "grant_role" not in audit_log
    secadmin_id = _user(app, "secadmin")[0]
    auditor_id = _user(app, "auditor")[0]
    html = post(c, "/groups/add", {"name": "g_admin", "label": "g", "description": "",
                                   "users": [str(secadmin_id)], "roles": [str(_role_id(app, "Admin"))]},
                follow_redirects=True).get_data(as_text=True)
    assert "不能修改自己账号的角色" in html
    html = post(c, "/groups/add", {"name": "g_sys", "label": "g", "description": "",
                                   "users": [str(auditor_id)], "roles": [str(_role_id(app, "SysAdmin"))]},
                follow_redirects=True).get_data(as_text=True)
    assert "不能由同一账号兼任" in html
    with app.app_context():
        from flask_appbuilder.security.sqla.models import Group

        assert db.session.execute(select(Group).where(Group.name.in_(["g_admin", "g_sys"]))).first() is None
    # Its duty still works (an account of any unit of the province).
    html = _edit_roles(c, app, "clerk_b", ["UnitAdmin"])
    assert _user(app, "clerk_b")[1] == ["UnitAdmin"], html
