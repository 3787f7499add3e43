"""The main flows in a real browser (Playwright + Debian Chromium): every role
logs in and sees the Chinese hour-record grid; bureau_nj filters it by year and
category with FAB's search UI and sees only matching rows of 南京.

Screenshots land in tests/_artifacts/."""
import datetime
import re

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Category, HourRecord, Person, Unit
from tests.conftest import browser_login, screenshot

USERS = ["admin", "bureau_js", "bureau_nj", "bureau_sz", "unitadmin_a", "clerk_a", "clerk_b",
         "agency_clerk", "organizer", "zhangsan", "lisi", "wangwu"]
COLUMNS = ["姓名", "证件号码", "认定年度", "科目类别", "学习形式", "课程（项目）名称", "学时", "状态"]


def grid_rows(page):
    """The list table's rows as lists of cell texts (data rows only)."""
    return page.eval_on_selector_all(
        "div.table-responsive table tbody tr",
        "rows => rows.map(r => Array.from(r.querySelectorAll('td')).map(td => td.innerText.trim()))"
        ".filter(cells => cells.length > 5)",
    )


def header(page):
    return page.eval_on_selector_all(
        "div.table-responsive table thead th", "ths => ths.map(th => th.innerText.trim())")


def record_count(page):
    m = re.search(r"记录数\s*[:：]\s*(\d+)", page.inner_text("body"))
    return int(m.group(1)) if m else None


@pytest.mark.parametrize("username", USERS)
def test_every_role_sees_the_chinese_hour_grid(app, live_server, page, username):
    browser_login(page, live_server, username)
    assert "/login" not in page.url, "login failed for " + username
    body = page.inner_text("body")
    assert "您好" in body and username in body, body[:500]
    # through the menu, as a user would
    page.click(".navbar a.dropdown-toggle:has-text('学时管理')")
    page.click(".navbar ul.dropdown-menu a[href='/hourrecordview/list/']")
    page.wait_for_load_state("networkidle")
    assert "/hourrecordview/list" in page.url
    heads = header(page)
    for col in COLUMNS:
        assert col in heads, (username, col, heads)
    rows = grid_rows(page)
    assert rows, username
    body = page.inner_text("body")
    for english in ("Add Filter", "Search", "Record Count", "Page size", "Show record", "List"):
        assert english not in body, (username, english)
    with app.app_context():
        statuses = {s.value for s in db.session.execute(select(HourRecord.status).distinct()).scalars()}
    status_col = heads.index("状态")
    assert {r[status_col] for r in rows} <= statuses
    if username in ("admin", "bureau_nj", "clerk_a", "zhangsan"):
        screenshot(page, f"hour_grid_{username}")


def test_bureau_filters_by_year_and_category(app, live_server, page):
    year = datetime.date.today().year - 1
    with app.app_context():
        expected = db.session.execute(
            select(func.count(HourRecord.id)).join(Person, HourRecord.person_id == Person.id)
            .join(Unit, Person.unit_id == Unit.id)
            .where(Unit.region_code.like("3201%"), HourRecord.year == year,
                   HourRecord.category == Category.PUB)
        ).scalar()
    assert expected > 0

    browser_login(page, live_server, "bureau_nj")
    page.goto(live_server + "/hourrecordview/list/")
    page.click("a.accordion-toggle:has-text('搜索')")
    page.click("button:has-text('添加过滤条件')")
    page.click("#filter_form a.filter[name=year]")
    page.fill("#filter_form input[name^=_flt_][name$=_year]", str(year))
    page.click("button:has-text('添加过滤条件')")
    page.click("#filter_form a.filter[name=category]")
    # the value drop-down is a select2 widget: open it and pick 公需科目
    page.click("#filter_form select[name$=_category] + .select2-container")
    page.click(".select2-results__option:has-text('公需科目')")
    screenshot(page, "hour_grid_bureau_nj_filter_form")
    page.click("#filter_form button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert f"_year={year}" in page.url and "PUB" in page.url

    heads = header(page)
    y, c, u = heads.index("认定年度"), heads.index("科目类别"), heads.index("所在单位")
    seen = []
    while True:
        rows = grid_rows(page)
        assert rows
        seen += rows
        nxt = page.locator("ul.pagination li:not(.disabled) a:has-text('>')").first
        if len(seen) >= expected or nxt.count() == 0:
            break
        nxt.click()
        page.wait_for_load_state("networkidle")
    assert len(seen) == expected
    assert {r[y] for r in seen} == {str(year)}
    assert {r[c] for r in seen} == {"公需科目"}
    with app.app_context():
        nanjing_units = set(db.session.execute(select(Unit.name).where(Unit.region_code.like("3201%"))).scalars())
    assert {r[u] for r in seen} <= nanjing_units
    # the last page is in sight, so the count is exact (not "超过 N 条")
    assert record_count(page) == expected
    page.goto(page.url.split("?")[0] + f"?_flt_0_year={year}&_flt_0_category=PUB")
    screenshot(page, "hour_grid_bureau_nj_filtered")


def test_masked_and_whole_id_numbers_in_the_browser(live_server, page):
    browser_login(page, live_server, "bureau_nj")
    page.goto(live_server + "/personview/list/")
    text = page.inner_text("div.table-responsive table")
    assert re.search(r"\d{6}\*{8}[\dX]{4}", text)
    assert not re.search(r"\d{17}[\dX]", text)
    page.context.clear_cookies()
    browser_login(page, live_server, "clerk_a")
    page.goto(live_server + "/personview/list/")
    text = page.inner_text("div.table-responsive table")
    assert re.search(r"\d{17}[\dX]", text)
    assert not re.search(r"\d{6}\*{8}", text)


def test_form_widgets_speak_chinese(live_server, page):
    """FAB's date picker and select2 drop-downs come in English; the app gives them Chinese."""
    browser_login(page, live_server, "admin")
    page.goto(live_server + "/hourrecordview/add")
    page.click("input[name=start_date]")
    picker = page.locator(".datepicker").first
    picker.wait_for(state="visible")
    text = picker.inner_text()
    assert "月" in text and "一" in text, text
    assert not re.search(r"\b(Su|Mo|January|February|March|April|May|June|July|August|September|October|November|December)\b", text), text
    page.keyboard.press("Escape")
    page.click("select[name=person] + .select2-container")
    page.fill(".select2-search__field", "不存在的人")
    assert page.locator(".select2-results").inner_text().strip() == "未找到结果"
    page.keyboard.press("Escape")
    screenshot(page, "hour_add_form_admin")
