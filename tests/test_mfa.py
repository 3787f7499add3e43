"""The second factor (issue 25): enrolment with a QR code drawn by the app and
the secret as text, a good code, a replayed code refused, a recovery code used
once, wrong codes counted as failed logins, a reset by the security
administrator in the audit log, the banner when the second factor is off."""
import datetime
import re

import pyotp
import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, CEUser
from app.models.security import AccountSecurity
from tests.conftest import login, post


def text(resp):
    return resp.get_data(as_text=True)


@pytest.fixture
def mfa_on(app):
    before = app.config["MFA_ROLES"]
    app.config["MFA_ROLES"] = ("Bureau", "Admin")
    yield
    app.config["MFA_ROLES"] = before


def _uid(app, username):
    with app.app_context():
        return db.session.execute(select(CEUser.id).where(CEUser.username == username)).scalar_one()


def _fail_count(app, username):
    with app.app_context():
        return db.session.execute(select(CEUser.fail_login_count).where(CEUser.username == username)).scalar()


def _code(secret, steps=0):
    at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=30 * steps)
    return pyotp.TOTP(secret).at(at)


def _enrol(app, username="bureau_nj"):
    c = app.test_client()
    resp = login(c, username)
    assert resp.request.path == "/mfa/enroll"
    html = text(resp)
    assert "<svg" in html and "绑定动态口令" in html  # the QR code, drawn by the app (no outside image)
    assert "http" not in re.search(r'<div class="text-center" id="mfa-qr"[^>]*>(.*?)</div>', html, re.S).group(1) \
        .replace("http://www.w3.org/2000/svg", "")
    secret = re.search(r'<code id="mfa-secret">([A-Z2-7]+)</code>', html).group(1)
    return c, secret


def test_enrolment_good_code_replay_and_recovery_codes(app, mfa_on):
    c, secret = _enrol(app)
    # Held on the enrolment page until it is done, pages and API alike.
    assert c.get("/hourrecordview/list/").headers["Location"].endswith("/mfa/enroll")
    assert c.get("/api/v1/national_record/changes").status_code == 401
    before = _fail_count(app, "bureau_nj")
    resp = post(c, "/mfa/enroll", {"code": "000000" if _code(secret) != "000000" else "111111"}, follow_redirects=True)
    assert "动态口令不正确" in text(resp)
    assert _fail_count(app, "bureau_nj") == before + 1  # a wrong code counts as a failed login
    first = _code(secret)
    resp = post(c, "/mfa/enroll", {"code": first}, follow_redirects=True)
    codes = re.findall(r"<li><code>([0-9a-f-]+)</code></li>", text(resp))
    assert len(codes) == 10 and len(set(codes)) == 10 and "只显示这一次" in text(resp)
    resp = post(c, "/mfa/recovery", {}, follow_redirects=True)
    assert resp.request.path == "/" and c.get("/hourrecordview/list/").status_code == 200
    assert "只显示这一次" not in text(c.get("/mfa/recovery", follow_redirects=True))  # shown once
    with app.app_context():
        acct = db.session.get(AccountSecurity, _uid(app, "bureau_nj"))
        assert acct.mfa_secret and secret not in acct.mfa_secret  # stored encrypted
        assert all(code not in acct.recovery_codes for code in codes)  # stored hashed
    c.get("/logout/")

    # Next login: the code of the enrolment is not accepted again (replay), the next one is.
    c = app.test_client()
    assert login(c, "bureau_nj").request.path == "/mfa/verify"
    resp = post(c, "/mfa/verify", {"code": first}, follow_redirects=True)
    assert "动态口令不正确或已使用过" in text(resp) and resp.request.path == "/mfa/verify"
    nxt = _code(secret, 1)
    resp = post(c, "/mfa/verify", {"code": nxt}, follow_redirects=True)
    assert resp.request.path == "/" and c.get("/hourrecordview/list/").status_code == 200
    c.get("/logout/")

    # A recovery code works once.
    c = app.test_client()
    login(c, "bureau_nj")
    assert post(c, "/mfa/verify", {"code": nxt}, follow_redirects=True).request.path == "/mfa/verify"
    resp = post(c, "/mfa/verify", {"recovery_code": codes[3]}, follow_redirects=True)
    assert resp.request.path == "/"
    c.get("/logout/")
    c = app.test_client()
    login(c, "bureau_nj")
    resp = post(c, "/mfa/verify", {"recovery_code": codes[3]}, follow_redirects=True)
    assert "恢复码不正确或已使用过" in text(resp)
    assert c.get("/hourrecordview/list/").headers["Location"].endswith("/mfa/verify")
    with app.app_context():
        actions = db.session.execute(select(AuditLog.action).where(AuditLog.username == "bureau_nj")).scalars().all()
        assert "enable_mfa" in actions and actions.count("mfa_passed") == 2


def test_too_many_wrong_codes_log_out(app, mfa_on):
    app.config["MFA_MAX_FAILURES"] = 3
    try:
        c, secret = _enrol(app)
        post(c, "/mfa/enroll", {"code": _code(secret)})
        post(c, "/mfa/recovery", {})
        c.get("/logout/")
        c = app.test_client()
        login(c, "bureau_nj")
        wrong = "123456" if _code(secret) != "123456" else "654321"
        for _ in range(3):
            resp = post(c, "/mfa/verify", {"code": wrong}, follow_redirects=True)
        assert resp.request.path == "/login/" and "错误次数过多" in text(resp)
        assert c.get("/hourrecordview/list/", follow_redirects=True).request.path == "/login/"
    finally:
        app.config["MFA_MAX_FAILURES"] = 5


def test_reset_by_the_security_administrator_is_audited(app, mfa_on):
    c, secret = _enrol(app)
    post(c, "/mfa/enroll", {"code": _code(secret)})
    post(c, "/mfa/recovery", {})
    assert c.get("/hourrecordview/list/").status_code == 200
    app.config["MFA_ROLES"] = ("Bureau",)  # the administrator itself signs in with a password here
    admin = app.test_client()
    login(admin, "admin")
    uid = _uid(app, "bureau_nj")
    assert "已绑定" in text(admin.get("/security/accounts/?username=bureau_nj"))
    resp = post(admin, f"/security/accounts/{uid}/reset-mfa", follow_redirects=True)
    assert "已重置该账号的动态口令" in text(resp) and "未绑定" in text(resp)
    with app.app_context():
        entry = db.session.execute(select(AuditLog).where(AuditLog.action == "reset_mfa")).scalar_one()
        assert entry.username == "admin" and "bureau_nj" in entry.detail
        assert db.session.get(AccountSecurity, uid).mfa_secret is None
    # Its sessions ended; the next login enrols again.
    resp = c.get("/hourrecordview/list/", follow_redirects=True)
    assert resp.request.path == "/login/" and "动态口令已被重置" in text(resp)
    assert login(app.test_client(), "bureau_nj").request.path == "/mfa/enroll"


def test_roles_outside_mfa_roles_sign_in_with_the_password(app, mfa_on):
    c = app.test_client()
    assert login(c, "clerk_a").request.path == "/"
    assert c.get("/hourrecordview/list/").status_code == 200


def test_banner_when_the_second_factor_is_off(app, login_as):
    assert app.config["MFA_ROLES"] == ()
    assert "第二重身份鉴别（动态口令）未启用" in text(login_as("admin").get("/"))
    assert "第二重身份鉴别" not in text(login_as("clerk_a").get("/"))


def test_no_banner_when_on(app, mfa_on):
    app.config["MFA_ROLES"] = ("Bureau",)
    assert "第二重身份鉴别（动态口令）未启用" not in text(login(app.test_client(), "admin"))


# ---------------------------------------------------------------- the API's JWT login

API_LOGIN = "/api/v1/security/login"
API = "/api/v1/national_record/changes"


def _api_login(client, username, **extra):
    return client.post(API_LOGIN, json={"username": username, "password": "Demo@2026", "provider": "db", **extra})


def test_api_login_of_an_mfa_role_needs_the_code(app, mfa_on):
    api = app.test_client()
    # Not enrolled yet: refused, told to enrol on the web first.
    resp = _api_login(api, "bureau_nj", totp="123456")
    assert resp.status_code == 401 and "尚未绑定" in resp.get_json()["message"]
    c, secret = _enrol(app)
    post(c, "/mfa/enroll", {"code": _code(secret)})
    codes = re.findall(r"<li><code>([0-9a-f-]+)</code></li>", text(c.get("/mfa/recovery")))
    post(c, "/mfa/recovery", {})
    # Without the code: a JSON refusal in Chinese, no token.
    resp = _api_login(api, "bureau_nj")
    assert resp.status_code == 401 and "totp" in resp.get_json()["message"]
    assert "access_token" not in resp.get_json()
    before = _fail_count(app, "bureau_nj")
    wrong = "123456" if _code(secret, 1) != "123456" else "654321"
    resp = _api_login(api, "bureau_nj", totp=wrong)
    assert resp.status_code == 401 and "动态口令不正确" in resp.get_json()["message"]
    assert _fail_count(app, "bureau_nj") == before + 1
    good = _code(secret, 1)  # the enrolment used the current step
    resp = _api_login(api, "bureau_nj", totp=good)
    assert resp.status_code == 200, resp.get_json()
    token = resp.get_json()["access_token"]
    assert api.get(API, headers={"Authorization": "Bearer " + token}).status_code == 200
    # The same code again (replay) is refused; a recovery code works once.
    assert _api_login(api, "bureau_nj", totp=good).status_code == 401
    assert _api_login(api, "bureau_nj", totp=codes[0]).status_code == 200
    resp = _api_login(api, "bureau_nj", totp=codes[0])
    assert resp.status_code == 401 and "恢复码不正确或已使用过" in resp.get_json()["message"]
    # A malformed code field is a 400 naming it.
    resp = _api_login(api, "bureau_nj", totp=123456)
    assert resp.status_code == 400 and resp.get_json()["field"] == "totp"


def test_api_login_outside_mfa_roles_and_the_national_account_keep_their_password(app, mfa_on):
    from app.services.accounts import create_national_account

    app.config["MFA_ROLES"] = ("Bureau", "Admin", "NationalSync")  # even when listed by mistake
    with app.app_context():
        user, password = create_national_account("320100", "national_mfa_test")
        db.session.commit()
    api = app.test_client()
    resp = api.post(API_LOGIN, json={"username": "national_mfa_test", "password": password, "provider": "db"})
    assert resp.status_code == 200
    token = resp.get_json()["access_token"]
    assert api.get(API, headers={"Authorization": "Bearer " + token}).status_code == 200
    assert _api_login(api, "clerk_a").status_code == 200
