"""Password hashes (app/security/passwords.py): Argon2id on every path that
stores a password; hashes made before (werkzeug's scrypt, pbkdf2) keep working
and are re-hashed with Argon2id at the next successful login."""
import json

from sqlalchemy import select
from werkzeug.security import generate_password_hash

from app.extensions import db
from app.models import AuditLog, CEUser
from app.models.security import AccountSecurity, UserSession
from app.security import passwords
from app.services.demo import DEMO_PASSWORD
from tests.conftest import login, post

GOOD_PW = "Jinling#Clerk7"


def text(resp):
    return resp.get_data(as_text=True)


def stored(username):
    return db.session.execute(select(CEUser).where(CEUser.username == username)).scalar_one()


def signed_in(resp):
    """After a login with redirects followed: on the home page, not back at the form."""
    return resp.request.path == "/" and "我的会话" in resp.get_data(as_text=True)


def set_hash(app, username, value):
    with app.app_context():
        stored(username).password = value
        db.session.commit()


def test_demo_accounts_are_argon2id_with_the_configured_parameters(app):
    with app.app_context():
        h = stored("clerk_a").password
        assert h.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert not passwords.needs_rehash(h)


def test_a_scrypt_hash_signs_in_and_is_upgraded_in_the_login(app):
    set_hash(app, "clerk_a", generate_password_hash(DEMO_PASSWORD, method="scrypt"))
    with app.app_context():
        user = stored("clerk_a")
        logins_before, uid = user.login_count or 0, user.id
    c = app.test_client()
    assert signed_in((login(c, "clerk_a")))
    with app.app_context():
        user = stored("clerk_a")
        assert user.password.startswith("$argon2id$")
        assert user.login_count == logins_before + 1  # the statistics and the new hash in one commit
        history = db.session.execute(select(AccountSecurity.password_history)
                                     .where(AccountSecurity.user_id == uid)).scalar()
        # A re-hash is not a password change: no history entry, the session lives on.
        assert not history or not any(h.startswith("scrypt:") for h in json.loads(history))
    assert "我的会话" in text(c.get("/", follow_redirects=True))
    # and the upgraded hash opens the account again
    assert signed_in((login(app.test_client(), "clerk_a")))


def test_a_pbkdf2_hash_signs_in_through_the_api_and_is_upgraded(app, client):
    set_hash(app, "bureau_nj", generate_password_hash(DEMO_PASSWORD, method="pbkdf2:sha256:600000"))
    resp = client.post("/api/v1/security/login", json={"username": "bureau_nj", "password": DEMO_PASSWORD,
                                                       "provider": "db"})
    assert resp.status_code == 200 and resp.get_json()["access_token"]
    with app.app_context():
        assert stored("bureau_nj").password.startswith("$argon2id$")


def test_a_wrong_password_fails_and_leaves_an_old_hash_alone(app):
    old = generate_password_hash(DEMO_PASSWORD, method="scrypt")
    set_hash(app, "clerk_a", old)
    c = app.test_client()
    assert not signed_in(login(c, "clerk_a", "Wrong#Pass99"))
    with app.app_context():
        user = stored("clerk_a")
        assert user.password == old and user.fail_login_count == 1
    # Argon2id hash, wrong password: refused as well
    assert not signed_in((login(app.test_client(), "clerk_b", "Wrong#Pass99")))
    # Unknown account: refused, audited like any failure
    assert not signed_in((login(app.test_client(), "nobody_here", DEMO_PASSWORD)))
    with app.app_context():
        failed = db.session.execute(select(AuditLog).where(AuditLog.action == "login_failed")).scalars().all()
        assert {a.username for a in failed} >= {"clerk_a", "clerk_b", "nobody_here"}


def test_weaker_argon2_parameters_are_upgraded_too(app):
    from argon2 import PasswordHasher

    set_hash(app, "clerk_a", PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(DEMO_PASSWORD))
    assert signed_in((login(app.test_client(), "clerk_a")))
    with app.app_context():
        assert stored("clerk_a").password.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_a_new_user_gets_an_argon2id_hash(app, login_as):
    ua = login_as("unitadmin_a")
    html = text(post(ua, "/accounts/users/add", {"first_name": "钱九", "username": "clerk_new1", "password": GOOD_PW},
                     follow_redirects=True))
    assert "账号clerk_new1已创建" in html
    with app.app_context():
        assert stored("clerk_new1").password.startswith("$argon2id$")
    # the system administrator's user form (FAB's UserDBModelView) as well
    admin = login_as("admin")
    with app.app_context():
        role = app.appbuilder.sm.find_role("UnitOperator").id
    post(admin, "/users/add", {"first_name": "孙", "last_name": "十", "username": "fab_user1", "active": "y",
                               "email": "fab_user1@example.invalid", "roles": role,
                               "password": GOOD_PW, "conf_password": GOOD_PW}, follow_redirects=True)
    with app.app_context():
        assert stored("fab_user1").password.startswith("$argon2id$")


def test_password_changes_and_resets_store_argon2id(app, login_as):
    c = login_as("clerk_a")
    with app.app_context():
        uid = stored("clerk_a").id
        # a password of before this change, its hash a scrypt one in the history
        acct = db.session.get(AccountSecurity, uid) or AccountSecurity(user_id=uid)
        acct.password_history = json.dumps([generate_password_hash("Older#Pass55", method="scrypt")])
        db.session.add(acct)
        db.session.commit()
    html = text(post(c, "/account/password", {"current": DEMO_PASSWORD, "password": DEMO_PASSWORD,
                                              "confirm": DEMO_PASSWORD}, follow_redirects=True))
    assert "新密码不能与当前密码相同" in html
    html = text(post(c, "/account/password", {"current": "Wrong#Pass99", "password": GOOD_PW, "confirm": GOOD_PW},
                     follow_redirects=True))
    assert "当前密码不正确" in html
    html = text(post(c, "/account/password", {"current": DEMO_PASSWORD, "password": "Older#Pass55",
                                              "confirm": "Older#Pass55"}, follow_redirects=True))
    assert "最近" in html
    html = text(post(c, "/account/password", {"current": DEMO_PASSWORD, "password": GOOD_PW, "confirm": GOOD_PW},
                     follow_redirects=True))
    assert "密码已修改" in html
    with app.app_context():
        user = stored("clerk_a")
        assert user.password.startswith("$argon2id$") and passwords.verify_password(user.password, GOOD_PW)
    assert signed_in(login(app.test_client(), "clerk_a", GOOD_PW))
    assert not signed_in(login(app.test_client(), "clerk_a", DEMO_PASSWORD))
    # a unit administrator's reset of a member's password
    ua = login_as("unitadmin_a")
    with app.app_context():
        clerk_a = stored("clerk_a").id
    post(ua, f"/accounts/users/{clerk_a}/reset", {"password": "Another#Pass9", "confirm": "Another#Pass9"},
         follow_redirects=True)
    # the system administrator's reset in FAB's own form
    admin = login_as("admin")
    with app.app_context():
        zhangsan = stored("zhangsan").id
    post(admin, f"/resetpassword/form?pk={zhangsan}", {"password": GOOD_PW, "conf_password": GOOD_PW},
         follow_redirects=True)
    with app.app_context():
        assert passwords.verify_password(stored("clerk_a").password, "Another#Pass9")
        assert passwords.verify_password(stored("zhangsan").password, GOOD_PW)
        assert stored("clerk_a").password.startswith("$argon2id$")
        assert stored("zhangsan").password.startswith("$argon2id$")


def test_cli_accounts_and_recovery_codes_are_argon2id(app):
    from app.security import mfa
    from app.services.accounts import create_national_account

    with app.app_context():
        region = stored("bureau_nj").region_code
        user, password = create_national_account(region, "national_sync1")
        assert user.password.startswith("$argon2id$") and passwords.verify_password(user.password, password)
        codes, hashes = mfa.new_recovery_codes()
        assert all(h.startswith("$argon2id$") for h in hashes)
        assert passwords.verify_password(hashes[0], codes[0]) and not passwords.verify_password(hashes[0], codes[1])


def test_verify_refuses_what_is_not_a_hash(app):
    with app.app_context():
        for bad in ("", None, "plain-text", "$argon2id$garbage", "md5$x$y"):
            assert passwords.verify_password(bad, "plain-text") is False
