"""Bulk import (issue 4): every fixture in tests/data has its exact outcome here.

Files are made by tests/data/make_files.py.  Service-level tests call
app.services.importer directly; the HTTP tests go through the pages a clerk uses.
"""
import datetime
import io
import json
import os
import re
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditLog, CEUser, HourRecord, ImportBatch, Job, Person, Source, Status
from app.models.enums import Category, LearningForm
from app.services import importer
from app.services.errors import ValidationFailed
from tests.conftest import post

DATA = os.path.join(os.path.dirname(__file__), "data")
TODAY = datetime.date(2026, 11, 27)

ZHANGSAN_ID = None


def _user(name):
    return db.session.execute(select(CEUser).where(CEUser.username == name)).scalar_one()


def _count(*where):
    return db.session.execute(select(func.count(HourRecord.id)).where(*where)).scalar()


def analyse(app, fname, kind="unit", username="clerk_a", today=TODAY):
    with app.app_context():
        return importer.analyse(os.path.join(DATA, fname), kind, _user(username), filename=fname, today=today)


def store(app, fname, kind="unit", username="clerk_a", today=TODAY):
    with app.app_context():
        return importer.store(os.path.join(DATA, fname), kind, _user(username), filename=fname, today=today)


def zhangsan_id(app):
    with app.app_context():
        return db.session.execute(select(Person.id_number).where(Person.name == "张三")).scalar_one()


def records_of(app, course_like):
    with app.app_context():
        rows = db.session.execute(
            select(HourRecord).where(HourRecord.course_name.like(course_like)).order_by(HourRecord.start_date, HourRecord.id)
        ).scalars().all()
        return [
            (r.person.name, r.year, r.category, r.learning_form, r.course_name, r.organizer_name,
             r.start_date, r.end_date, r.hours, r.source, r.status, r.unit.name if r.unit else None)
            for r in rows
        ]


def total(app):
    with app.app_context():
        return _count()


# ------------------------------------------------------------------ good files


def test_good_unit_file_stored_with_exact_values(app):
    before = total(app)
    res = analyse(app, "good_unit.xlsx")
    assert (res.rows_total, res.rows_new, res.rows_error, res.errors) == (3, 3, 0, [])
    res = store(app, "good_unit.xlsx")
    assert res.rows_stored == 3
    assert total(app) == before + 3
    rows = records_of(app, "%")
    got = [r for r in rows if r[4] in ("建筑信息模型（BIM）应用", "工程项目管理实务", "智能制造前沿技术")]
    assert sorted(got, key=lambda r: r[6]) == [
        ("张三", 2026, Category.PRO, LearningForm.TRAIN_ONSITE, "建筑信息模型（BIM）应用", "东南大学继续教育学院",
         datetime.date(2026, 3, 5), datetime.date(2026, 3, 7), Decimal("16.0"), Source.UNIT_IMPORT,
         Status.APPROVED, "南京金陵科技有限公司"),
        ("张三", 2026, Category.PRO, LearningForm.TRAIN_ONSITE, "工程项目管理实务", "东南大学继续教育学院",
         datetime.date(2026, 4, 10), datetime.date(2026, 4, 11), Decimal("8.0"), Source.UNIT_IMPORT,
         Status.APPROVED, "南京金陵科技有限公司"),
        ("张三", 2026, Category.PRO, LearningForm.TRAIN_ONLINE, "智能制造前沿技术", "东南大学继续教育学院",
         datetime.date(2026, 5, 6), datetime.date(2026, 5, 6), Decimal("4.5"), Source.UNIT_IMPORT,
         Status.APPROVED, "南京金陵科技有限公司"),
    ]
    with app.app_context():
        batch = db.session.execute(select(ImportBatch)).scalar_one()
        assert (batch.kind, batch.filename, batch.rows_added, batch.rows_duplicate) == ("unit", "good_unit.xlsx", 3, 0)
        recs = db.session.execute(select(HourRecord).where(HourRecord.import_batch_id == batch.id)).scalars().all()
        clerk = _user("clerk_a")
        assert {(r.reported_by_unit_id, r.region_code, r.created_by_id) for r in recs} == {
            (clerk.unit_id, "320102", clerk.id)}
        entry = db.session.execute(select(AuditLog).where(AuditLog.action == "import")).scalar_one()
        detail = json.loads(entry.detail)
        assert (entry.username, detail["filename"], detail["rows_added"], detail["rows_duplicate"]) == (
            "clerk_a", "good_unit.xlsx", 3, 0)


def test_same_file_twice_stores_nothing_the_second_time(app):
    store(app, "good_unit.xlsx")
    n = total(app)
    res = analyse(app, "good_unit.xlsx")
    assert (res.rows_new, res.rows_dup_stored, res.errors) == (0, 3, [])
    assert res.previous_batch is not None
    assert all("已存在相同记录" in reason for _row, reason in res.duplicates)
    res = store(app, "good_unit.xlsx")
    assert res.rows_stored == 0
    assert total(app) == n
    with app.app_context():
        assert db.session.execute(select(func.count(ImportBatch.id))).scalar() == 1


def test_fullwidth_digits_and_spaces_normalised(app):
    res = store(app, "fullwidth_digits.xlsx")
    assert res.rows_stored == 1
    assert records_of(app, "全角数字课程") == [
        ("张三", 2026, Category.PRO, LearningForm.TRAIN_ONSITE, "全角数字课程", "东南大学继续教育学院",
         datetime.date(2026, 6, 1), datetime.date(2026, 6, 2), Decimal("12.0"), Source.UNIT_IMPORT,
         Status.APPROVED, "南京金陵科技有限公司"),
    ]


def test_every_date_form_is_read(app):
    res = store(app, "date_formats.xlsx")
    assert res.rows_stored == 6
    got = {r[4]: (r[6], r[7]) for r in records_of(app, "日期格式%")}
    assert got == {
        "日期格式一": (datetime.date(2026, 7, 1), datetime.date(2026, 7, 1)),
        "日期格式二": (datetime.date(2026, 7, 1), datetime.date(2026, 7, 2)),
        "日期格式三": (datetime.date(2026, 3, 5), datetime.date(2026, 3, 6)),
        "日期格式四": (datetime.date(2026, 3, 5), datetime.date(2026, 3, 6)),
        "日期格式五": (datetime.date(2026, 3, 5), datetime.date(2026, 3, 6)),
        "日期格式六": (datetime.date(2026, 3, 5), datetime.date(2026, 3, 6)),
    }


def test_merged_cells_and_blank_trailing_rows(app):
    res = store(app, "merged_trailing.xlsx")
    assert (res.rows_total, res.rows_stored) == (3, 3)
    got = [(r[4], r[6]) for r in records_of(app, "合并单元格课程")]
    assert got == [("合并单元格课程", datetime.date(2026, 9, d)) for d in (1, 2, 3)]


def test_million_blank_formatted_rows(app):
    res = store(app, "blank_formatted_1m.xlsx")
    assert (res.rows_total, res.rows_stored, res.errors) == (2, 2, [])
    assert [r[4] for r in records_of(app, "大文件中的%")] == ["大文件中的第一行", "大文件中的第二行"]
    assert res.seconds < 30  # calamine skips the formatting; openpyxl would iterate 1 000 000 rows


# ------------------------------------------------------------------ bad rows


def _errors(res):
    return [(row, col, reason) for row, col, reason in res.errors]


def test_numeric_ids_refused_with_explanation(app):
    before = total(app)
    res = analyse(app, "numeric_ids.xlsx")
    assert [(r, c) for r, c, _ in _errors(res)] == [(2, "证件号码"), (3, "证件号码")]
    assert all("被存成了数字" in reason and "文本格式" in reason for *_x, reason in _errors(res))
    with pytest.raises(ValidationFailed, match="整份文件未保存"):
        store(app, "numeric_ids.xlsx")
    assert total(app) == before  # the good third row is not stored either


def test_bad_dates(app):
    before = total(app)
    res = analyse(app, "bad_dates.xlsx")
    assert _errors(res) == [
        (2, "开始日期", "日期不存在：2026-02-30"),
        (3, "开始日期", "日期格式不正确：下周一（应为 2024-03-05、2024/3/5、2024年3月5日 或 20240305）"),
        (4, "结束日期", "结束日期不能早于开始日期"),
        (5, "开始日期", "学习日期应在认定年度2026年内"),
        (6, "开始日期", "不能为空"),
    ]
    with pytest.raises(ValidationFailed):
        store(app, "bad_dates.xlsx")
    assert total(app) == before


def test_bad_values(app):
    res = analyse(app, "bad_values.xlsx")
    assert _errors(res) == [
        (2, "科目类别", "本模板只能导入专业科目"),
        (3, "学习形式", "学习形式“自学”不在2026年度的学时认定标准中，请从模板的下拉列表中选择"),
        (4, "学时", "学时应大于0"),
        (5, "学时", "学时应以0.5为单位"),
        (6, "学时", "单条记录学时不能超过200"),
        (7, "学时", "学时应为数字"),
        (8, "证件号码", "身份证号码校验位不正确"),
        (9, "证件号码", "身份证号码应为18位，当前为10位"),
        (10, "姓名", "姓名与系统登记的不一致（系统登记为：张三）"),
    ]
    assert res.rows_error == 9 and res.rows_new == 0


def test_duplicates_in_file_reported_not_stored(app):
    res = analyse(app, "duplicates_in_file.xlsx")
    assert (res.rows_new, res.rows_dup_file, res.errors) == (2, 1, [])
    assert res.duplicates == [[4, "与第2行重复（同一人员、年度、科目类别、课程名称和开始日期）"]]
    store(app, "duplicates_in_file.xlsx")
    assert [r[4] for r in records_of(app, "重复课程")] == ["重复课程"]


def test_other_units_person_refused_and_file_not_stored(app):
    before = total(app)
    res = analyse(app, "other_unit_person.xlsx")
    assert _errors(res) == [
        (3, "证件号码", "该人员已登记在其他单位，不能由本单位导入；如已调入本单位，请先办理人员调动")]
    with pytest.raises(ValidationFailed):
        store(app, "other_unit_person.xlsx")
    assert total(app) == before
    # clerk_b of that unit may import 李四 (and not 张三)
    res = analyse(app, "other_unit_person.xlsx", username="clerk_b")
    assert [(r, c) for r, c, _ in _errors(res)] == [(2, "证件号码")]


def test_formulas_never_evaluated(app):
    res = analyse(app, "formulas.xlsx")
    assert _errors(res) == [
        (2, "课程（项目）名称", "单元格含公式，请复制后“选择性粘贴为数值”再导入"),
        (3, "学时", "单元格含公式，请复制后“选择性粘贴为数值”再导入"),
    ]


def test_unit_registers_unknown_persons(app):
    res = analyse(app, "unknown_persons_unit.xlsx")
    assert (res.rows_new, res.persons_new, res.errors) == (3, 2, [])
    store(app, "unknown_persons_unit.xlsx")
    with app.app_context():
        people = db.session.execute(select(Person).where(Person.name.in_(["赵新", "钱进"])).order_by(Person.name)).scalars().all()
        assert [(p.name, p.unit.name, len(p.history)) for p in people] == [
            ("赵新", "南京金陵科技有限公司", 1), ("钱进", "南京金陵科技有限公司", 1)]
    assert len(records_of(app, "新入职培训")) == 2


def test_bureau_imports_only_in_its_region_and_never_creates_persons(app):
    res = analyse(app, "bureau_public.xlsx", kind="bureau", username="bureau_nj")
    assert _errors(res) == [(4, "证件号码", "该人员所在单位不在本辖区，不能导入")]
    res = analyse(app, "bureau_public.xlsx", kind="bureau", username="bureau_js")
    assert (res.rows_new, res.errors) == (3, [])
    store(app, "bureau_public.xlsx", kind="bureau", username="bureau_js")
    got = records_of(app, "数字经济与创新驱动发展（2026）")
    assert sorted((r[0], r[2], r[9], r[11]) for r in got) == [
        ("张三", Category.PUB, Source.BUREAU_IMPORT, "南京金陵科技有限公司"),
        ("李四", Category.PUB, Source.BUREAU_IMPORT, "苏州工业园区智造有限公司"),
        ("王五", Category.PUB, Source.BUREAU_IMPORT, "南京市人才服务中心"),
    ]
    res = analyse(app, "unknown_person_bureau.xlsx", kind="bureau", username="bureau_nj")
    assert _errors(res) == [(2, "证件号码", "该人员未在系统中登记，请先登记人员信息")]


def test_organizer_late_flag_counts_chinese_working_days(app):
    # Programme ended Fri 2026-03-13; 20 working days later is 2026-04-13
    # (Qingming 4-4..4-6 is a holiday), so 04-13 is in time and 04-14 late.
    with app.app_context():
        assert importer.add_working_days(datetime.date(2026, 3, 13), 20) == (datetime.date(2026, 4, 13), True)
    res = analyse(app, "organizer_programme.xlsx", kind="organizer", username="organizer",
                  today=datetime.date(2026, 4, 13))
    assert (res.rows_new, res.late_rows, res.errors) == (3, [], [])
    res = analyse(app, "organizer_programme.xlsx", kind="organizer", username="organizer",
                  today=datetime.date(2026, 4, 14))
    assert res.late_rows == [2, 3, 4]
    res = store(app, "organizer_programme.xlsx", kind="organizer", username="organizer",
                today=datetime.date(2026, 4, 14))
    with app.app_context():
        recs = db.session.execute(select(HourRecord).where(HourRecord.course_name == "集成电路设计高级研修班")).scalars().all()
        org = _user("organizer")
        assert {(r.source, r.learning_form, r.late_report, r.reported_by_unit_id) for r in recs} == {
            (Source.ORGANIZER_REPORT, LearningForm.RESEARCH, True, org.unit_id)}


def test_working_days_past_the_holiday_data_fall_back_and_can_be_configured(app):
    with app.app_context():
        # chinesecalendar 1.11 has no 2027 data: weekends only, flagged.
        day, known = importer.add_working_days(datetime.date(2026, 12, 28), 5)
        assert (day, known) == (datetime.date(2027, 1, 4), False)
        app.config["HOLIDAYS_EXTRA"] = {"2027": {"holidays": ["2027-01-01"], "workdays": []}}
        try:
            day, known = importer.add_working_days(datetime.date(2026, 12, 28), 5)
            assert (day, known) == (datetime.date(2027, 1, 5), True)
        finally:
            app.config.pop("HOLIDAYS_EXTRA")


def test_industry_reads_the_national_layout(app):
    from app.models import Unit, UnitKind
    from app.security import roles as R

    with app.app_context():
        sm = app.appbuilder.sm
        unit = Unit(name="省建设行业主管部门", credit_code="11320000MB0000000N", kind=UnitKind.INDUSTRY,
                    region_code="320000")
        from stdnum.cn import uscc

        unit.credit_code = unit.credit_code[:17] + uscc.calc_check_digit(unit.credit_code[:17] + "0")
        db.session.add(unit)
        db.session.commit()
        u = sm.add_user("industry_x", "行业", "经办", "industry_x@demo.invalid", sm.find_role(R.INDUSTRY), "Demo@2026")
        u.unit_id = unit.id
        db.session.commit()
    res = analyse(app, "industry_national.xlsx", kind="industry", username="industry_x")
    assert (res.layout, res.rows_new, res.errors) == ("national", 2, [])
    store(app, "industry_national.xlsx", kind="industry", username="industry_x")
    got = [r for r in records_of(app, "%") if r[9] == Source.INDUSTRY_IMPORT]
    assert sorted((r[0], r[2], r[3], r[8], r[9]) for r in got) == [
        ("张三", Category.PRO, LearningForm.CONFERENCE, Decimal("24.0"), Source.INDUSTRY_IMPORT),
        ("李四", Category.PUB, LearningForm.TRAIN_ONLINE, Decimal("6.0"), Source.INDUSTRY_IMPORT),
    ]


# ------------------------------------------------------------------ between preview and confirm


def test_confirm_skips_a_record_stored_since_the_preview(app):
    """The confirm checks duplicates against the database as it is then: a record
    stored by someone else after the preview is reported and skipped, the rest stored."""
    res = analyse(app, "good_unit.xlsx")
    assert (res.rows_new, res.duplicates) == (3, [])
    with app.app_context():
        person = db.session.execute(select(Person).where(Person.name == "张三")).scalar_one()
        db.session.add(HourRecord(person_id=person.id, year=2026, category=Category.PRO,
                                  learning_form=LearningForm.TRAIN_ONSITE, course_name="工程项目管理实务",
                                  start_date=datetime.date(2026, 4, 10), end_date=datetime.date(2026, 4, 11),
                                  hours=Decimal("8"), status=Status.SUBMITTED))
        db.session.commit()
    before = total(app)
    res = store(app, "good_unit.xlsx")
    assert (res.rows_stored, res.rows_dup_stored) == (2, 1)
    assert res.duplicates == [[3, "系统中已存在相同记录（可能已导入过），不再重复保存"]]
    assert total(app) == before + 2
    assert [(r[4], r[9]) for r in records_of(app, "%") if r[4] == "工程项目管理实务"] == [
        ("工程项目管理实务", Source.DECLARED)]


def test_a_duplicate_stored_while_confirming_stores_nothing(app, monkeypatch):
    """A record stored by someone else after the confirm's duplicate check, just before
    its insert, is refused by the unique key: the whole file is rolled back."""
    from sqlalchemy import insert

    from app.services.errors import DomainError

    analyse(app, "good_unit.xlsx")
    before = total(app)
    bulk_insert = importer._insert_records

    def someone_else_first(conn, varying, common):
        conn.execute(insert(HourRecord), [{**{k: v[0] for k, v in varying.items()}, **common}])
        bulk_insert(conn, varying, common)  # the file's first record is there just in time

    monkeypatch.setattr(importer, "_insert_records", someone_else_first)
    with app.app_context(), pytest.raises(DomainError, match="保存时发现重复记录"):
        importer.store(os.path.join(DATA, "good_unit.xlsx"), "unit", _user("clerk_a"),
                       filename="good_unit.xlsx", today=TODAY)
    assert total(app) == before
    with app.app_context():
        assert db.session.execute(select(func.count(ImportBatch.id))).scalar() == 0
        assert db.session.execute(select(func.count(AuditLog.id)).where(AuditLog.action == "import")).scalar() == 0


def _preview_cache(app, res):
    """The preview's cache file of `res` (as the importer names it now: an earlier
    test's cache of the same file may remain under older rule ids)."""
    with app.app_context():
        path = importer._validated_path(res, TODAY)
    assert os.path.exists(path)
    return path


def test_a_changed_preview_cache_is_not_trusted(app):
    """The confirm reuses the preview's validated rows only when this app wrote them
    for this file: an edited cache, or another file's, is ignored and the file read again."""
    res = analyse(app, "good_unit.xlsx")
    cache = _preview_cache(app, res)
    with open(cache, "rb") as fh:
        data = fh.read()
    assert "（BIM）".encode() in data
    with open(cache, "wb") as fh:
        fh.write(data.replace("（BIM）".encode(), "（XYZ）".encode()))
    res = store(app, "good_unit.xlsx")
    assert res.rows_stored == 3
    assert [r[4] for r in records_of(app, "建筑信息模型%")] == ["建筑信息模型（BIM）应用"]

    # another file's genuine cache under this file's name
    other = analyse(app, "date_formats.xlsx")
    res = analyse(app, "fullwidth_digits.xlsx")
    with open(_preview_cache(app, other), "rb") as src, open(_preview_cache(app, res), "wb") as dst:
        dst.write(src.read())
    res = store(app, "fullwidth_digits.xlsx")
    assert res.rows_stored == 1
    assert [r[4] for r in records_of(app, "日期格式%")] == []
    assert [r[4] for r in records_of(app, "全角数字课程")] == ["全角数字课程"]


def test_equal_cells_of_different_types_are_parsed_apart(app, tmp_path):
    """Each distinct cell value is parsed once, and TRUE, 1 and 1.0 are equal in
    Python: a TRUE in the hours column is still refused next to a 1."""
    from tests.data.make_files import ZHANGSAN, book, unit_row

    wb = book("unit", [unit_row("张三", ZHANGSAN, f"布尔学时{i}", f"2026-03-0{i}", f"2026-03-0{i}", hours)
                       for i, hours in ((1, 1), (2, True), (3, True), (4, 1.0))])
    path = tmp_path / "mixed.xlsx"
    wb.save(path)
    with app.app_context():
        res = importer.analyse(str(path), "unit", _user("clerk_a"), filename="mixed.xlsx", today=TODAY)
    assert _errors(res) == [(3, "学时", "学时应为数字"), (4, "学时", "学时应为数字")]
    assert res.rows_total == 4


def _read_back(path):
    """The first sheet's cells as openpyxl sees them, and its values as calamine reads them."""
    from python_calamine import CalamineWorkbook

    ws = load_workbook(path).active
    return ws, CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()


def test_error_file_writes_formula_like_text_as_text_and_imports_back_as_read(app, tmp_path):
    """A name like =1+2 in an uploaded file is text in the error file (behind an
    apostrophe, never a formula); the import drops that apostrophe again, so the
    error file re-imported unchanged gives the same errors and, once corrected,
    stores the names as they were uploaded."""
    from app.services.demo import resident_id
    from tests.data.make_files import NEW_A, NEW_B, book, unit_row

    new_c = resident_id("320104", datetime.date(1983, 4, 9), 503)
    hyperlink = '=HYPERLINK("http://evil.invalid","点我")'
    wb = book("unit", [
        unit_row("=1+2", NEW_A, hyperlink, datetime.date(2026, 3, 2), datetime.date(2026, 3, 1), 8, org="-"),
        unit_row("+SUM(A1)", NEW_B, "公式课程二", datetime.date(2026, 3, 1), datetime.date(2026, 3, 2), True),
        unit_row("@x", new_c, "公式课程三", datetime.date(2026, 3, 5), datetime.date(2026, 3, 4), 1),
    ])
    for row in wb.active.iter_rows(min_row=2):
        for c in row:
            if c.data_type == "f":  # text typed behind an apostrophe in Excel, not a formula
                c.data_type = "s"
    upload = tmp_path / "formula_text.xlsx"
    wb.save(upload)
    with app.app_context():
        res = importer.analyse(str(upload), "unit", _user("clerk_a"), filename=upload.name, today=TODAY)
        errors = _errors(res)
        assert errors == [(2, "结束日期", "结束日期不能早于开始日期"), (3, "学时", "学时应为数字"),
                          (4, "结束日期", "结束日期不能早于开始日期")]
        error_path = tmp_path / "formula_text_错误行.xlsx"
        error_path.write_bytes(importer.error_file(str(upload), res))

    ws, values = _read_back(error_path)
    assert ws.title == "学时数据"
    assert not [c.coordinate for row in ws.iter_rows() for c in row if c.data_type == "f"]
    names = [r[0] for r in values[1:]]
    assert names == ["'=1+2", "'+SUM(A1)", "'@x"] == [c.value for c in ws["A"][1:]]
    assert {c.data_type for c in ws["A"][1:]} == {"s"}
    assert [r[6] for r in values[1:]][0] == "'" + hyperlink and values[1][7] == "'-"
    # ID numbers are text in text-formatted cells, dates are dates, TRUE stays apart from 1
    assert [(c.value, c.number_format) for c in ws["C"][1:]] == [(NEW_A, "@"), (NEW_B, "@"), (new_c, "@")]
    assert ws["I2"].is_date and ws["I2"].value == datetime.datetime(2026, 3, 2)
    assert [r[10] for r in values[1:]] == [8.0, True, 1.0]
    assert [r[-2:] for r in values[1:]] == [["结束日期：结束日期不能早于开始日期", 2.0], ["学时：学时应为数字", 3.0],
                                            ["结束日期：结束日期不能早于开始日期", 4.0]]

    with app.app_context():
        # re-imported unchanged: the same rows fail for the same reasons (the reason columns are ignored)
        res = importer.analyse(str(error_path), "unit", _user("clerk_a"), filename=error_path.name, today=TODAY)
        assert _errors(res) == errors
        # its own error file is the same file again, not one apostrophe more
        again = tmp_path / "again.xlsx"
        again.write_bytes(importer.error_file(str(error_path), res))
        assert [r[0] for r in _read_back(again)[1][1:]] == ["'=1+2", "'+SUM(A1)", "'@x"]

    # corrected in the error file, it stores the names and courses as uploaded
    wb = load_workbook(error_path)
    ws = wb.active
    ws["J2"].value = datetime.datetime(2026, 3, 3)
    ws["K3"].value = 4
    ws["J4"].value = datetime.datetime(2026, 3, 6)
    wb.save(error_path)
    with app.app_context():
        res = importer.store(str(error_path), "unit", _user("clerk_a"), filename=error_path.name, today=TODAY)
        assert (res.rows_stored, res.persons_new) == (3, 3)
        stored = db.session.execute(
            select(Person.name, Person.id_number, HourRecord.course_name, HourRecord.organizer_name, HourRecord.hours)
            .join(HourRecord, HourRecord.person_id == Person.id).where(HourRecord.import_batch_id == res.batch_id)
            .order_by(HourRecord.start_date)
        ).all()
    assert [tuple(r) for r in stored] == [
        ("+SUM(A1)", NEW_B, "公式课程二", "东南大学继续教育学院", Decimal(4)),
        ("=1+2", NEW_A, hyperlink, "-", Decimal(8)),
        ("@x", new_c, "公式课程三", "东南大学继续教育学院", Decimal(1)),
    ]


# ------------------------------------------------------------------ bad files


@pytest.mark.parametrize("fname, message", [
    ("corrupt_zip.xlsx", "文件已损坏，无法打开；请在 Excel 中重新保存后再导入"),
    ("not_xlsx.xlsx", "文件不是 Excel（.xlsx）文件，请使用系统提供的模板"),
    ("old_xls.xlsx", "这是旧版 Excel（.xls）文件，请在 Excel 中另存为 .xlsx 格式后再导入"),
    ("zip_bomb.xlsx", "文件解压后异常庞大（疑似压缩炸弹），已拒绝导入"),
    ("wrong_headers.xlsx", "表头不正确：缺少“姓名”、“证件号码”、“认定年度”、“科目类别”、“学习形式”、“课程（项目）名称”、“开始日期”、“结束日期”列。请下载并使用本系统的导入模板，不要修改表头。"),
    ("header_only.xlsx", "文件中没有数据行"),
])
def test_bad_files_refused_whole(app, fname, message):
    before = total(app)
    res = analyse(app, fname)
    assert res.file_error == message
    with pytest.raises(ValidationFailed):
        store(app, fname)
    assert total(app) == before


def test_zip_bomb_with_lying_header_caught_while_reading(app, tmp_path):
    # Same bomb, but the central directory claims a tiny sheet.
    src = os.path.join(DATA, "zip_bomb.xlsx")
    data = bytearray(open(src, "rb").read())
    import struct
    import zipfile

    with zipfile.ZipFile(src) as zf:
        info = zf.getinfo("xl/worksheets/sheet1.xml")
    # Patch the ZIP64 extra field of the central directory entry down to 1 KB.
    true_size = struct.pack("<Q", info.file_size)
    idx = data.rfind(true_size)
    data[idx:idx + 8] = struct.pack("<Q", 1024)
    path = tmp_path / "lying.xlsx"
    path.write_bytes(bytes(data))
    with app.app_context():
        app.config["IMPORT_MAX_UNCOMPRESSED_BYTES"] = 50 * 1024 * 1024
        try:
            res = importer.analyse(str(path), "unit", _user("clerk_a"), filename="lying.xlsx", today=TODAY)
        finally:
            app.config.pop("IMPORT_MAX_UNCOMPRESSED_BYTES")
    assert res.file_error in ("文件解压后异常庞大（疑似压缩炸弹），已拒绝导入",
                              "文件已损坏，无法打开；请在 Excel 中重新保存后再导入")


def test_row_and_size_limits_from_config(app):
    app.config["IMPORT_MAX_ROWS"] = 10
    try:
        res = analyse(app, "rows_30.xlsx")
    finally:
        app.config.pop("IMPORT_MAX_ROWS")
    assert res.file_error == "文件数据行数超过上限：最多10行，请拆分后分批导入"
    app.config["IMPORT_MAX_BYTES"] = 1024
    try:
        res = analyse(app, "rows_30.xlsx")
    finally:
        app.config.pop("IMPORT_MAX_BYTES")
    assert res.file_error.startswith("文件过大（") and "不能超过 0 MB" not in res.file_error or res.file_error


def test_role_may_only_use_its_own_kind(app):
    with app.app_context():
        from app.services.errors import DomainError

        with pytest.raises(DomainError, match="您的角色不能使用此导入模板"):
            importer.analyse(os.path.join(DATA, "good_unit.xlsx"), "bureau", _user("clerk_a"))
        with pytest.raises(DomainError):
            importer.analyse(os.path.join(DATA, "good_unit.xlsx"), "unit", _user("zhangsan"))


# ------------------------------------------------------------------ pages


def _upload(client, fname, kind="unit"):
    with open(os.path.join(DATA, fname), "rb") as fh:
        data = {"kind": kind, "file": (io.BytesIO(fh.read()), fname)}
    return post(client, "/imports/upload", data, content_type="multipart/form-data", follow_redirects=True)


def test_pages_upload_preview_confirm(app, login_as):
    c = login_as("clerk_a")
    page = c.get("/imports/").get_data(as_text=True)
    assert "单位导入（专业科目）" in page and "人社局导入" not in page
    tpl = c.get("/imports/template/unit")
    assert tpl.status_code == 200
    wb = load_workbook(io.BytesIO(tpl.data))
    assert wb.sheetnames == ["学时数据", "参考列表", "填写说明"]
    assert c.get("/imports/template/bureau").status_code == 404

    resp = _upload(c, "good_unit.xlsx")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "导入预览" in html
    assert re.search(r'id="cnt-new">3<', html) and "确认导入3条记录" in html
    before = total(app)
    job_id = int(re.search(r"/imports/job/(\d+)/confirm", html).group(1))
    resp = post(c, f"/imports/job/{job_id}/confirm", follow_redirects=True)
    html = resp.get_data(as_text=True)
    assert "导入成功：已保存3条记录" in html
    assert total(app) == before + 3
    # again: nothing stored, and it says so
    html = _upload(c, "good_unit.xlsx").get_data(as_text=True)
    assert "同一文件已于" in html and "没有需要保存的新记录" in html and "btn-confirm" not in html
    # another user cannot see the job
    other = login_as("clerk_b")
    assert other.get(f"/imports/job/{job_id}").status_code == 404


def test_pages_error_preview_and_error_file(app, login_as):
    c = login_as("clerk_a")
    before = total(app)
    html = _upload(c, "bad_dates.xlsx").get_data(as_text=True)
    assert "文件中有5行错误" in html and "第4行" in html and "结束日期不能早于开始日期" in html
    assert "btn-confirm" not in html
    job_id = int(re.search(r"/imports/job/(\d+)/errors", html).group(1))
    # confirming anyway is refused
    html = post(c, f"/imports/job/{job_id}/confirm", follow_redirects=True).get_data(as_text=True)
    assert "文件有错误，不能导入" in html
    assert total(app) == before
    resp = c.get(f"/imports/job/{job_id}/errors")
    wb = load_workbook(io.BytesIO(resp.data))
    ws = wb.active
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0][-2:] == ("错误原因", "原行号")
    assert [(r[6], r[-2], r[-1]) for r in rows[1:]] == [
        ("不存在的日期", "开始日期：日期不存在：2026-02-30", 2),
        ("看不懂的日期", "开始日期：日期格式不正确：下周一（应为 2024-03-05、2024/3/5、2024年3月5日 或 20240305）", 3),
        ("结束早于开始", "结束日期：结束日期不能早于开始日期", 4),
        ("不在认定年度", "开始日期：学习日期应在认定年度2026年内", 5),
        ("空的开始日期", "开始日期：不能为空", 6),
    ]


def test_pages_bad_file_and_size_limit(app, login_as):
    c = login_as("clerk_a")
    html = _upload(c, "zip_bomb.xlsx").get_data(as_text=True)
    assert "文件不能导入：文件解压后异常庞大（疑似压缩炸弹），已拒绝导入" in html
    app.config["IMPORT_MAX_BYTES"] = 2000
    try:
        html = _upload(c, "good_unit.xlsx").get_data(as_text=True)
    finally:
        app.config.pop("IMPORT_MAX_BYTES")
    assert "文件过大，导入文件不能超过 0 MB" in html
    # a body far above the limit is refused before it is read
    app.config["IMPORT_MAX_BYTES"] = 1000
    try:
        html = _upload(c, "blank_formatted_1m.xlsx").get_data(as_text=True)
    finally:
        app.config.pop("IMPORT_MAX_BYTES")
    assert "文件过大，导入文件不能超过 0 MB" in html


def test_large_import_runs_as_a_job_with_progress(app, login_as, tmp_path):
    """Above the inline threshold the analysis and the store run in a background job;
    the page shows progress from the database until the preview is ready."""
    import time

    c = login_as("clerk_a")
    app.config["IMPORT_INLINE_MAX_BYTES"] = 0
    app.config["IMPORT_INLINE_MAX_ROWS"] = 0
    try:
        resp = _upload(c, "rows_30.xlsx")
        # the progress page, or already the preview when the thread was quick
        job_id = int(re.fullmatch(r"/imports/job/(\d+)", resp.request.path).group(1))
        for _ in range(600):
            st = c.get(f"/imports/job/{job_id}/status").get_json()
            if st["state"] in ("done", "failed"):
                break
            time.sleep(0.1)
        assert st["state"] == "done" and st["progress"] == 100
        html = c.get(f"/imports/job/{job_id}").get_data(as_text=True)
        assert "确认导入30条记录" in html
        post(c, f"/imports/job/{job_id}/confirm")
        with app.app_context():
            store_job = db.session.execute(select(Job).where(Job.kind == "import_store")).scalar_one()
            sid = store_job.id
        for _ in range(600):
            st = c.get(f"/imports/job/{sid}/status").get_json()
            if st["state"] in ("done", "failed"):
                break
            time.sleep(0.1)
        assert st["state"] == "done"
        assert "导入成功：已保存30条记录" in c.get(f"/imports/job/{sid}").get_data(as_text=True)
    finally:
        app.config.pop("IMPORT_INLINE_MAX_BYTES")
        app.config.pop("IMPORT_INLINE_MAX_ROWS")


def test_applicant_has_no_import_page(app, login_as):
    c = login_as("zhangsan")
    resp = c.get("/imports/", follow_redirects=False)
    assert resp.status_code in (302, 403)


def test_jobs_go_through_rq_when_redis_is_configured(app):
    """SPEC §7: with REDIS_URL the job is queued for an RQ worker; its state is in
    the database, so the web process reads progress and result from there."""
    import fakeredis
    from rq import SimpleWorker

    from app.services import jobs

    conn = fakeredis.FakeStrictRedis()
    app.config["REDIS_URL"] = "redis://queue.invalid:6379/0"
    app.extensions["ce_redis"] = conn
    try:
        with app.app_context():
            clerk = _user("clerk_a")
            job = jobs.submit("import_analyse", {"kind": "unit", "path": os.path.join(DATA, "good_unit.xlsx"),
                                                 "filename": "good_unit.xlsx", "user_id": clerk.id}, user=clerk)
            assert job.state == "queued"
            assert jobs.queue().count == 1
            SimpleWorker([jobs.queue()], connection=conn).work(burst=True)
            job = jobs.get_job(job.id, clerk)
            assert (job.state, job.progress) == ("done", 100)
            assert jobs.result_of(job)["rows_new"] == 3
            assert jobs.get_job(job.id, _user("clerk_b")) is None
    finally:
        app.config["REDIS_URL"] = None
        app.extensions.pop("ce_redis")


@pytest.mark.parametrize("kind, title, extra", [
    ("unit", "单位专业科目学时导入模板", "课程（项目）名称"),
    ("bureau", "人社局公需科目学时导入模板", "课程（项目）名称"),
    ("organizer", "高级研修项目学时上报模板", "项目结束日期"),
    ("industry", "行业主管部门学时导入模板", "课程（项目）名称"),
])
def test_templates(app, kind, title, extra):
    from app.services.excel_template import build_template

    with app.app_context():
        wb = load_workbook(io.BytesIO(build_template(kind)))
    ws = wb["学时数据"]
    header = [c.value for c in ws[1]]
    assert header[:3] == ["姓名", "证件类型", "证件号码"] and extra in header
    if kind == "organizer":
        assert "研修项目名称" in header
    example = [c.value for c in ws[2]]
    assert example[0] == "张三" and isinstance(example[2], str) and len(example[2]) == 18
    assert ws.cell(row=2, column=3).number_format == "@" and ws.cell(row=5000, column=3).number_format == "@"
    lists = {str(dv.sqref).split(":")[0][0]: dv.formula1 for dv in ws.data_validations.dataValidation}
    cat_col = "ABCDEFGHIJK"[header.index("科目类别")]
    form_col = "ABCDEFGHIJK"[header.index("学习形式")]
    assert cat_col in lists and form_col in lists
    ref_sheet = wb["参考列表"]
    values = {c.value for row in ref_sheet.iter_rows() for c in row if c.value}
    assert ("公需科目" if kind == "bureau" else "专业科目") in values and "研修" in values
    if kind == "unit":
        assert "公需科目" not in values  # a unit imports 专业科目 only
    assert wb["参考列表"].sheet_state == "hidden"
    help_text = " ".join(str(c.value) for row in wb["填写说明"].iter_rows() for c in row if c.value)
    assert title in help_text and "文本格式" in help_text


def test_import_and_export_files_are_deleted_after_the_retention_period(app, login_as):
    """Import files hold names and whole ID numbers in clear: `flask ce purge`
    deletes them (and their validated-row caches, and export files left on disk)
    JOB_KEEP_DAYS after they were written; the pages then say so."""
    import time as _time

    from app.cli import purge_cmd
    from app.models import Job
    from app.services import jobs

    c = login_as("clerk_a")
    bad = int(re.search(r"/imports/job/(\d+)/errors", _upload(c, "bad_dates.xlsx").get_data(as_text=True)).group(1))
    good = int(re.search(r"/imports/job/(\d+)/confirm", _upload(c, "good_unit.xlsx").get_data(as_text=True)).group(1))
    with app.app_context():
        paths = [jobs.params_of(db.session.get(Job, j))["path"] for j in (bad, good)]
        validated = os.path.join(app.config["UPLOAD_DIR"], "imports", "validated")
        exports = os.path.join(app.config["VAR_DIR"], "exports")
        os.makedirs(exports, exist_ok=True)
    caches = [os.path.join(validated, n) for n in os.listdir(validated)]
    left, fresh = os.path.join(exports, "tmpleft.xlsx"), os.path.join(exports, "tmpfresh.xlsx")
    for p in (left, fresh):
        open(p, "wb").close()
    old = _time.time() - 8 * 86400
    for p in paths + caches + [left]:
        os.utime(p, (old, old))
    assert all(os.path.exists(p) for p in paths) and caches
    with app.app_context():
        out = app.test_cli_runner().invoke(purge_cmd)
    assert out.exit_code == 0, out.output
    assert not any(os.path.exists(p) for p in paths + caches + [left]) and os.path.exists(fresh)
    html = c.get(f"/imports/job/{bad}/errors", follow_redirects=True).get_data(as_text=True)
    assert "文件已超过保留期限（7天）被删除，请重新上传" in html
    html = post(c, f"/imports/job/{good}/confirm", follow_redirects=True).get_data(as_text=True)
    assert "文件已超过保留期限（7天）被删除，请重新上传" in html
    os.remove(fresh)


def test_an_id_number_in_an_import_file_name_is_masked(app, login_as):
    from app.models import Job
    from app.services import jobs
    from app.services.validators import mask_id_number

    number = zhangsan_id(app)
    c = login_as("clerk_a")
    with open(os.path.join(DATA, "good_unit.xlsx"), "rb") as fh:
        data = {"kind": "unit", "file": (io.BytesIO(fh.read()), f"张三{number}.xlsx")}
    html = post(c, "/imports/upload", data, content_type="multipart/form-data",
                follow_redirects=True).get_data(as_text=True)
    job_id = int(re.search(r"/imports/job/(\d+)/confirm", html).group(1))
    with app.app_context():
        params = db.session.get(Job, job_id).params
        assert number not in params and jobs.params_of(db.session.get(Job, job_id))["filename"] == \
            f"张三{mask_id_number(number)}.xlsx"
    assert number not in html
