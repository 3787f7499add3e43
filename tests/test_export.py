"""Grid exports (issue 4): exactly the rows on screen, in scope, safe cells."""
import datetime
import io
import re
import time
import zipfile

from openpyxl import load_workbook
from python_calamine import CalamineWorkbook
from sqlalchemy import func, select

from app.extensions import db
from app.models import HourRecord, Person, Status, Unit
from app.models.enums import Category
from app.models.regions import region_range

LIST = "/hourrecordview/list/"
EXPORT = "/hourrecordview/export/"


def _sheet(resp):
    assert resp.status_code == 200, resp.status_code
    assert resp.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    wb = load_workbook(io.BytesIO(resp.data))
    return wb.worksheets[0]


def _calamine(resp):
    """The export as calamine (the importer's reader) sees it, after checking the zip."""
    assert zipfile.ZipFile(io.BytesIO(resp.data)).testzip() is None
    return CalamineWorkbook.from_filelike(io.BytesIO(resp.data)).get_sheet_by_index(0).to_python()


def _rows(ws):
    rows = list(ws.iter_rows(values_only=True))
    return rows[0], rows[1:]


def test_bureau_export_is_exactly_the_filtered_rows(app, login_as):
    c = login_as("bureau_nj")
    year = datetime.date.today().year - 1
    qs = f"?_flt_0_year={year}&_flt_0_category=PRO"
    page = c.get(LIST + qs).get_data(as_text=True)
    assert "btn-export" in page
    m = re.search(r'id="btn-export"\s+href="([^"]+)"', page)
    assert m and "_flt_0_year" in m.group(1)
    header, rows = _rows(_sheet(c.get(EXPORT + qs)))
    assert header[:4] == ("姓名", "证件号码", "认定年度", "科目类别")
    with app.app_context():
        expected = db.session.execute(
            select(HourRecord.id, Person.name, HourRecord.course_name, HourRecord.start_date)
            .join(Person, HourRecord.person_id == Person.id)
            .where(HourRecord.year == year, HourRecord.category == Category.PRO,
                   region_range(HourRecord.region_code, "3201"))
            .order_by(HourRecord.id.desc())
        ).all()
    assert len(rows) == len(expected) > 0
    # same rows, same order (the grid's default: newest first)
    assert [(r[0], r[5], r[7].date()) for r in rows] == [(e.name, e.course_name, e.start_date) for e in expected]
    assert {r[2] for r in rows} == {year} and {r[3] for r in rows} == {"专业科目"}
    # bureau staff see masked ID numbers, as on screen
    assert all(re.fullmatch(r"\d{6}\*{8}\d{3}[\dX]", r[1]) for r in rows)
    # dates are real dates
    assert all(isinstance(r[7], datetime.datetime) for r in rows)


def test_sort_is_kept(app, login_as):
    c = login_as("bureau_js")
    header, rows = _rows(_sheet(c.get(EXPORT + "?_oc_HourRecordView=hours&_od_HourRecordView=asc")))
    hours = [r[header.index("学时")] for r in rows]
    assert hours == sorted(hours) and len(hours) > 50
    with app.app_context():
        assert len(rows) == db.session.execute(select(func.count(HourRecord.id))).scalar()


def test_unit_export_in_scope_with_full_ids_as_text(app, login_as):
    c = login_as("clerk_a")
    ws = _sheet(c.get(EXPORT))
    header, rows = _rows(ws)
    # the ID column is formatted as text, so a number typed there keeps its digits
    assert {cell.number_format for (cell,) in ws.iter_rows(min_row=2, min_col=2, max_col=2)} == {"@"}
    with app.app_context():
        unit_id = db.session.execute(select(Person.unit_id).where(Person.name == "张三")).scalar_one()
        n = db.session.execute(select(func.count(HourRecord.id)).where(HourRecord.unit_id == unit_id)).scalar()
        zs = db.session.execute(select(Person.id_number).where(Person.name == "张三")).scalar_one()
    assert len(rows) == n
    assert {r[header.index("所在单位")] for r in rows} == {"南京金陵科技有限公司"}
    ids = {r[1] for r in rows if r[0] == "张三"}
    assert ids == {zs}  # whole, as text


def test_formula_cells_neutralised(app, login_as):
    with app.app_context():
        rec = db.session.execute(select(HourRecord).where(HourRecord.unit_id.isnot(None))).scalars().first()
        rec.course_name = '=HYPERLINK("http://evil.invalid","x")'
        rec.organizer_name = "@SUM(1+1)"
        rid = rec.id
        unit_id = rec.unit_id
        db.session.commit()
    c = login_as("admin")
    ws = _sheet(c.get(EXPORT))
    found = [row for row in ws.iter_rows(min_row=2) if row[5].value and "evil" in row[5].value]
    assert len(found) == 1
    cell = found[0][5]
    assert cell.value == '\'=HYPERLINK("http://evil.invalid","x")' and cell.data_type == "s"
    assert rid and unit_id


def test_every_grid_exports(app, login_as):
    c = login_as("bureau_nj")
    header, rows = _rows(_sheet(c.get("/personview/export/")))
    assert header[:3] == ("姓名", "证件类型", "证件号码")
    assert rows and all("*" in r[2] for r in rows)
    header, rows = _rows(_sheet(c.get("/unitview/export/")))
    assert rows and header[0]
    a = login_as("admin")
    header, rows = _rows(_sheet(a.get("/regionview/export/")))
    assert len(rows) > 13
    header, rows = _rows(_sheet(a.get("/auditlogview/export/")))
    assert header


def test_export_needs_the_permission(app, login_as):
    c = login_as("zhangsan")
    resp = c.get(EXPORT)
    assert resp.status_code in (302, 403)
    assert not resp.data.startswith(b"PK")
    assert "btn-export" not in c.get(LIST).get_data(as_text=True)


def test_large_export_runs_as_a_job(app, login_as):
    app.config["EXPORT_INLINE_MAX_ROWS"] = 5
    try:
        c = login_as("bureau_nj")
        resp = c.get(EXPORT + "?_flt_0_category=PUB", follow_redirects=True)
        html = resp.get_data(as_text=True)
        job_id = int(re.search(r"#(\d+)", html).group(1))
        for _ in range(600):
            st = c.get(f"/imports/job/{job_id}/status").get_json()
            if st["state"] in ("done", "failed"):
                break
            time.sleep(0.1)
        assert st["state"] == "done"
        assert "导出完成" in c.get(f"/imports/job/{job_id}").get_data(as_text=True)
        header, rows = _rows(_sheet(c.get(f"/imports/job/{job_id}/download")))
        with app.app_context():
            n = db.session.execute(select(func.count(HourRecord.id)).where(
                HourRecord.category == Category.PUB, region_range(HourRecord.region_code, "3201"))).scalar()
        assert len(rows) == n > 5
        assert {r[3] for r in rows} == {"公需科目"}
        # someone else cannot fetch it
        assert login_as("bureau_sz").get(f"/imports/job/{job_id}/download").status_code == 404
    finally:
        app.config.pop("EXPORT_INLINE_MAX_ROWS")


def test_export_is_audited(app, login_as):
    from app.models import AuditLog

    c = login_as("clerk_a")
    c.get(EXPORT + "?_flt_0_status=APPROVED")
    with app.app_context():
        entry = db.session.execute(select(AuditLog).where(AuditLog.action == "export")).scalar_one()
        assert entry.username == "clerk_a" and "_flt_0_status=APPROVED" in entry.detail
        assert Status.APPROVED


def test_unit_export_cells_read_back_exactly(app, login_as):
    c = login_as("clerk_a")
    resp = c.get(EXPORT)
    header_cells = _sheet(resp)[1]
    assert all(cell.font.b for cell in header_cells)
    rows = _calamine(resp)
    assert rows[0] == ["姓名", "证件号码", "认定年度", "科目类别", "学习形式", "课程（项目）名称", "学时",
                       "开始日期", "结束日期", "来源", "状态", "所在单位"]
    with app.app_context():
        unit_id = db.session.execute(select(Person.unit_id).where(Person.name == "张三")).scalar_one()
        expected = [
            [name, id_number, float(r.year), r.category.value, r.learning_form.value, r.course_name,
             float(r.hours), r.start_date, r.end_date, r.source.value, r.status.value, unit]
            for r, name, id_number, unit in db.session.execute(
                select(HourRecord, Person.name, Person.id_number, Unit.name)
                .join(Person, HourRecord.person_id == Person.id).join(Unit, HourRecord.unit_id == Unit.id)
                .where(HourRecord.unit_id == unit_id).order_by(HourRecord.id.desc()))
        ]
    # every cell: names and ID numbers as text, years and hours as numbers, dates as dates, labels
    assert rows[1:] == expected and len(expected) > 3


def test_empty_export_is_the_header_row(login_as):
    c = login_as("bureau_nj")
    resp = c.get(EXPORT + "?_flt_0_year=1990")
    header, rows = _rows(_sheet(resp))
    assert header[0] == "姓名" and rows == []
    assert _calamine(resp) == [list(header)]


def test_export_job_reports_progress(app, tmp_path):
    from app.services import exporter

    reports = []
    rows = ([f"姓名{i}", i] for i in range(120_000))
    with app.test_request_context():
        n = exporter.write_xlsx(["姓名", "序号"], rows, str(tmp_path / "progress.xlsx"),
                                progress=lambda p, m: reports.append((p, m)), total=120_000)
    assert n == 120_000
    assert reports == [(41, "已导出50000行"), (83, "已导出100000行")]
