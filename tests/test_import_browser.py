"""In a real browser (issue 4): clerk_a downloads the unit template, fills it,
uploads it, sees the preview, confirms and finds the rows in the grid; bureau_nj
filters the grid and the exported file holds exactly the filtered rows."""
import datetime
import re

from openpyxl import load_workbook
from sqlalchemy import select

from app.extensions import db
from app.models import HourRecord, Person
from app.models.enums import Category
from app.models.regions import region_range
from tests.conftest import browser_login, screenshot


def test_clerk_imports_through_the_browser(app, live_server, page, tmp_path):
    with app.app_context():
        zs = db.session.execute(select(Person.id_number).where(Person.name == "张三")).scalar_one()
    browser_login(page, live_server, "clerk_a")
    page.goto(live_server + "/imports/")
    with page.expect_download() as dl:
        page.click("#tpl-unit")
    tpl = tmp_path / "template.xlsx"
    dl.value.save_as(tpl)
    assert dl.value.suggested_filename == "单位专业科目学时导入模板.xlsx"

    wb = load_workbook(tpl)
    ws = wb["学时数据"]
    assert [c.value for c in ws[1]] == ["姓名", "证件类型", "证件号码", "认定年度", "科目类别", "学习形式",
                                        "课程（项目）名称", "举办单位", "开始日期", "结束日期", "学时", "天数",
                                        "授课（讲座）学时", "加项", "级别", "名次"]
    rows = [
        ["张三", "居民身份证", zs, 2026, "专业科目", "培训（面授）", "浏览器导入课程甲", "东南大学",
         datetime.date(2026, 6, 8), datetime.date(2026, 6, 9), 12],
        ["张三", "居民身份证", zs, 2026, "专业科目", "学术会议", "浏览器导入课程乙", "南京大学",
         "2026/6/15", "2026年6月16日", "6.5"],
    ]
    for r, values in enumerate(rows, start=2):  # overwrite the example row, keep the formatting
        for c, v in enumerate(values, start=1):
            ws.cell(row=r, column=c, value=v)
    filled = tmp_path / "filled.xlsx"
    wb.save(filled)

    page.set_input_files("#form-unit input[type=file]", str(filled))
    page.click("#form-unit button[type=submit]")
    page.wait_for_selector("#import-preview")
    assert page.inner_text("#cnt-new") == "2"
    assert page.inner_text("#cnt-error") == "0"
    screenshot(page, "import_preview")
    page.click("#btn-confirm")
    page.wait_for_selector("#import-stored")
    assert "导入成功：已保存2条记录" in page.inner_text("#import-stored")
    screenshot(page, "import_stored")

    page.goto(live_server + "/hourrecordview/list/")
    body = page.inner_text("body")
    assert "浏览器导入课程甲" in body and "浏览器导入课程乙" in body
    screenshot(page, "import_grid")
    with app.app_context():
        got = db.session.execute(
            select(HourRecord.course_name, HourRecord.hours, HourRecord.start_date, HourRecord.end_date)
            .where(HourRecord.course_name.like("浏览器导入课程%")).order_by(HourRecord.start_date)
        ).all()
    assert [(c, float(h), s, e) for c, h, s, e in got] == [
        ("浏览器导入课程甲", 12.0, datetime.date(2026, 6, 8), datetime.date(2026, 6, 9)),
        ("浏览器导入课程乙", 6.5, datetime.date(2026, 6, 15), datetime.date(2026, 6, 16)),
    ]


def test_bureau_exports_exactly_the_filtered_grid(app, live_server, page, tmp_path):
    year = datetime.date.today().year - 1
    browser_login(page, live_server, "bureau_nj")
    page.goto(live_server + f"/hourrecordview/list/?_flt_0_year={year}&_flt_0_category=PUB")
    screenshot(page, "export_filtered_grid")
    grid_text = page.inner_text("body")
    with page.expect_download() as dl:
        page.click("#btn-export")
    path = tmp_path / "export.xlsx"
    dl.value.save_as(path)
    ws = load_workbook(path).worksheets[0]
    rows = list(ws.iter_rows(values_only=True))[1:]
    with app.app_context():
        expected = db.session.execute(
            select(Person.name, HourRecord.course_name)
            .join(Person, HourRecord.person_id == Person.id)
            .where(HourRecord.year == year, HourRecord.category == Category.PUB,
                   region_range(HourRecord.region_code, "3201"))
            .order_by(HourRecord.id.desc())
        ).all()
    assert [(r[0], r[5]) for r in rows] == [tuple(e) for e in expected]
    assert len(rows) > 0 and {r[2] for r in rows} == {year} and {r[3] for r in rows} == {"公需科目"}
    # the grid's count is the file's row count, its first page the head of the file
    count = page.locator(".ce-count, .ce-record-count").first.inner_text() if page.locator(
        ".ce-record-count").count() else grid_text
    assert re.search(r"(^|\D)%d(\D|$)" % len(rows), count), count
    assert all(r[0] in grid_text and r[5] in grid_text for r in rows[:25])
    assert re.fullmatch(r"\d{6}\*+\d{3}[\dX]", rows[0][1])


def test_error_preview_in_the_browser(app, live_server, page, tmp_path):
    import os

    browser_login(page, live_server, "clerk_a")
    page.goto(live_server + "/imports/")
    page.set_input_files("#form-unit input[type=file]", os.path.join(os.path.dirname(__file__), "data", "bad_dates.xlsx"))
    page.click("#form-unit button[type=submit]")
    page.wait_for_selector("#error-table")
    screenshot(page, "import_errors")
    assert page.locator("#btn-confirm").count() == 0
    assert "文件中有5行错误" in page.inner_text("#has-errors")
    cells = page.locator("#error-table tr").all_inner_texts()
    assert cells[1].split("\t") == ["第2行", "开始日期", "日期不存在：2026-02-30"]
    with page.expect_download() as dl:
        page.click("#btn-errors")
    path = tmp_path / "errors.xlsx"
    dl.value.save_as(path)
    assert dl.value.suggested_filename == "bad_dates_错误行.xlsx"
    rows = list(load_workbook(path).active.iter_rows(values_only=True))
    assert len(rows) == 6 and rows[1][-2] == "开始日期：日期不存在：2026-02-30"
