"""学时认定标准 in a real browser (Chromium via Playwright): the declaration form
offers the year's forms, asks for the quantity each rule needs, shows the rule and
the computed hours before submitting (static/js/declare_rules.js); the server
recomputes, refuses a cap with the rule's name, and stores the recognised hours."""
from sqlalchemy import select

from app.extensions import db
from app.models import HourRecord
from tests.conftest import browser_login, screenshot
from tests.test_workflow import D1, D2
from tests.test_workflow_browser import click_and_wait


def _common(page, course):
    page.check("input[name=category][value=PRO]")
    page.fill("#course_name", course)
    page.fill("#organizer_name", "中国土木工程学会")
    page.fill("#start_date", D1.isoformat())
    page.fill("#end_date", D2.isoformat())


def _stored(app, course):
    with app.app_context():
        return db.session.execute(select(HourRecord).where(HourRecord.course_name == course)).scalars().first()


def test_declaration_computed_and_capped_through_the_real_form(app, live_server, page):
    base = live_server
    browser_login(page, base, "zhangsan")
    page.goto(base + "/declare/new")
    page.wait_for_load_state("networkidle")
    # Fixed per event + add-on: the page says 40 before anything is sent.
    _common(page, "浏览器：全国学术会议")
    page.select_option("#learning_form", "CONF_NATIONAL")
    assert page.is_hidden("#hours") and page.is_visible("#addons-group")
    assert "每次10学时" in page.inner_text("#rule-text")
    assert "会议通知" in page.inner_text("#rule-proof")
    assert page.inner_text("#rule-result") == "认定学时：10"
    page.check("input[name=addons][value=PAPER_GE2000]")
    assert page.inner_text("#rule-result") == "认定学时：40"
    # One add-on at most: ticking the other clears the first.
    page.check("input[name=addons][value=PAPER_LT2000]")
    assert not page.is_checked("input[name=addons][value=PAPER_GE2000]")
    assert page.inner_text("#rule-result") == "认定学时：30"
    page.check("input[name=addons][value=PAPER_GE2000]")
    screenshot(page, "standards_declare_conference")
    click_and_wait(page, "#btn-save")
    r = _stored(app, "浏览器：全国学术会议")
    assert r is not None and float(r.hours) == 40 and r.form_code == "CONF_NATIONAL"

    # Per day with a cap per record: the page warns, the server refuses naming the rule.
    page.goto(base + "/declare/new")
    page.wait_for_load_state("networkidle")
    _common(page, "浏览器：境外培训")
    page.select_option("#learning_form", "ABROAD")
    assert page.is_visible("#days") and page.is_hidden("#hours")
    page.fill("#days", "5")
    assert "超过“出国（境）培训”每项最多30学时的上限" in page.inner_text("#rule-result")
    click_and_wait(page, "#btn-save")
    assert "超过“出国（境）培训”每项最多30学时的上限（按标准计算为40学时）" in page.inner_text("#err-days")
    assert _stored(app, "浏览器：境外培训") is None
    # The form comes back with the chosen form and its quantity; 3 days pass.
    assert page.input_value("#learning_form") == "ABROAD" and page.input_value("#days") == "5"
    page.fill("#days", "3")
    assert page.inner_text("#rule-result") == "认定学时：24"
    click_and_wait(page, "#btn-save")
    r = _stored(app, "浏览器：境外培训")
    assert r is not None and float(r.hours) == 24 and float(r.computed_hours) == 24

    # Table by level and rank.
    page.goto(base + "/declare/new")
    page.wait_for_load_state("networkidle")
    _common(page, "浏览器：论文")
    page.select_option("#learning_form", "PAPER")
    page.select_option("#level", "核心期刊")
    page.select_option("#rank", "第一作者")
    assert page.inner_text("#rule-result") == "认定学时：40"
