"""Accounts in a real browser (Chromium via Playwright): a new unit registers,
bureau_nj approves it, its UnitAdmin creates a clerk and grants UnitOperator,
the clerk changes the password it was given; a person whose hours were imported
before registers, and sees those hours once the unit confirms the attachment."""
import datetime
from decimal import Decimal

from sqlalchemy import select

from app.extensions import db
from app.models import CEUser, Category, HourRecord, LearningForm, Person, Source, Status, Unit
from app.services.demo import credit_code, resident_id
from tests.conftest import browser_login, screenshot

PW = "Jianye#Admin26"
CLERK_PW = "Clerk#Start26"
CLERK_NEW_PW = "Clerk#Mine2026"
PERSON_PW = "Zhouba#Hours26"
CODE = credit_code(502, "320105")
ID_NUMBER = resident_id("320102", datetime.date(1987, 6, 15), 888)


def logout(page, base):
    page.goto(base + "/logout/")
    page.wait_for_load_state("networkidle")


def submit(page, selector="button[type=submit]"):
    with page.expect_navigation():
        page.click(selector)
    page.wait_for_load_state("networkidle")


def body(page):
    return page.inner_text("body")


def test_unit_registration_to_clerk_and_person_to_records(app, live_server, page):
    base = live_server
    # Hours imported earlier (bureau import) for a person who has no account yet.
    with app.app_context():
        unit_a = db.session.execute(select(Unit).where(Unit.name == "南京金陵科技有限公司")).scalar_one()
        p = Person(name="周八", id_number=ID_NUMBER, unit_id=unit_a.id, unit_confirmed=True)
        db.session.add(p)
        year = datetime.date.today().year - 1
        for i, course in enumerate(["桥梁检测新技术", "数字经济与创新驱动发展"]):
            db.session.add(HourRecord(
                person=p, year=year, category=Category.PRO if i == 0 else Category.PUB,
                learning_form=LearningForm.TRAIN_ONSITE, course_name=course,
                start_date=datetime.date(year, 4 + i, 1), end_date=datetime.date(year, 4 + i, 3),
                hours=Decimal(24), source=Source.BUREAU_IMPORT, status=Status.APPROVED,
                unit_id=unit_a.id, region_code=unit_a.region_code,
            ))
        db.session.commit()
        person_id = p.id

    # 1. A new unit registers from the login page: city, then district.
    page.goto(base + "/login/")
    screenshot(page, "accounts_0_login")
    page.click("text=单位注册")
    page.wait_for_load_state("networkidle")
    page.fill("#name", "南京建邺智能制造有限公司")
    page.fill("#credit_code", CODE)
    page.select_option("#city", "320100")
    page.select_option("#region_code", "320105")
    page.select_option("#kind", "EMPLOYER")
    page.fill("#contact_name", "赵六")
    page.fill("#contact_phone", "025-86660000")
    page.fill("#admin_name", "赵六")
    page.fill("#username", "jy_admin")
    page.fill("#password", PW)
    page.fill("#confirm", PW)
    screenshot(page, "accounts_1_unit_register")
    submit(page)
    assert "注册成功" in body(page)

    # Until approved, its admin signs in to a waiting notice only.
    browser_login(page, base, "jy_admin", PW)
    assert "单位注册审核中" in body(page)
    screenshot(page, "accounts_2_unit_pending")
    logout(page, base)

    # 2. bureau_nj approves it from the approval grid.
    browser_login(page, base, "bureau_nj")
    page.goto(base + "/unitapprovalview/list/")
    page.wait_for_load_state("networkidle")
    assert "南京建邺智能制造有限公司" in body(page)
    screenshot(page, "accounts_3_bureau_approval_grid")
    page.check("input.action_check")
    page.click(".dropdown-toggle:has-text('操作')")
    page.click("a:has-text('审核通过')")
    page.wait_for_selector("#modal-confirm-ok", state="visible")
    # Not expect_navigation(): the menu link's "#" is a navigation of its own, and
    # under load it could be the one awaited (the page then still showed the grid).
    page.click("#modal-confirm-ok")
    page.wait_for_selector("text=已审核通过1家单位")
    assert "已审核通过1家单位" in body(page)
    with app.app_context():
        assert db.session.execute(select(Unit.approved).where(Unit.credit_code == CODE)).scalar_one() is True
    logout(page, base)

    # 3. Its UnitAdmin creates a clerk, then grants UnitOperator.
    browser_login(page, base, "jy_admin", PW)
    assert "单位注册审核中" not in body(page)
    page.goto(base + "/accounts/users/")
    page.click("#add-account")
    page.wait_for_load_state("networkidle")
    page.fill("#first_name", "钱九")
    page.fill("#username", "jy_clerk")
    page.fill("#password", CLERK_PW)
    submit(page)
    assert "账号jy_clerk已创建" in body(page)
    submit(page, "#grant-UnitOperator")
    assert "已授予角色" in body(page)
    screenshot(page, "accounts_4_clerk_granted")
    with app.app_context():
        clerk = db.session.execute(select(CEUser).where(CEUser.username == "jy_clerk")).scalar_one()
        assert [r.name for r in clerk.roles] == ["UnitOperator"] and clerk.unit.credit_code == CODE
    logout(page, base)

    # The clerk must replace the password someone else set before anything else.
    browser_login(page, base, "jy_clerk", CLERK_PW)
    assert "您的密码由他人设置" in body(page)
    page.fill("#current", CLERK_PW)
    page.fill("#password", CLERK_NEW_PW)
    page.fill("#confirm", CLERK_NEW_PW)
    submit(page)
    assert "密码已修改" in body(page)
    assert "单位经办" in body(page)
    logout(page, base)

    # 4. The person with imported hours registers, choosing the unit by region.
    page.goto(base + "/login/")
    page.click("text=个人注册")
    page.wait_for_load_state("networkidle")
    page.fill("#name", "周八")
    page.fill("#id_number", ID_NUMBER)
    page.fill("#phone", "13800002222")
    page.fill("#username", "zhouba")
    page.fill("#password", PERSON_PW)
    page.fill("#confirm", PERSON_PW)
    page.select_option("#city", "320100")
    page.select_option("#region_code", "320102")
    page.wait_for_selector("#unit_id option:has-text('南京金陵科技有限公司')", state="attached")
    page.select_option("#unit_id", label="南京金陵科技有限公司")
    screenshot(page, "accounts_5_person_register")
    submit(page)
    assert "注册成功" in body(page)
    with app.app_context():
        assert db.session.execute(select(CEUser.person_id).where(CEUser.username == "zhouba")).scalar_one() == person_id

    browser_login(page, base, "zhouba", PERSON_PW)
    page.goto(base + "/hourrecordview/list/")
    assert "桥梁检测新技术" not in body(page)
    page.goto(base + "/account/unit/")
    assert "等待该单位确认" in body(page)
    logout(page, base)

    # 5. The unit confirms; the person now sees the imported hours.
    browser_login(page, base, "clerk_a")
    page.goto(base + "/accounts/attachments/")
    assert "周八" in body(page)
    screenshot(page, "accounts_6_confirm")
    submit(page, "button[value=confirm]")
    assert "已确认周八为本单位人员" in body(page)
    logout(page, base)

    browser_login(page, base, "zhouba", PERSON_PW)
    page.goto(base + "/hourrecordview/list/")
    page.wait_for_load_state("networkidle")
    text = body(page)
    assert "桥梁检测新技术" in text and "数字经济与创新驱动发展" in text
    screenshot(page, "accounts_7_person_sees_records")
