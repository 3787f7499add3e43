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


def test_console_edits_a_rules_parameters_through_fields_and_previews(app, live_server, page):
    """The rule editor: the parameters of the chosen kind as fields (no JSON), Chinese
    validation, the preview, then the saved rule computes with the new figures."""
    import json

    from app.services import standards
    from tests.test_workflow import YEAR

    base = live_server
    browser_login(page, base, "admin")
    page.goto(f"{base}/standards/edit/{YEAR}/PAPER")
    page.wait_for_load_state("networkidle")
    assert page.locator("textarea#params").count() == 0
    assert page.is_visible("#params-TABLE") and page.is_hidden("#params-PER_DAY") and page.is_hidden("#params-FIXED")
    assert page.is_hidden("#params-DECLARED")
    levels = page.locator("input[name=table_level]")
    assert levels.nth(0).input_value() == "核心期刊"
    # Switching the kind shows that kind's fields.
    page.select_option("#kind", "PER_DAY")
    assert page.is_visible("#per_day") and page.is_hidden("#params-TABLE")
    page.select_option("#kind", "TABLE")
    # A new row of the table: 国际期刊 · 第一作者 = 60.
    n = levels.count()
    page.click("button.add-row[data-table=level-table]")
    assert levels.count() == n + 1
    page.locator("input[name=table_level]").nth(n).fill("国际期刊")
    page.locator("input[name=table_rank]").nth(n).fill("第一作者")
    page.locator("input[name=table_hours]").nth(n).fill("六十")
    click_and_wait(page, "#btn-preview")
    assert "认定表第%d行：学时须为数字" % (n + 1) in page.inner_text("#err-table")
    # The page comes back with the rows as typed (blank rows after them).
    i = page.eval_on_selector_all("input[name=table_level]", "els => els.findIndex(e => e.value === '国际期刊')")
    assert i >= 0 and page.locator("input[name=table_hours]").nth(i).input_value() == "六十"
    page.locator("input[name=table_hours]").nth(i).fill("60")
    click_and_wait(page, "#btn-preview")
    preview = page.inner_text("#preview")
    assert "发表论文（国际期刊 · 第一作者） → 60 学时" in preview and "发表论文（核心期刊 · 第一作者） → 40 学时" in preview
    screenshot(page, "admin_standard_fields")
    click_and_wait(page, "#btn-save-rule")
    assert "已保存学时认定标准“发表论文”" in page.inner_text("body")
    with app.app_context():
        rule = standards.rule_for(YEAR, "PAPER")
        assert rule.table()["国际期刊"] == {"第一作者": 60} and rule.table()["核心期刊"]["第一作者"] == 40

    # A per-day rule: the rate as a field; a wrong figure is refused in Chinese and nothing is stored.
    page.goto(f"{base}/standards/edit/{YEAR}/TRAIN_DAY")
    page.wait_for_load_state("networkidle")
    assert page.input_value("#per_day") == "8"
    page.fill("#per_day", "0")
    click_and_wait(page, "#btn-save-rule")
    assert "每天学时须大于0且不超过1000" in page.inner_text("#err-per_day")
    page.fill("#per_day", "6")
    click_and_wait(page, "#btn-preview")
    assert "培训、研讨（按天）（3天） → 18 学时" in page.inner_text("#preview")
    click_and_wait(page, "#btn-save-rule")
    with app.app_context():
        assert json.loads(next(r for r in standards.rows_of(YEAR) if r.code == "TRAIN_DAY").params) == {"per_day": 6}

    # Fixed hours with add-ons: a new add-on gets a code of its own.
    page.goto(f"{base}/standards/edit/{YEAR}/CONF_PROVINCE")
    page.wait_for_load_state("networkidle")
    assert page.input_value("#base") == "8" and page.is_checked("#single_addon")
    names = page.locator("input[name=addon_name]")
    k = sum(1 for i in range(names.count()) if names.nth(i).input_value())
    names.nth(k).fill("担任分会场主持")
    page.locator("input[name=addon_hours]").nth(k).fill("5")
    click_and_wait(page, "#btn-preview")
    assert "参加省级学术会议并担任分会场主持 → 13 学时" in page.inner_text("#preview")
    click_and_wait(page, "#btn-save-rule")
    with app.app_context():
        adds = standards.rule_for(YEAR, "CONF_PROVINCE").addons()
        assert [a["code"] for a in adds] == ["PAPER_LT2000", "PAPER_GE2000", "ADD1"] and adds[2]["hours"] == 5
