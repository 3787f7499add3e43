"""Portal login (issue 23), the refusals: a real HTTP client against the live
server, the ticket-scheme test portal and a real OpenID Connect provider
(oidc-provider).  Bad, replayed and forged tickets, a wrong signature, a
mismatched state, malformed answers; nothing is created, each refusal is in
the audit log with the provider, and no secret reaches a log."""
import json
import logging
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditLog, CEUser, Person, PortalTicket
from app.security.portal import PERSON, PortalAnswer
from app.services import portal_login
from app.services.errors import DomainError, ValidationFailed
from tests.portal.fixtures import *  # noqa: F401,F403  (fixtures)
from tests.portal.fixtures import (
    BAD_ID, NEW_PERSON_ID, OIDC_SECRET, SERVICE_CODE, SERVICE_PWD, UNIT_A_CODE, ZHANGSAN_ID,
)


def start(live_server, kind="person"):
    """(session, the portal address the app sent the browser to)."""
    s = requests.Session()
    r = s.get(f"{live_server}/portal/login/{kind}", allow_redirects=False, timeout=10)
    assert r.status_code == 302, r.text
    return s, r.headers["Location"]


def portal_ticket_return(portal_url, account):
    """Sign in at the test portal as `account`: the address it sends the browser back to (with the ticket)."""
    query = parse_qs(urlsplit(portal_url).query)
    assert query["servicecode"] == [SERVICE_CODE]
    r = requests.post(portal_url.split("?")[0], data={"servicecode": SERVICE_CODE, "goto": query["goto"][0],
                                                      "account": account}, allow_redirects=False, timeout=10)
    assert r.status_code == 302
    return r.headers["Location"]


def signed_in(session, live_server):
    r = session.get(f"{live_server}/declare/mine", allow_redirects=False, timeout=10)
    return r.status_code == 200


def failures(app):
    with app.app_context():
        rows = db.session.execute(select(AuditLog).where(AuditLog.action == "login_failed")).scalars().all()
        return [json.loads(r.detail) for r in rows]


def count(app, model, *where):
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(model).where(*where)).scalar()


# ---------------------------------------------------------------- ticket scheme


def test_ticket_login_signs_in_and_nothing_secret_is_logged(app, live_server, ticket_login, caplog):
    caplog.set_level(logging.DEBUG)
    s, url = start(live_server)
    back = portal_ticket_return(url, "zhangsan")
    r = s.get(back, allow_redirects=False, timeout=10)
    assert r.status_code == 302 and signed_in(s, live_server)
    assert SERVICE_PWD not in caplog.text
    # The portal received the signature, never the secret.
    for _, body in ticket_login.app.config["calls"]:
        assert SERVICE_PWD not in body and "sign=" in body
    with app.app_context():
        login = db.session.execute(select(AuditLog).where(AuditLog.action == "login")).scalar_one()
        assert login.username == "zhangsan" and json.loads(login.detail)["provider"] == "ticket"
        # Only a hash of the ticket is kept.
        ticket = parse_qs(urlsplit(back).query)["ticket"][0]
        stored = db.session.execute(select(PortalTicket)).scalars().all()
        assert len(stored) == 1 and ticket not in stored[0].ticket_hash


def test_bad_ticket_is_refused(app, live_server, ticket_login):
    s, url = start(live_server)
    goto = parse_qs(urlsplit(url).query)["goto"][0]
    r = s.get(goto + "&ticket=ST-forged-by-someone", timeout=10)
    assert r.status_code == 400
    assert "政务服务网拒绝了登录请求：票据无效或已使用" in r.text
    assert not signed_in(s, live_server)
    assert [f["reason"] for f in failures(app)] == ["portal_refused"]
    assert failures(app)[0]["provider"] == "ticket"


def test_replayed_ticket_is_refused(app, live_server, ticket_login):
    s, url = start(live_server)
    back = portal_ticket_return(url, "zhangsan")
    assert s.get(back, allow_redirects=False, timeout=10).status_code == 302
    # The same return again, in the same browser: that login flow is over.
    r = s.get(back, timeout=10)
    assert r.status_code == 400 and "登录请求已失效" in r.text
    # A stolen ticket presented from another browser that started its own flow.
    other, url2 = start(live_server)
    goto2 = parse_qs(urlsplit(url2).query)["goto"][0]
    ticket = parse_qs(urlsplit(back).query)["ticket"][0]
    calls_before = len(ticket_login.app.config["calls"])
    r = other.get(goto2 + "&ticket=" + ticket, timeout=10)
    assert r.status_code == 400 and "该登录票据已使用过" in r.text
    assert len(ticket_login.app.config["calls"]) == calls_before  # refused before asking the portal
    assert not signed_in(other, live_server)
    assert [f["reason"] for f in failures(app)] == ["no_flow", "ticket_replayed"]


def test_wrong_signature_is_refused(app, live_server, ticket_login):
    app.config["PORTAL_TICKET_SECRET"] = "not-the-servicepwd"
    s, url = start(live_server)
    r = s.get(portal_ticket_return(url, "newperson"), timeout=10)
    assert r.status_code == 400 and "政务服务网拒绝了登录请求：签名错误" in r.text
    assert not signed_in(s, live_server)
    assert count(app, Person, Person.id_number == NEW_PERSON_ID) == 0


def test_mismatched_state_is_refused(app, live_server, ticket_login):
    s, url = start(live_server)
    query = parse_qs(urlsplit(url).query)
    forged_goto = query["goto"][0].split("?")[0] + "?state=someone-elses-state"
    forged = url.split("?")[0] + "?" + requests.compat.urlencode({"servicecode": SERVICE_CODE, "goto": forged_goto})
    r = s.get(portal_ticket_return(forged, "zhangsan"), timeout=10)
    assert r.status_code == 400 and "state 不一致" in r.text
    assert not signed_in(s, live_server)


def test_return_without_a_started_login_is_refused(app, live_server, ticket_login):
    _, url = start(live_server)
    back = portal_ticket_return(url, "zhangsan")
    stranger = requests.Session()  # the link sent to someone else
    r = stranger.get(back, timeout=10)
    assert r.status_code == 400 and "登录请求已失效" in r.text
    assert not signed_in(stranger, live_server)


def test_slow_return_is_refused(app, live_server, ticket_login):
    app.config["PORTAL_LOGIN_MAX_AGE"] = -1
    try:
        s, url = start(live_server)
        r = s.get(portal_ticket_return(url, "zhangsan"), timeout=10)
    finally:
        app.config["PORTAL_LOGIN_MAX_AGE"] = 300
    assert r.status_code == 400 and "登录已超时" in r.text


@pytest.mark.parametrize("account, kind, message", [
    ("badid", "person", "政务服务网返回的身份证号码无效：身份证号码校验位不正确"),
    ("noname", "person", "政务服务网返回的个人信息缺少姓名"),
    ("nocode", "legal", "政务服务网返回的法人信息缺少统一社会信用代码"),
    ("zhangsan", "legal", "政务服务网返回的法人信息缺少统一社会信用代码"),
])
def test_malformed_answers_create_nothing(app, live_server, ticket_login, account, kind, message):
    persons, users = count(app, Person), count(app, CEUser)
    s, url = start(live_server, kind)
    r = s.get(portal_ticket_return(url, account), timeout=10)
    assert r.status_code == 400 and message in r.text
    assert (count(app, Person), count(app, CEUser)) == (persons, users)
    assert count(app, Person, Person.id_number == BAD_ID) == 0
    assert not signed_in(s, live_server)
    assert failures(app)[-1]["reason"] == "invalid_answer"


def test_unreachable_portal(app, live_server, ticket_login):
    app.config["PORTAL_TICKET_TOKEN_URL"] = "http://127.0.0.1:9/sso/token"
    s, url = start(live_server)
    r = s.get(portal_ticket_return(url, "zhangsan"), timeout=30)
    assert r.status_code == 400 and "无法连接政务服务网" in r.text


def test_registration_page_needs_a_portal_identity(app, live_server, ticket_login):
    r = requests.get(f"{live_server}/portal/register/person", timeout=10)
    assert r.status_code == 400 and "政务服务网登录信息已失效" in r.text


def test_no_portal_routes_when_off(app, live_server):
    assert requests.get(f"{live_server}/portal/login/person", allow_redirects=False, timeout=10).status_code == 404


# ---------------------------------------------------------------- OpenID Connect


def test_oidc_redirect_uses_pkce_state_and_nonce(app, live_server, oidc_login):
    _, url = start(live_server)
    assert url.startswith(oidc_login["issuer"])
    q = parse_qs(urlsplit(url).query)
    assert q["code_challenge_method"] == ["S256"] and len(q["code_challenge"][0]) >= 43
    assert q["state"][0] and q["nonce"][0] and q["response_type"] == ["code"]
    assert "openid" in q["scope"][0].split()
    assert OIDC_SECRET not in url


def test_oidc_mismatched_state_is_refused(app, live_server, oidc_login, caplog):
    caplog.set_level(logging.DEBUG)
    s, url = start(live_server)
    r = s.get(f"{live_server}/portal/callback/oidc?code=anything&state=not-mine", timeout=10)
    assert r.status_code == 400 and "state 不一致" in r.text
    assert not signed_in(s, live_server)
    assert failures(app)[-1] == {**failures(app)[-1], "provider": "oidc", "reason": "state_mismatch"}
    assert OIDC_SECRET not in caplog.text


def test_oidc_provider_error_is_refused(app, live_server, oidc_login):
    s, url = start(live_server)
    state = parse_qs(urlsplit(url).query)["state"][0]
    r = s.get(f"{live_server}/portal/callback/oidc?error=access_denied&state={state}", timeout=10)
    assert r.status_code == 400 and "统一身份认证服务拒绝了登录请求：access_denied" in r.text


def test_oidc_forged_code_is_refused(app, live_server, oidc_login):
    s, url = start(live_server)
    state = parse_qs(urlsplit(url).query)["state"][0]
    r = s.get(f"{live_server}/portal/callback/oidc?code=forged&state={state}", timeout=10)
    assert r.status_code == 400 and "统一身份认证服务拒绝了登录请求：invalid_grant" in r.text
    assert not signed_in(s, live_server)


# ---------------------------------------------------------------- binding rules


def _answer(**over):
    fields = dict(provider="ticket", kind=PERSON, subject="x", name="张三", id_number=ZHANGSAN_ID,
                  mobile=None, org_name=None, credit_code=None)
    fields.update(over)
    return PortalAnswer(**fields)


def test_identity_is_validated_and_normalised(ctx):
    identity = portal_login.identity_from_answer(_answer(id_number=" " + ZHANGSAN_ID.lower() + " "))
    assert identity.id_number == ZHANGSAN_ID
    with pytest.raises(ValidationFailed, match="身份证号码应为18位"):
        portal_login.identity_from_answer(_answer(id_number="32010219880512"))
    with pytest.raises(ValidationFailed, match="手机号码格式不正确"):
        portal_login.identity_from_answer(_answer(mobile="<script>"))
    legal = portal_login.identity_from_answer(_answer(kind="legal", id_number=None, org_name="某公司",
                                                      credit_code=UNIT_A_CODE.lower()))
    assert legal.credit_code == UNIT_A_CODE


def test_portal_never_opens_an_administrator_or_bureau_account(ctx):
    from app.services.demo import resident_id
    import datetime

    number = resident_id("320102", datetime.date(1980, 1, 1), 901)
    person = Person(name="王经办", id_number=number)
    db.session.add(person)
    db.session.flush()
    bureau = db.session.execute(select(CEUser).where(CEUser.username == "bureau_nj")).scalar_one()
    bureau.person_id = person.id
    db.session.commit()
    identity = portal_login.identity_from_answer(_answer(name="王经办", id_number=number))
    with pytest.raises(DomainError, match="请使用账号密码登录"):
        portal_login.bind(identity)


def test_known_person_binds_to_the_account_and_unknown_registers(ctx):
    binding = portal_login.bind(portal_login.identity_from_answer(_answer()))
    assert binding.user.username == "zhangsan" and binding.register is None
    binding = portal_login.bind(portal_login.identity_from_answer(_answer(name="周新人", id_number=NEW_PERSON_ID)))
    assert binding.user is None and binding.register == "person"


def test_local_password_login_is_audited_as_local(app, login_as):
    login_as("zhangsan")
    with app.app_context():
        login = db.session.execute(select(AuditLog).where(AuditLog.action == "login")).scalar_one()
        assert json.loads(login.detail)["provider"] == "local"


# ---------------------------------------------------------------- issue 25: sessions and the second factor


def _live_sessions(app, username):
    from app.models.security import UserSession

    with app.app_context():
        uid = db.session.execute(select(CEUser.id).where(CEUser.username == username)).scalar_one()
        return db.session.execute(
            select(UserSession).where(UserSession.user_id == uid, UserSession.ended_at.is_(None))).scalars().all()


def test_portal_login_is_a_server_side_session_ended_by_logout(app, live_server, ticket_login):
    s, url = start(live_server)
    r = s.get(portal_ticket_return(url, "zhangsan"), allow_redirects=False, timeout=10)
    assert r.status_code == 302 and signed_in(s, live_server)
    rows = _live_sessions(app, "zhangsan")
    assert len(rows) == 1 and rows[0].kind == "web"
    cookie = s.cookies.get("session")
    assert cookie and len(cookie) < 64  # only the random id, the data is on the server
    s.get(f"{live_server}/logout/", timeout=10)
    assert _live_sessions(app, "zhangsan") == []
    # The cookie copied before the logout opens nothing.
    replay = requests.Session()
    replay.cookies.set("session", cookie)
    assert not signed_in(replay, live_server)


def test_portal_login_of_a_privileged_role_still_gives_the_second_factor(app, live_server, ticket_login):
    before = app.config["MFA_ROLES"]
    app.config["MFA_ROLES"] = ("UnitAdmin", "Bureau")
    try:
        # An applicant: the portal's authentication is enough.
        s, url = start(live_server)
        s.get(portal_ticket_return(url, "zhangsan"), allow_redirects=False, timeout=10)
        assert signed_in(s, live_server)
        # A unit's administrator (MFA_ROLES): the local second factor after the portal.
        s, url = start(live_server, "legal")
        r = s.get(portal_ticket_return(url, "unit_a"), allow_redirects=False, timeout=10)
        assert r.status_code == 302
        home = s.get(f"{live_server}/", allow_redirects=False, timeout=10)
        assert home.status_code == 302 and home.headers["Location"].endswith("/mfa/enroll")
        r = s.get(f"{live_server}/unitview/list/", allow_redirects=False, timeout=10)
        assert r.status_code == 302 and r.headers["Location"].endswith("/mfa/enroll")
        assert "绑定动态口令" in s.get(f"{live_server}/mfa/enroll", timeout=10).text
    finally:
        app.config["MFA_ROLES"] = before
