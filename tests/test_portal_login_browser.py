"""Portal login in a real browser (issue 23): through the ticket-scheme test
portal and through a real OpenID Connect provider (oidc-provider), for a
person already known, a person not known yet, and a unit; the expired
id_token; logout offering the portal's logout."""
import json

from sqlalchemy import func, select

from app.extensions import db
from app.services import accounts
from app.models import AuditLog, CEUser, Person, Unit
from tests.conftest import screenshot
from tests.portal.fixtures import *  # noqa: F401,F403  (fixtures)
from tests.portal.fixtures import NEW_PERSON_ID, NEW_UNIT_CODE, UNIT_A_CODE, ZHANGSAN_ID


def _logins(app, provider):
    """(username, provider) of the successful login audit entries."""
    with app.app_context():
        rows = db.session.execute(select(AuditLog).where(AuditLog.action == "login")).scalars().all()
        return [(r.username, json.loads(r.detail or "{}").get("provider")) for r in rows
                if json.loads(r.detail or "{}").get("provider") == provider]


def _navbar_user(page):
    return page.locator(".navbar a.dropdown-toggle:has(> .fa-user)").inner_text().strip()


def ticket_portal_login(page, base, button, account):
    page.goto(base + "/login/")
    page.click(f"#portal-login-{button}")
    page.wait_for_selector("#account")
    assert "江苏政务服务网" in page.content()
    page.select_option("#account", account)
    page.click("#portal-submit")
    page.wait_for_load_state("networkidle")


def oidc_portal_login(page, base, button, account, before_consent=None):
    page.goto(base + "/login/")
    page.click(f"#portal-login-{button}")
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", account)
    page.fill("input[name=password]", "whatever")
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    if page.url.startswith(base):
        return
    # oidc-provider's consent screen
    if before_consent:
        before_consent()
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def test_login_page_shows_the_portal_buttons(app, live_server, page, ticket_login):
    page.goto(live_server + "/login/")
    assert page.locator("#portal-login-person").inner_text().strip() == "政务服务网登录（个人）"
    assert page.locator("#portal-login-legal").inner_text().strip() == "政务服务网登录（法人）"
    screenshot(page, "portal_login_page")


def test_no_buttons_without_a_configured_provider(app, live_server, page):
    page.goto(live_server + "/login/")
    assert page.locator("#portal-login").count() == 0
    assert "政务服务网登录" not in page.content()


# ---------------------------------------------------------------- ticket scheme


def test_ticket_known_person_signs_in_to_the_existing_account(app, live_server, page, ticket_login):
    ticket_portal_login(page, live_server, "person", "zhangsan")
    assert page.url.startswith(live_server)
    assert "张三" in _navbar_user(page)
    assert _logins(app, "ticket") == [("zhangsan", "ticket")]
    # The secret went nowhere: not in any call the portal received.
    calls = ticket_login.app.config["calls"]
    assert [c[0] for c in calls] == ["token", "userinfo"]
    assert all("portal-servicepwd" not in body for _, body in calls)


def test_ticket_unknown_person_registers_with_locked_fields(app, live_server, page, ticket_login):
    ticket_portal_login(page, live_server, "person", "newperson")
    assert "/portal/register/person" in page.url
    assert page.input_value("#name") == "周新人"
    assert page.input_value("#id_number") == NEW_PERSON_ID
    assert page.get_attribute("#name", "readonly") is not None
    assert page.get_attribute("#id_number", "readonly") is not None
    assert page.locator("#password").count() == 0
    screenshot(page, "portal_register_person")
    # A tampered form cannot change the locked identity: the server uses the portal's.
    page.evaluate("document.getElementById('id_number').removeAttribute('readonly')")
    page.fill("#id_number", ZHANGSAN_ID)
    page.fill("#credit_code", UNIT_A_CODE)
    page.click("#person-register button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "注册成功" in page.content()
    assert "周新人" in _navbar_user(page)
    with app.app_context():
        persons = db.session.execute(select(Person).where(Person.id_number == NEW_PERSON_ID)).scalars().all()
        assert len(persons) == 1
        user = db.session.execute(select(CEUser).where(CEUser.person_id == persons[0].id)).scalar_one()
        assert [r.name for r in user.roles] == ["Applicant"]
        assert persons[0].pending_unit_id is not None and persons[0].unit_confirmed is False
        assert db.session.execute(select(func.count()).select_from(Person)
                                  .where(Person.id_number == ZHANGSAN_ID)).scalar() == 1
        # the account is stored under the number's keyed digest, never the number
        assert user.username == accounts.id_account_name(NEW_PERSON_ID)
    assert (user.username, "ticket") in _logins(app, "ticket")


def test_ticket_unit_signs_in_as_its_administrator(app, live_server, page, ticket_login):
    ticket_portal_login(page, live_server, "legal", "unit_a")
    assert "金陵科技管理员" in _navbar_user(page)
    assert _logins(app, "ticket") == [("unitadmin_a", "ticket")]


def test_ticket_unknown_unit_goes_to_unit_registration(app, live_server, page, ticket_login):
    ticket_portal_login(page, live_server, "legal", "newunit")
    assert "/portal/register/unit" in page.url
    assert page.input_value("#name") == "南京建邺数字科技有限公司"
    assert page.input_value("#credit_code") == NEW_UNIT_CODE
    assert page.get_attribute("#credit_code", "readonly") is not None
    page.select_option("#city", "320100")
    page.select_option("#region_code", "320105")
    page.fill("#contact_name", "赵六")
    page.fill("#contact_phone", "025-86660000")
    page.fill("#admin_name", "赵六")
    page.fill("#username", "jy_portal")
    page.click("#unit-register button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "待所在地人社局审核" in page.content() or "审核" in page.content()
    with app.app_context():
        unit = db.session.execute(select(Unit).where(Unit.credit_code == NEW_UNIT_CODE)).scalar_one()
        assert unit.approved is False and unit.name == "南京建邺数字科技有限公司"
        user = db.session.execute(select(CEUser).where(CEUser.username == "jy_portal")).scalar_one()
        assert user.unit_id == unit.id and [r.name for r in user.roles] == ["UnitAdmin"]


def test_logout_after_a_portal_login_offers_the_portal_logout(app, live_server, page, ticket_login):
    ticket_portal_login(page, live_server, "person", "zhangsan")
    page.goto(live_server + "/logout/")
    page.wait_for_load_state("networkidle")
    if "/login" not in page.url:
        page.goto(live_server + "/login/")
    link = page.locator("#portal-logout a")
    assert link.inner_text() == "同时退出政务服务网"
    link.click()
    page.wait_for_selector("#portal-logged-out")
    # The local session is over.
    page.goto(live_server + "/declare/mine")
    assert "/login" in page.url


# ---------------------------------------------------------------- OpenID Connect


def test_oidc_known_person(app, live_server, page, oidc_login):
    oidc_portal_login(page, live_server, "person", "zhangsan")
    assert "张三" in _navbar_user(page)
    assert _logins(app, "oidc") == [("zhangsan", "oidc")]
    # Logout: the local session ends; the login page offers the provider's end_session.
    page.goto(live_server + "/logout/")
    if "/login" not in page.url:
        page.goto(live_server + "/login/")
    link = page.locator("#portal-logout a")
    assert link.get_attribute("href").startswith(oidc_login["issuer"] + "/session/end?client_id=ce-hours")
    link.click()
    page.wait_for_load_state("networkidle")
    assert page.url.startswith(oidc_login["issuer"])
    page.goto(live_server + "/declare/mine")
    assert "/login" in page.url


def test_oidc_imported_person_without_account_is_linked_not_duplicated(app, live_server, page, oidc_login):
    with app.app_context():
        person = db.session.execute(
            select(Person).where(~Person.id.in_(select(CEUser.person_id).where(CEUser.person_id.is_not(None))))
            .order_by(Person.id).limit(1)
        ).scalar_one()
        name, number, person_id = person.name, person.id_number, person.id
    accounts = json.loads(oidc_login["accounts_file"].read_text(encoding="utf-8"))
    accounts["imported"] = {"name": name, "id_card": number, "phone_number": "13600000000"}
    oidc_login["accounts_file"].write_text(json.dumps(accounts, ensure_ascii=False), encoding="utf-8")

    oidc_portal_login(page, live_server, "person", "imported")
    assert "/portal/register/person" in page.url
    assert page.input_value("#id_number") == number
    page.fill("#credit_code", UNIT_A_CODE)
    page.click("#person-register button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "注册成功" in page.content()
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(Person)
                                  .where(Person.id_number == number)).scalar() == 1
        user = db.session.execute(select(CEUser).where(CEUser.person_id == person_id)).scalar_one()
        assert [r.name for r in user.roles] == ["Applicant"]


def test_oidc_unknown_person_goes_to_registration(app, live_server, page, oidc_login):
    oidc_portal_login(page, live_server, "person", "newperson")
    assert "/portal/register/person" in page.url
    assert page.input_value("#name") == "周新人"
    assert page.get_attribute("#id_number", "readonly") is not None


def test_oidc_unit(app, live_server, page, oidc_login):
    oidc_portal_login(page, live_server, "legal", "unit_a")
    assert "金陵科技管理员" in _navbar_user(page)
    assert _logins(app, "oidc") == [("unitadmin_a", "oidc")]


def test_oidc_expired_id_token_is_refused(app, live_server, page, oidc_login):
    # The provider's clock runs two hours behind from the consent on: the
    # id_token it then issues expired an hour ago (its exp is an hour back).
    skewed = []

    def behind():
        skewed.append(True)
        oidc_login["skew"](-7200)

    oidc_portal_login(page, live_server, "person", "zhangsan", before_consent=behind)
    assert skewed
    assert "身份令牌已过期" in page.locator("#portal-error").inner_text()
    assert _logins(app, "oidc") == []
    with app.app_context():
        failed = db.session.execute(select(AuditLog).where(AuditLog.action == "login_failed")).scalars().all()
        assert any(json.loads(r.detail).get("reason") == "id_token_expired" for r in failed)
