"""Client address behind proxies (TRUSTED_PROXY_HOPS) and failed-login limits
(issue 18): failures are counted per account and per address, successes never.

The same behaviour through a real nginx, gunicorn and Redis: tests/stack/."""
import logging
import re
import socket

import pytest
from sqlalchemy import select

from app import create_app
from app.extensions import db
from app.models import AuditLog, CEUser
from tests.conftest import _config
from tests.test_accounts import redis_url  # noqa: F401  (fixture: a throw-away redis-server)

PW = "Demo@2026"


def text(resp):
    return resp.get_data(as_text=True)


def _app(backend, **settings):
    settings.setdefault("WTF_CSRF_ENABLED", False)
    base = _config(backend.work_url)
    return create_app(type("Cfg", (base,), settings))


def _limited(backend, **settings):
    return _app(backend, AUTH_RATE_LIMITED=True, RATELIMIT_ENABLED=True, **settings)


def _login(app, username, password=PW, xff=None):
    """A login by a new browser (a signed-in client is not shown the form again)."""
    headers = {"X-Forwarded-For": xff} if xff else {}
    return app.test_client().post("/login/", data={"username": username, "password": password}, headers=headers)


def _logged_in(resp):
    return resp.status_code == 302 and "/login" not in resp.headers.get("Location", "")


def _login_ips(app, username, action="login"):
    with app.app_context():
        rows = db.session.execute(
            select(AuditLog.ip).where(AuditLog.action == action, AuditLog.username == username).order_by(AuditLog.id)
        ).scalars().all()
        db.session.remove()
        return rows


# ---------------------------------------------------------------- client address


def test_spoofed_forwarded_for_is_ignored_without_a_trusted_proxy(backend, app):
    other = _limited(backend, AUTH_FAILED_PER_ADDRESS="3 per minute", AUTH_FAILED_PER_ACCOUNT="100 per minute")
    assert other.config["TRUSTED_PROXY_HOPS"] == 0
    assert _logged_in(_login(other, "clerk_a", xff="203.0.113.9"))
    assert _login_ips(other, "clerk_a") == ["127.0.0.1"]
    # A guesser cannot escape the per-address limit by inventing addresses.
    for n in range(3):
        assert _login(other, f"nobody{n}", "wrong-pw", xff=f"198.51.100.{n}").status_code == 302
    resp = _login(other, "clerk_b", xff="198.51.100.77")
    assert resp.status_code == 429 and "网络地址的登录失败次数过多" in text(resp)
    assert set(_login_ips(other, "nobody0", "login_failed")) == {"127.0.0.1"}


def test_one_trusted_proxy_hop_uses_the_address_it_saw(backend, app):
    other = _limited(backend, TRUSTED_PROXY_HOPS=1, AUTH_FAILED_PER_ADDRESS="3 per minute",
                     AUTH_FAILED_PER_ACCOUNT="100 per minute")
    # The client wrote the first entry; the proxy appended the address it saw: the last one counts.
    assert _logged_in(_login(other, "clerk_a", xff="10.9.9.9, 203.0.113.9"))
    assert _login_ips(other, "clerk_a") == ["203.0.113.9"]
    for n in range(3):
        assert _login(other, f"nobody{n}", "wrong-pw", xff="203.0.113.50").status_code == 302
    assert _login(other, "clerk_b", xff="203.0.113.50").status_code == 429
    # Another client address behind the same proxy is not refused.
    assert _logged_in(_login(other, "clerk_b", xff="1.2.3.4, 203.0.113.51"))
    assert _login_ips(other, "clerk_b") == ["203.0.113.51"]


def test_forwarded_proto_is_believed_only_from_a_trusted_proxy(backend, app):
    from flask import request

    for hops, scheme, ip in ((0, "http", "127.0.0.1"), (1, "https", "203.0.113.9")):
        other = _app(backend, TRUSTED_PROXY_HOPS=hops)
        seen = {}

        @other.route("/_probe_scheme")
        def probe():
            seen.update(scheme=request.scheme, ip=request.remote_addr)
            return "ok"

        other.test_client().get("/_probe_scheme", headers={"X-Forwarded-Proto": "https",
                                                            "X-Forwarded-For": "203.0.113.9"})
        assert seen == {"scheme": scheme, "ip": ip}


# ---------------------------------------------------------------- failed-login limits


def _many_accounts(app, n):
    """n more accounts of clerk_a's unit with clerk_a's password (its hash copied:
    hashing n passwords would take longer than the test)."""
    with app.app_context():
        clerk = db.session.execute(select(CEUser).where(CEUser.username == "clerk_a")).scalar_one()
        for i in range(n):
            db.session.add(CEUser(username=f"office{i:03d}", first_name="同事", last_name=str(i),
                                  email=f"office{i}@demo.invalid", active=True, password=clerk.password,
                                  roles=list(clerk.roles), unit_id=clerk.unit_id, person_id=None,
                                  must_change_password=False))
        db.session.commit()
        db.session.remove()


def test_a_whole_office_behind_one_address_logs_in(backend, app):
    """Old limit: the 11th login of a minute from one address was refused (429).
    Now 40 colleagues behind one NAT address all log in, with the default limits,
    even though a few of them mistype their password first."""
    other = _limited(backend)
    assert other.config["AUTH_FAILED_PER_ADDRESS"] == "30 per minute"
    _many_accounts(other, 40)
    ok = 0
    for i in range(40):
        if i % 8 == 0:
            assert _login(other, f"office{i:03d}", "typo-pw").status_code == 302
        resp = _login(other, f"office{i:03d}")
        ok += _logged_in(resp)
    assert ok == 40
    assert len(_login_ips(other, "office039")) == 1


def test_an_account_under_attack_is_refused_from_any_address(backend, app):
    other = _limited(backend, TRUSTED_PROXY_HOPS=1, AUTH_FAILED_PER_ACCOUNT="5 per 10 minute")
    for n in range(5):  # a botnet: every guess from another address
        resp = _login(other, "clerk_a", f"guess-{n}", xff=f"198.51.100.{n}")
        assert resp.status_code == 302 and not _logged_in(resp)
    # Now even the right password from a fresh address is refused, with the time to retry.
    resp = _login(other, "clerk_a", PW, xff="203.0.113.200")
    assert resp.status_code == 429
    html = text(resp)
    assert "该账号登录失败次数过多" in html and "分钟后" in html
    assert re.search(r"请于 \d\d:\d\d（约 (9|10) 分钟后）再试", html), html
    assert 500 <= int(resp.headers["Retry-After"]) <= 600
    assert len(_login_ips(other, "clerk_a", "login_failed")) == 5  # the refused try is not checked at all
    assert _login_ips(other, "clerk_a") == []
    # Case and blanks do not make a new account name.
    assert _login(other, " CLERK_A ", PW, xff="203.0.113.201").status_code == 429
    # Other accounts are not affected.
    assert _logged_in(_login(other, "clerk_b", xff="198.51.100.1"))
    # The API's JWT login counts the same failures.
    resp = other.test_client().post("/api/v1/security/login", json={"username": "clerk_a", "password": PW,
                                                                     "provider": "db"})
    assert resp.status_code == 429 and "该账号登录失败次数过多" in resp.get_json()["message"]


def test_lockout_ends_when_an_admin_resets_the_password(backend, app):
    other = _limited(backend, AUTH_FAILED_PER_ACCOUNT="2 per 10 minute")
    for n in range(2):
        _login(other, "clerk_a", f"guess-{n}")
    assert _login(other, "clerk_a").status_code == 429
    with other.app_context():
        sm = other.appbuilder.sm
        with other.test_request_context("/"):
            sm.reset_password(db.session.execute(select(CEUser.id).where(CEUser.username == "clerk_a")).scalar(),
                              "Jinling#Clerk7")
        db.session.remove()
    assert _login(other, "clerk_a", "Jinling#Clerk7").status_code == 302


def test_api_login_failures_count_per_account(backend, app):
    other = _limited(backend, AUTH_FAILED_PER_ACCOUNT="3 per 10 minute")
    c = other.test_client()
    for n in range(3):
        resp = c.post("/api/v1/security/login", json={"username": "bureau_js", "password": f"x{n}",
                                                      "provider": "db"})
        assert resp.status_code == 401
    resp = c.post("/api/v1/security/login", json={"username": "bureau_js", "password": PW, "provider": "db"})
    assert resp.status_code == 429 and resp.headers["Retry-After"]


def test_registration_keeps_its_own_limit(backend, app):
    other = _limited(backend, AUTH_RATE_LIMIT="3 per minute")
    c = other.test_client()
    codes = [c.post("/register/person", data={}).status_code for _ in range(4)]
    assert codes[:3] == [200, 200, 200] and codes[3] == 429
    # ... which is not the login's.
    assert _logged_in(_login(other, "clerk_a"))


def test_limits_off_when_auth_rate_limited_is_off(backend, app):
    other = _app(backend, AUTH_FAILED_PER_ACCOUNT="1 per minute")
    for n in range(3):
        _login(other, "clerk_a", f"guess-{n}")
    assert _logged_in(_login(other, "clerk_a"))


def test_counters_are_shared_through_redis(backend, app, redis_url):  # noqa: F811
    settings = dict(AUTH_FAILED_PER_ACCOUNT="3 per 10 minute", REDIS_URL=redis_url, RATELIMIT_STORAGE_URI=redis_url)
    one, two = _limited(backend, **settings), _limited(backend, **settings)
    _login(one, "clerk_a", "x1")
    _login(two, "clerk_a", "x2")
    _login(one, "clerk_a", "x3")
    resp = _login(two, "clerk_a")
    assert resp.status_code == 429 and "该账号登录失败次数过多" in text(resp)


def test_redis_down_never_blocks_logins(backend, app, caplog):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{s.getsockname()[1]}/0"
    other = _limited(backend, AUTH_FAILED_PER_ACCOUNT="3 per 10 minute", REDIS_URL=dead,
                     RATELIMIT_STORAGE_URI=dead)
    c = other.test_client()
    # Alembic's logging set-up (the migrations that built the template) disables
    # the loggers that existed then; a server process never runs it.
    logging.getLogger("app.security.login_limits").disabled = False
    with caplog.at_level(logging.WARNING, logger="app.security.login_limits"):
        assert _logged_in(_login(other, "clerk_b"))
    assert any("unreachable" in r.getMessage() for r in caplog.records)
    # The process still counts failures (in its own memory).
    for n in range(3):
        _login(other, "clerk_a", f"x{n}")
    assert _login(other, "clerk_a").status_code == 429
    # The registration pages' limit (Flask-Limiter) falls back too instead of failing.
    assert c.post("/register/person", data={}).status_code == 200


@pytest.mark.parametrize("username", ["", "   "])
def test_empty_account_name_is_not_counted(backend, app, username):
    other = _limited(backend, AUTH_FAILED_PER_ACCOUNT="1 per minute", AUTH_FAILED_PER_ADDRESS="100 per minute")
    for _ in range(3):
        assert _login(other, username, "x").status_code in (200, 302)
    assert _logged_in(_login(other, "clerk_a"))
