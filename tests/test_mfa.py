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
