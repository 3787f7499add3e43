"""Keyboard only (issue 27): the three main flows done with Tab, Enter, Space and the
arrow keys (and typing into fields), never a click, in Chromium via Playwright's
keyboard API:

1. an applicant signs in, opens 学时申报 from the menu, fills the declaration,
   attaches a proof file and submits it;
2. a unit clerk opens 待核准申报, ticks rows and bulk-approves them (menu + confirmation);
3. a bureau clerk filters the hour grid by year and exports exactly those rows.

And the 大字版 switch of the user menu, used from the keyboard: remembered on the
account (another browser signs in to it), the text 1.5 times larger.
"""
import io

import openpyxl
from sqlalchemy import func, select

from app.extensions import db
from app.models import CEUser, HourRecord, Person, Status, Unit
from tests.conftest import DEMO_PASSWORD, screenshot
from tests.test_workflow import D1, D2, YEAR, pdf_bytes

MAX_TABS = 400


def active(page, predicate):
    """Whether the focused element satisfies `predicate` (a JS function of the element)."""
    return page.evaluate(f"() => {{ const e = document.activeElement; return !!e && ({predicate})(e); }}")


def tab_to(page, predicate, what):
    """Press Tab until the focused element satisfies `predicate`."""
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if active(page, predicate):
            return
    raise AssertionError(f"Tab never reached {what}")


def arrow_to(page, predicate, what, key="ArrowDown", limit=30):
    """Press an arrow key until the focused element satisfies `predicate`."""
    for _ in range(limit):
        page.keyboard.press(key)
        if active(page, predicate):
            return
    raise AssertionError(f"{key} never reached {what}")


def open_file_chooser_by_space(page, predicate, tries=3):
    """Space on the focused file input opens the chooser. Headless Chromium in a loaded
    CI run once dropped the first key press (the chooser event never came in 30 s), so
    like a user the test presses Space again, still on the same focused input; Space
    that never opens it fails."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    for _ in range(tries):
        assert active(page, predicate)
        try:
            with page.expect_file_chooser(timeout=10000) as chooser:
                page.keyboard.press("Space")
            return chooser.value
        except PlaywrightTimeout:
            continue
    raise AssertionError(f"Space on the file input opened no file chooser in {tries} tries")


def enter_and_wait(page, key="Enter", url=None):
    """Press `key` and wait for the page it leads to (`url`: a predicate on the address
    to wait for, when the first navigation is not the one that matters)."""
    with page.expect_navigation(**({"url": url} if url else {})):
        page.keyboard.press(key)
    page.wait_for_load_state("networkidle")


def keyboard_login(page, base, username, password=DEMO_PASSWORD):
    page.goto(base + "/login/")
    assert active(page, "e => e.id === 'username'")  # the field has the focus on arrival
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    assert active(page, "e => e.id === 'password'")
    page.keyboard.type(password)
    enter_and_wait(page)
    assert "/login" not in page.url, username


def type_date(page, day):
    """Type a date into the focused <input type=date>.  Chromium lays the field out
    in its own interface language, which the test browser leaves at en-US (month,
    day, year); a complete month or day moves on to the next part by itself."""
    page.keyboard.type(day.strftime("%m%d%Y"))


def menu(page, category, item):
    """Open a navigation-bar menu with Tab + Enter and follow one of its items with the arrow keys + Enter."""
    page.keyboard.press("Tab")  # the skip link comes first
    assert active(page, "e => e.classList.contains('ce-skip-link')")
    tab_to(page, f"e => e.matches('.navbar .dropdown-toggle') && e.textContent.includes({category!r})", category)
    page.keyboard.press("Enter")
    arrow_to(page, f"e => e.closest('.dropdown-menu') && e.textContent.trim() === {item!r}", item)
    enter_and_wait(page)


# ----------------------------------------------------------------- 1. declaring


def test_applicant_declares_with_proof_by_keyboard(app, live_server, page, tmp_path):
    proof = tmp_path / "培训证书.pdf"
    proof.write_bytes(pdf_bytes("certificate"))
    course = "键盘申报：无障碍设计规范"

    keyboard_login(page, live_server, "zhangsan")
    menu(page, "申报审核", "学时申报")
    assert page.url.endswith("/declare/new")

    # The skip link leads past the menu to the page's content.
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert active(page, "e => e.id === 'ce-main'")

    tab_to(page, "e => e.id === 'year'", "认定年度")
    for _ in range(20):
        if page.evaluate("document.getElementById('year').value") == str(YEAR):
            break
        page.keyboard.press("ArrowDown")
    assert page.evaluate("document.getElementById('year').value") == str(YEAR)
    page.keyboard.press("Tab")  # the first radio of 科目类别
    assert active(page, "e => e.name === 'category'")
    page.keyboard.press("Space")
    assert page.evaluate("document.querySelector('input[name=category]:checked').value") == "PRO"
    page.keyboard.press("Tab")
    assert active(page, "e => e.id === 'learning_form'")
    page.keyboard.press("ArrowDown")  # 请选择 -> the first learning form
    assert page.evaluate("document.getElementById('learning_form').value") != ""
    page.keyboard.press("Tab")
    page.keyboard.type(course)
    page.keyboard.press("Tab")
    page.keyboard.type("东南大学继续教育学院")
    page.keyboard.press("Tab")
    assert active(page, "e => e.id === 'start_date'")
    type_date(page, D1)
    tab_to(page, "e => e.id === 'end_date'", "结束日期")
    type_date(page, D2)
    tab_to(page, "e => e.id === 'hours'", "学时")
    page.keyboard.type("8")
    assert page.evaluate("[document.getElementById('start_date').value, document.getElementById('end_date').value]") \
        == [D1.isoformat(), D2.isoformat()]

    # Submitting without proof: the error is announced on the field, which gets the focus.
    tab_to(page, "e => e.id === 'btn-submit'", "提交申报")
    page.keyboard.press("Enter")
    assert "/declare/new" in page.url  # not sent
    assert active(page, "e => e.id === 'proof'")
    assert page.get_attribute("#proof", "aria-invalid") == "true"
    described = page.get_attribute("#proof", "aria-describedby").split()
    assert "err-proof" in described
    assert page.inner_text("#err-proof") == "提交前请上传证明材料"

    # The file input opens the file chooser with Space, like a button.
    chooser = open_file_chooser_by_space(page, "e => e.id === 'proof'")
    chooser.set_files(str(proof))
    tab_to(page, "e => e.id === 'btn-submit'", "提交申报")
    enter_and_wait(page)
    assert "申报已提交，等待单位核准" in page.content()
    screenshot(page, "keyboard_1_declared")
    with app.app_context():
        rec = db.session.execute(select(HourRecord).where(HourRecord.course_name == course)).scalar_one()
        assert rec.status == Status.SUBMITTED
        assert [a.filename for a in rec.attachments] == ["培训证书.pdf"]
        assert float(rec.hours) == 8 and rec.start_date == D1 and rec.end_date == D2


# ----------------------------------------------------------------- 2. bulk approval


def test_unit_clerk_bulk_approves_by_keyboard(app, live_server, page):
    keyboard_login(page, live_server, "clerk_a")
    menu(page, "申报审核", "待核准申报")
    assert "/review/todo/list" in page.url
    pks = page.eval_on_selector_all("input.action_check", "cs => cs.map(c => c.value)")
    assert len(pks) >= 2, pks
    chosen = pks[:2]

    for pk in chosen:
        tab_to(page, f"e => e.classList.contains('action_check') && e.value === {pk!r}", f"row {pk}")
        page.keyboard.press("Space")
    ticked = page.eval_on_selector_all("input.action_check:checked", "cs => cs.map(c => c.value)")
    assert ticked == chosen

    # The actions menu: Tab back up to it (Shift+Tab), open with Enter, pick with the arrows.
    for _ in range(MAX_TABS):
        page.keyboard.press("Shift+Tab")
        if active(page, "e => e.matches('.btn-group > .dropdown-toggle') && e.nextElementSibling "
                        "&& e.nextElementSibling.querySelector('.approve_menu_item')"):
            break
    else:
        raise AssertionError("Shift+Tab never reached the actions menu")
    page.keyboard.press("Enter")
    arrow_to(page, "e => e.classList.contains('approve_menu_item')", "批量核准")
    page.keyboard.press("Enter")
    # FAB's confirmation dialog: Tab to its OK button, Enter.
    page.wait_for_selector("#modal-confirm.in", state="visible")
    assert "确定核准所选的申报吗" in page.inner_text("#modal-confirm")
    tab_to(page, "e => e.id === 'modal-confirm-ok'", "确定")
    # 确定 is FAB's <a href="#">: Enter first moves to "#" in the same page, then its
    # script posts the form; wait for the list the POST leads back to, not for "#".
    enter_and_wait(page, url=lambda u: not u.endswith("#"))
    screenshot(page, "keyboard_2_approved")
    with app.app_context():
        statuses = db.session.execute(
            select(HourRecord.id, HourRecord.status).where(HourRecord.id.in_([int(p) for p in pks]))).all()
    approved = {str(i) for i, s in statuses if s == Status.APPROVED}
    assert approved == set(chosen)
    left = page.eval_on_selector_all("input.action_check", "cs => cs.map(c => c.value)")
    assert not set(chosen) & set(left)


# ----------------------------------------------------------------- 3. filter and export


def test_bureau_filters_and_exports_by_keyboard(app, live_server, page):
    year = YEAR - 1
    with app.app_context():
        expected = db.session.execute(
            select(func.count(HourRecord.id)).join(Person, HourRecord.person_id == Person.id)
            .join(Unit, Person.unit_id == Unit.id)
            .where(Unit.region_code.like("3201%"), HourRecord.year == year)
        ).scalar()
    assert expected > 0

    keyboard_login(page, live_server, "bureau_nj")
    menu(page, "学时管理", "学时记录")
    assert "/hourrecordview/list" in page.url

    tab_to(page, "e => e.classList.contains('accordion-toggle')", "搜索")
    page.keyboard.press("Enter")
    page.wait_for_selector("#accordion1_href.in", state="visible")
    tab_to(page, "e => e.matches('#filter_form .dropdown-toggle')", "添加过滤条件")
    page.keyboard.press("Enter")
    arrow_to(page, "e => e.matches('#filter_form a.filter') && e.getAttribute('name') === 'year'", "认定年度")
    page.keyboard.press("Enter")
    value = "e => e.matches('#filter_form .filter_val') && e.name.endsWith('_year')"
    tab_to(page, value, "the year's value field")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')"), "the value field has no name"
    page.keyboard.type(str(year))
    tab_to(page, "e => e.matches('#filter_form button[type=submit]')", "搜索 button")
    enter_and_wait(page)
    assert f"_year={year}" in page.url

    tab_to(page, "e => e.id === 'btn-export'", "导出当前结果（Excel）")
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    data = open(download.value.path(), "rb").read()
    sheet = openpyxl.load_workbook(io.BytesIO(data), read_only=True).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    header, body = rows[0], [r for r in rows[1:] if any(c not in (None, "") for c in r)]
    assert len(body) == expected
    y = header.index("认定年度")
    assert {str(r[y]) for r in body} == {str(year)}


# ----------------------------------------------------------------- 大字版


def test_large_text_switch_by_keyboard_is_remembered(app, live_server, page, _browser):
    keyboard_login(page, live_server, "clerk_a")
    standard = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    td = "parseFloat(getComputedStyle(document.querySelector('#ce-main td')).fontSize)"
    standard_td = page.evaluate(td)
    page.keyboard.press("Tab")
    tab_to(page, "e => e.matches('#ce-user-menu > .dropdown-toggle')", "the user menu")
    page.keyboard.press("Enter")
    arrow_to(page, "e => e.id === 'ce-large-text'", "大字版")
    assert page.get_attribute("#ce-large-text", "aria-pressed") == "false"
    enter_and_wait(page)
    assert page.evaluate("document.documentElement.classList.contains('ce-large')")
    assert page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") == standard * 1.5
    assert page.evaluate(td) >= standard_td * 1.5 - 0.5
    assert page.get_attribute("#ce-large-text", "aria-pressed") == "true"
    with app.app_context():
        assert db.session.execute(select(CEUser.large_text).where(CEUser.username == "clerk_a")).scalar_one()
        assert not db.session.execute(select(CEUser.large_text).where(CEUser.username == "clerk_b")).scalar_one()

    # Another browser, same account: 大字版; another account: 标准.
    other = _browser.new_context(viewport={"width": 1366, "height": 900})
    try:
        p2 = other.new_page()
        keyboard_login(p2, live_server, "clerk_a")
        assert p2.evaluate("document.documentElement.classList.contains('ce-large')")
        p2.goto(live_server + "/hourrecordview/list/")
        assert p2.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        screenshot(p2, "keyboard_large_text_grid")
        p2.goto(live_server + "/logout/")
        keyboard_login(p2, live_server, "clerk_b")
        assert not p2.evaluate("document.documentElement.classList.contains('ce-large')")
    finally:
        other.close()

    # And back to 标准 with Space on the switch.
    page.keyboard.press("Tab")
    tab_to(page, "e => e.matches('#ce-user-menu > .dropdown-toggle')", "the user menu")
    page.keyboard.press("Enter")
    arrow_to(page, "e => e.id === 'ce-large-text'", "大字版")
    enter_and_wait(page, "Space")
    assert not page.evaluate("document.documentElement.classList.contains('ce-large')")
    assert page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") == standard
