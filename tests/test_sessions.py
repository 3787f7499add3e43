"""Server-side sessions (issue 25): a replayed cookie after logout, a password
change, disabling or a role change reaches the login page; idle and absolute
timeouts (the clock is moved, not slept); no session fixation; 我的会话; the
security administrator ends an account's sessions; API tokens follow the account."""
import datetime

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, CEUser
from app.models.security import UserSession
from app.security import sessions as S
from tests.conftest import login, post

PROTECTED = "/hourrecordview/list/"


def text(resp):
    return resp.get_data(as_text=True)


def sid_of(client):
    cookie = client.get_cookie("session")
    return cookie.value if cookie else None


def replay(app, sid):
    """A second browser presenting a copied cookie."""
    other = app.test_client()
    other.set_cookie("session", sid)
    return other


def on_login_page(resp):
    return resp.request.path == "/login/" and 'name="password"' in text(resp)


def user_id(app, username):
    with app.app_context():
        return db.session.execute(select(CEUser.id).where(CEUser.username == username)).scalar_one()


@pytest.fixture
def clock(monkeypatch):
    """Move the sessions' clock: clock.move(minutes=31)."""
    class Clock:
        offset = datetime.timedelta()

        def move(self, **kw):
            self.offset += datetime.timedelta(**kw)

    c = Clock()
    real = S.utcnow
    monkeypatch.setattr(S, "utcnow", lambda: real() + c.offset)
    return c


def test_cookie_carries_only_a_random_id_stored_hashed(app, login_as):
    c = login_as("clerk_a")
    sid = sid_of(c)
    assert len(sid) >= 40 and "." not in sid  # no signed payload, just the id
    with app.app_context():
        row = db.session.execute(select(UserSession).where(UserSession.sid_hash == S.sid_hash(sid))).scalar_one()
        assert row.user_id == user_id(app, "clerk_a") and row.ended_at is None
        assert sid not in (row.data or "")
        assert not db.session.execute(select(UserSession).where(UserSession.sid_hash == sid)).first()


def test_replayed_cookie_after_logout_reaches_the_login_page(app, login_as):
    c = login_as("clerk_a")
    sid = sid_of(c)
    assert replay(app, sid).get(PROTECTED).status_code == 200  # the copy works while the session lives
    c.get("/logout/")
    resp = replay(app, sid).get(PROTECTED, follow_redirects=True)
    assert on_login_page(resp)
    with app.app_context():
        row = db.session.execute(select(UserSession).where(UserSession.sid_hash == S.sid_hash(sid))).scalar_one()
        assert row.end_reason == "logout"


def test_password_change_ends_the_other_sessions_and_keeps_this_one(app, login_as):
    here, there = login_as("clerk_a"), login_as("clerk_a")
    old_here, old_there = sid_of(here), sid_of(there)
    resp = post(here, "/account/password", {"current": "Demo@2026", "password": "Fresh#Start42",
                                             "confirm": "Fresh#Start42"}, follow_redirects=True)
    assert "Fresh" not in text(resp) and resp.status_code == 200
    assert sid_of(here) != old_here  # re-issued
    assert here.get(PROTECTED).status_code == 200
    resp = there.get(PROTECTED, follow_redirects=True)
    assert on_login_page(resp) and "账号密码已修改" in text(resp)
    assert on_login_page(replay(app, old_there).get(PROTECTED, follow_redirects=True))
    assert on_login_page(replay(app, old_here).get(PROTECTED, follow_redirects=True))


def test_disabling_the_account_ends_its_sessions(app, login_as):
    clerk = login_as("clerk_a")
    sid = sid_of(clerk)
    ua = login_as("unitadmin_a")
    post(ua, f"/accounts/users/{user_id(app, 'clerk_a')}/active", {"active": "0"}, follow_redirects=True)
    resp = replay(app, sid).get(PROTECTED, follow_redirects=True)
    assert on_login_page(resp) and "账号已被停用" in text(resp)


def test_a_role_change_by_any_code_path_ends_the_sessions(app, login_as):
    clerk = login_as("clerk_a")
    with app.app_context():
        user = db.session.execute(select(CEUser).where(CEUser.username == "clerk_a")).scalar_one()
        admin_role = app.appbuilder.sm.find_role("UnitAdmin")
        user.roles = list(user.roles) + [admin_role]
        db.session.commit()
    resp = clerk.get(PROTECTED, follow_redirects=True)
    assert on_login_page(resp) and "角色已变更" in text(resp)


def test_idle_timeout(app, login_as, clock):
    c = login_as("clerk_a")
    clock.move(minutes=29)
    assert c.get(PROTECTED).status_code == 200  # activity moves the idle mark
    clock.move(minutes=29)
    assert c.get(PROTECTED).status_code == 200
    clock.move(minutes=31)
    resp = c.get(PROTECTED, follow_redirects=True)
    assert on_login_page(resp) and "30 分钟未操作" in text(resp)


def test_absolute_lifetime(app, login_as, clock):
    c = login_as("clerk_a")
    for _ in range(40):  # busy all day, never idle
        clock.move(minutes=20)
        resp = c.get(PROTECTED, follow_redirects=True)
        if resp.request.path == "/login/":
            break
    assert on_login_page(resp) and "12 小时" in text(resp)
    assert 11.9 * 60 <= clock.offset.total_seconds() / 60 <= 12.4 * 60


def test_a_session_id_known_before_login_is_not_the_one_after(app):
    c = app.test_client()
    c.get("/login/")
    before = sid_of(c)
    assert before  # the login form's CSRF token lives in a server-side session
    assert login(c, "clerk_a").status_code == 200
    after = sid_of(c)
    assert after and after != before
    assert c.get(PROTECTED).status_code == 200
    # The attacker who planted `before` holds an anonymous session, not the victim's.
    assert on_login_page(replay(app, before).get(PROTECTED, follow_redirects=True))


def test_my_sessions_lists_and_ends_a_session(app, login_as):
    here, there = login_as("clerk_a"), login_as("clerk_a")
    html = text(here.get("/my/sessions/"))
    assert html.count('class="session-row"') == 2 and "当前会话" in html
    with app.app_context():
        there_row = db.session.execute(
            select(UserSession.id).where(UserSession.sid_hash == S.sid_hash(sid_of(there)))).scalar_one()
    resp = post(here, f"/my/sessions/{there_row}/end", follow_redirects=True)
    assert "会话已结束" in text(resp) and text(resp).count('class="session-row"') == 1
    resp = there.get(PROTECTED, follow_redirects=True)
    assert on_login_page(resp) and "此会话已被结束" in text(resp)
    # Another user's session cannot be ended from here.
    other = login_as("clerk_b")
    with app.app_context():
        other_row = db.session.execute(
            select(UserSession.id).where(UserSession.sid_hash == S.sid_hash(sid_of(other)))).scalar_one()
    assert "会话不存在或已结束" in text(post(here, f"/my/sessions/{other_row}/end", follow_redirects=True))
    assert other.get(PROTECTED).status_code == 200


def test_security_administrator_ends_all_sessions_of_an_account(app, login_as):
    a, b = login_as("clerk_a"), login_as("clerk_a")
    admin = login_as("admin")
    uid = user_id(app, "clerk_a")
    html = text(admin.get("/security/accounts/?username=clerk_a"))
    assert html.count('class="session-row"') == 2
    resp = post(admin, f"/security/accounts/{uid}/end-sessions", follow_redirects=True)
    assert "已结束该账号的 2 个会话" in text(resp)
    for c in (a, b):
        assert on_login_page(c.get(PROTECTED, follow_redirects=True))
    with app.app_context():
        entry = db.session.execute(select(AuditLog).where(AuditLog.action == "end_all_sessions")).scalar_one()
        assert entry.username == "admin" and "clerk_a" in entry.detail
    # A user without the permission is refused.
    clerk, victim = login_as("clerk_b"), login_as("clerk_a")
    assert post(clerk, f"/security/accounts/{uid}/end-sessions").status_code in (302, 403)
    assert "session-row" not in text(clerk.get("/security/accounts/?username=clerk_a", follow_redirects=True))
    assert victim.get(PROTECTED).status_code == 200


def _token(client, username="bureau_nj", password="Demo@2026"):
    resp = client.post("/api/v1/security/login", json={"username": username, "password": password, "provider": "db"})
    assert resp.status_code == 200, text(resp)
    return {"Authorization": "Bearer " + resp.get_json()["access_token"]}


API = "/api/v1/national_record/changes"


def test_api_token_refused_after_ending_sessions_and_after_disabling(app, client, login_as):
    auth = _token(client)
    assert client.get(API, headers=auth).status_code == 200
    admin = login_as("admin")
    uid = user_id(app, "bureau_nj")
    post(admin, f"/security/accounts/{uid}/end-sessions")
    assert client.get(API, headers=auth).status_code == 401
    auth = _token(client)  # a new login gets a working token
    assert client.get(API, headers=auth).status_code == 200
    with app.app_context():
        db.session.get(CEUser, uid).active = False
        db.session.commit()
    assert client.get(API, headers=auth).status_code == 401


def test_api_token_refused_after_a_password_change(app, client):
    auth = _token(client)
    with app.app_context():
        from werkzeug.security import generate_password_hash

        db.session.get(CEUser, user_id(app, "bureau_nj")).password = generate_password_hash("Another#Pass9")
        db.session.commit()
    assert client.get(API, headers=auth).status_code == 401
    assert client.get(API, headers=_token(client, password="Another#Pass9")).status_code == 200


def test_purge_drops_stale_anonymous_sessions(app, clock):
    c = app.test_client()
    c.get("/login/")
    with app.app_context():
        before = db.session.query(UserSession).count()
    clock.move(hours=13)
    with app.app_context():
        assert S.purge() >= 1
        assert db.session.query(UserSession).count() < before


def test_home_page_shows_the_previous_login_and_failures_since(app):
    c = app.test_client()
    html = text(login(c, "clerk_a"))
    assert "这是您的账号第一次登录" in html and "我的会话" in html
    c.get("/logout/")
    login(app.test_client(), "clerk_a", "wrong-password-1")
    login(app.test_client(), "clerk_a", "wrong-password-2")
    c = app.test_client()
    html = text(login(c, "clerk_a"))
    assert "上次登录：" in html and "127.0.0.1" in html
    assert "有 2 次登录失败" in html
    c.get("/logout/")
    html = text(login(app.test_client(), "clerk_a"))
    assert "自上次登录以来没有失败的登录尝试" in html


def test_password_rule_refuses_the_last_five_passwords(app, login_as):
    c = login_as("clerk_a")
    current = "Base#First01"
    post(c, "/account/password", {"current": "Demo@2026", "password": current, "confirm": current})
    used = [current]
    for i in range(6):
        new = f"Fresh#Start{i}x"
        resp = post(c, "/account/password", {"current": current, "password": new, "confirm": new},
                    follow_redirects=True)
        assert "密码已修改" in text(resp)
        current = new
        used.append(new)
    for old in used[1:-1]:  # the 5 before the current one (Base#First01 is the 6th back)
        resp = post(c, "/account/password", {"current": current, "password": old, "confirm": old},
                    follow_redirects=True)
        assert "新密码不能与最近 5 次使用过的密码相同" in text(resp), old
    resp = post(c, "/account/password", {"current": current, "password": used[0], "confirm": used[0]},
                follow_redirects=True)
    assert "不能与最近" not in text(resp) and "密码已修改" in text(resp)


def _timeouts(app, username):
    import json

    with app.app_context():
        rows = db.session.execute(select(AuditLog).where(AuditLog.action == "session_timeout",
                                                         AuditLog.username == username)
                                  .order_by(AuditLog.id)).scalars().all()
        return [(r, json.loads(r.detail)) for r in rows]


def test_an_idle_timeout_found_at_the_next_request_is_audited_once(app, login_as, clock):
    c = login_as("clerk_a")
    sid = sid_of(c)
    c.get(PROTECTED, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    clock.move(minutes=31)
    resp = c.get(PROTECTED, follow_redirects=True, environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert on_login_page(resp)
    # The copied cookie, the same browser again, the sweep: nothing more is recorded.
    assert on_login_page(replay(app, sid).get(PROTECTED, follow_redirects=True))
    with app.app_context():
        assert S.end_expired() == 0
    entries = _timeouts(app, "clerk_a")
    assert len(entries) == 1
    row, detail = entries[0]
    with app.app_context():
        session_row = db.session.execute(select(UserSession).where(UserSession.sid_hash == S.sid_hash(sid))).scalar_one()
    assert row.user_id == user_id(app, "clerk_a") and row.object_id == str(row.user_id)
    assert row.ip == session_row.ip and session_row.end_reason == "idle"
    assert detail["event"] == "登录超时" and detail["timeout"] == "idle" and detail["outcome"] == "session_ended"
    assert detail["found_by"] == "request" and detail["seen_from"] == "10.9.9.9"
    assert detail["session"] == session_row.id
    last = datetime.datetime.fromisoformat(detail["last_activity"])
    assert datetime.datetime.fromisoformat(detail["expired_at"]) - last == datetime.timedelta(minutes=30)
    assert abs((row.at - session_row.ended_at).total_seconds()) < 1
    assert row.region_code and row.unit_id  # in the unit's scope of the log
    # The entry is in a chain like every other one.
    with app.app_context():
        from app.services import audit_chain

        assert audit_chain.verify()[1] == []
    # The auditor's page shows it.
    html = text(login_as("admin").get(f"/auditlogview/show/{row.id}"))
    assert "session_timeout" in html and "登录超时" in html and "idle" in html


def test_an_absolute_timeout_found_by_the_sweep_is_audited_once(app, login_as, clock):
    from app.cli import sessions_sweep_cmd

    busy, idle = login_as("clerk_a"), login_as("clerk_b")
    for _ in range(35):  # clerk_a busy all day (11 h 40 min); clerk_b left long ago
        clock.move(minutes=20)
        assert busy.get(PROTECTED).status_code == 200
    clock.move(minutes=25)  # 12 h 5 min after the login, 25 min after the last request
    with app.app_context():
        out = app.test_cli_runner().invoke(sessions_sweep_cmd)
    assert out.exit_code == 0 and "timed out: 2" in out.output, out.output
    (a_row, a), = _timeouts(app, "clerk_a")
    (b_row, b), = _timeouts(app, "clerk_b")
    assert a["timeout"] == "absolute" and a["found_by"] == "sweep" and a["seen_from"] is None
    started = datetime.datetime.fromisoformat(a["started"])
    assert datetime.datetime.fromisoformat(a["expired_at"]) - started == datetime.timedelta(hours=12)
    assert b["timeout"] == "idle"
    # Presented afterwards: the login page says why, nothing more is recorded.
    resp = busy.get(PROTECTED, follow_redirects=True)
    assert on_login_page(resp)
    with app.app_context():
        assert S.end_expired() == 0
    assert len(_timeouts(app, "clerk_a")) == 1 and len(_timeouts(app, "clerk_b")) == 1


def test_logout_is_not_a_timeout(app, login_as, clock):
    c = login_as("clerk_a")
    c.get("/logout/")
    clock.move(hours=13)
    with app.app_context():
        assert S.end_expired() == 0
    assert _timeouts(app, "clerk_a") == []


def test_my_sessions_and_the_audit_log_show_beijing_time(app, login_as):
    """Stored UTC, shown as Beijing time (UTC+8) and said so: 我的会话, the security
    administrator's session list, the audit log's list and detail pages."""
    import re

    c = login_as("clerk_a")
    with app.app_context():
        row = db.session.execute(select(UserSession).where(UserSession.sid_hash == S.sid_hash(sid_of(c)))).scalar_one()
        now = datetime.datetime.utcnow().replace(microsecond=0)
        row.authenticated_at, row.last_seen = now - datetime.timedelta(minutes=10), now - datetime.timedelta(seconds=5)
        db.session.commit()
    shown = [(t + datetime.timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")
             for t in (now - datetime.timedelta(minutes=10), now - datetime.timedelta(seconds=5))]
    utc = (now - datetime.timedelta(minutes=10)).strftime("%Y-%m-%d %H:%M:%S")
    S.TOUCH_SECONDS, touch = 10 ** 9, S.TOUCH_SECONDS  # this visit leaves last_seen as set
    try:
        html = text(c.get("/my/sessions/"))
        admin_html = text(login_as("admin").get("/security/accounts/?username=clerk_a"))
    finally:
        S.TOUCH_SECONDS = touch
    for page in (html, admin_html):
        assert "登录时间（北京时间）" in page and "最近活动（北京时间）" in page
        assert shown[0] in page and shown[1] in page and utc not in page
    with app.app_context():
        entry = db.session.execute(select(AuditLog).where(AuditLog.username == "clerk_a", AuditLog.action == "login")
                                   .order_by(AuditLog.id.desc())).scalars().first()
        at = entry.at
    beijing = (at + datetime.timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")
    admin = login_as("admin")
    listing = text(admin.get("/auditlogview/list/?_flt_0_username=clerk_a"))
    assert "时间（北京时间）" in listing and beijing in listing
    assert at.strftime("%Y-%m-%d %H:%M:%S") not in listing
    assert beijing in text(admin.get(f"/auditlogview/show/{entry.id}"))
    # A time typed into the filter is Beijing time too.
    since = (at + datetime.timedelta(hours=8) - datetime.timedelta(seconds=2)).strftime("%Y-%m-%d %H:%M:%S")
    listing = text(admin.get(f"/auditlogview/list/?_flt_0_username=clerk_a&_flt_1_at={since}"))
    assert beijing in listing
    later = (at + datetime.timedelta(hours=8, seconds=2)).strftime("%Y-%m-%d %H:%M:%S")
    listing = text(admin.get(f"/auditlogview/list/?_flt_0_username=clerk_a&_flt_1_at={later}&_flt_0_action=login"))
    assert not re.search(re.escape(beijing), listing)
