"""学时认定标准 in imports and the national file (issue 20): the template's
drop-down lists the year's active forms, rows of every computation kind import
from a real .xlsx filled in from the downloaded template, per-row refusals name
the rule, the per-form yearly cap counts stored records and earlier rows of the
file (nothing of the file stored), and the national layout export carries the
form's code and name as stored."""
import datetime
import io
import json

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from app.extensions import db
from app.models import HourRecord, Status
from app.security.scope import scope_of
from app.services import approval, importer, national, standards
from app.services.errors import ValidationFailed
from tests.test_workflow import D1, D2, YEAR, declare, user

TODAY = datetime.date.today()
ZS = ("张三", "320102198805120114")


def _current(code, year=YEAR):
    return standards.to_rule(next(r for r in standards.rows_of(year) if r.code == code))


def _set(code, **over):
    row = next(r for r in standards.rows_of(YEAR) if r.code == code)
    values = {f: getattr(row, f) for f in standards.EDIT_FIELDS}
    values.update(params=json.loads(row.params), **over)
    standards.save_rule(YEAR, code, values, user=user("admin"))
    db.session.commit()


def _template(client, kind="unit"):
    resp = client.get(f"/imports/template/{kind}")
    assert resp.status_code == 200, resp.status_code
    return load_workbook(io.BytesIO(resp.get_data()))


def _dropdown(wb, header):
    """The values of the data validation list of the column headed `header`."""
    ws = wb["学时数据"]
    headers = [c.value for c in ws[1]]
    letter = ws.cell(row=1, column=headers.index(header) + 1).column_letter
    dv = next(d for d in ws.data_validations.dataValidation if str(d.sqref).startswith(letter + "2"))
    sheet, ref = dv.formula1.split("!")
    col, first, last = ref.replace("$", "")[0], *ref.replace("$", "")[1:].split(":")
    lists = wb[sheet.strip("'")]
    return [lists[f"{col}{r}"].value for r in range(int(first), int(last[1:]) + 1)]


def _fill(wb, rows, path):
    """Write `rows` (dicts by header) into the template's data sheet from row 2 (over the example)."""
    ws = wb["学时数据"]
    headers = [c.value for c in ws[1]]
    for c in ws[2]:
        c.value = None
    for i, row in enumerate(rows, start=2):
        base = {"姓名": ZS[0], "证件类型": "居民身份证", "证件号码": ZS[1], "认定年度": YEAR, "科目类别": "专业科目",
                "举办单位": "江苏省学会", "开始日期": D1, "结束日期": D2}
        base.update(row)
        for header, value in base.items():
            ws.cell(row=i, column=headers.index(header) + 1, value=value)
    wb.save(path)
    return str(path)


def _errors(res):
    return [tuple(e) for e in res.errors]


def _analyse(app, path, kind="unit", username="clerk_a"):
    with app.app_context():
        return importer.analyse(path, kind, user(username), filename="t.xlsx", today=TODAY)


def _store(app, path, kind="unit", username="clerk_a"):
    with app.app_context():
        return importer.store(path, kind, user(username), filename="t.xlsx", today=TODAY)


def test_template_lists_the_years_active_forms_and_rows_of_every_kind_import(app, login_as, tmp_path):
    with app.app_context():
        _set("EXAM", active=False)  # a stopped form leaves the drop-down
    c = login_as("clerk_a")
    wb = _template(c)
    forms = _dropdown(wb, "学习形式")
    assert {"培训、研讨（按天）", "参加全国学术会议", "发表论文", "讲授继续教育课程", "举办专题讲座"} <= set(forms)
    assert "参加专业考试（每科合格）" not in forms
    headers = [c.value for c in wb["学时数据"][1]]
    assert {"天数", "授课（讲座）学时", "加项", "级别", "名次"} <= set(headers)
    help_text = " ".join(str(v) for row in wb["填写说明"].iter_rows(values_only=True) for v in row if v)
    assert "每天8学时" in help_text and "填写“级别”和“名次”" in help_text
    # The bureau's template (公需科目) lists only forms that count for 公需.
    bwb = _template(login_as("bureau_nj"), "bureau")
    assert "培训、研讨（按天）" in _dropdown(bwb, "学习形式") and "参加全国学术会议" not in _dropdown(bwb, "学习形式")

    path = _fill(wb, [
        {"学习形式": "培训、研讨（按天）", "课程（项目）名称": "导入-按天", "天数": 3},
        {"学习形式": "参加全国学术会议", "课程（项目）名称": "导入-会议", "加项": "报告论文（2000字以上）"},
        {"学习形式": "发表论文", "课程（项目）名称": "导入-论文", "级别": "核心期刊", "名次": "第一作者"},
        {"学习形式": "讲授继续教育课程", "课程（项目）名称": "导入-授课", "授课（讲座）学时": 2.5, "学时": 5},
        {"学习形式": "培训（面授）", "课程（项目）名称": "导入-面授", "学时": 8},
    ], tmp_path / "kinds.xlsx")
    res = _analyse(app, path)
    assert res.errors == [] and res.rows_new == 5, res.errors
    res = _store(app, path)
    assert res.rows_stored == 5
    with app.app_context():
        got = {r.course_name: (float(r.hours), r.form_code, r.rule_id, float(r.computed_hours),
                               json.loads(r.rule_inputs), r.learning_form.name, r.status)
               for r in db.session.execute(select(HourRecord).where(HourRecord.course_name.like("导入-%"))).scalars()}
        assert got["导入-按天"][:2] == (24.0, "TRAIN_DAY") and got["导入-按天"][4] == {"days": "3"}
        assert got["导入-会议"][:2] == (40.0, "CONF_NATIONAL") and got["导入-会议"][4] == {"addons": ["PAPER_GE2000"]}
        assert got["导入-会议"][5] == "CONFERENCE"
        assert got["导入-论文"][:2] == (40.0, "PAPER")
        assert got["导入-授课"][:2] == (5.0, "TEACH")
        assert got["导入-面授"][:2] == (8.0, "TRAIN_ONSITE")
        assert got["导入-按天"][2] == _current("TRAIN_DAY").rule_id
        assert {v[6] for v in got.values()} == {Status.APPROVED}


def test_rows_the_rules_refuse_name_the_row_and_the_rule(app, login_as, tmp_path):
    wb = _template(login_as("clerk_a"))
    path = _fill(wb, [
        {"学习形式": "培训、研讨（按天）", "课程（项目）名称": "坏-缺天数", "学时": 16},
        {"学习形式": "发表论文", "课程（项目）名称": "坏-级别", "级别": "国际期刊", "名次": "第一作者"},
        {"学习形式": "参加全国学术会议", "课程（项目）名称": "坏-加项", "加项": "特邀报告"},
        {"学习形式": "培训、研讨（按天）", "课程（项目）名称": "坏-不一致", "天数": 2, "学时": 20},
        {"学习形式": "出国（境）培训", "课程（项目）名称": "坏-每项上限", "天数": 5},
        {"学习形式": "参加全国学术会议", "科目类别": "专业科目", "课程（项目）名称": "好", "加项": "报告论文（2000字以下）"},
    ], tmp_path / "bad.xlsx")
    res = _analyse(app, path)
    assert _errors(res) == [
        (2, "天数", "请填写天数（学时认定标准“培训、研讨（按天）”）"),
        (3, "级别", "请选择“发表论文”的级别"),
        (4, "加项", "“参加全国学术会议”没有加项“特邀报告”"),
        (5, "学时", "学时20与按“培训、研讨（按天）”计算的16学时不一致（2 天 × 8 学时/天 = 16 学时）"),
        (6, "天数", "超过“出国（境）培训”每项最多30学时的上限（按标准计算为40学时）"),
    ]
    before = _count(app)
    with pytest.raises(ValidationFailed):
        _store(app, path)
    assert _count(app) == before


def _count(app):
    with app.app_context():
        return db.session.execute(select(func.count(HourRecord.id))).scalar()


def test_yearly_cap_counts_stored_records_and_earlier_rows_and_stores_nothing(app, login_as, tmp_path):
    # 发表论文: at most 80 a year; 核心期刊 · 第一作者 = 40.
    wb = _template(login_as("clerk_a"))
    first = _fill(wb, [{"学习形式": "发表论文", "课程（项目）名称": "论文一", "级别": "核心期刊", "名次": "第一作者"}],
                  tmp_path / "one.xlsx")
    assert _store(app, first).rows_stored == 1
    wb = _template(login_as("clerk_a"))
    second = _fill(wb, [
        {"学习形式": "发表论文", "课程（项目）名称": "论文二", "级别": "核心期刊", "名次": "第一作者"},
        {"学习形式": "培训（面授）", "课程（项目）名称": "另一门课", "学时": 8},
        {"学习形式": "发表论文", "课程（项目）名称": "论文三", "级别": "省级期刊", "名次": "其他作者"},
    ], tmp_path / "two.xlsx")
    res = _analyse(app, second)
    assert _errors(res) == [
        (4, "学时", "超过“发表论文”每年最多80学时的上限（本年已有80学时，本项5学时）")]
    assert res.rows_error == 1
    before = _count(app)
    with pytest.raises(ValidationFailed):
        _store(app, second)
    assert _count(app) == before
    with app.app_context():
        assert db.session.execute(select(HourRecord.id).where(HourRecord.course_name == "论文二")).first() is None
    # A pending declaration of the form counts too: lift nothing, the first row alone now passes 80.
    with app.app_context():
        declare("zhangsan", learning_form="PAPER", level="省级期刊", rank="第二作者", course_name="申报论文",
                hours=None)
    res = _analyse(app, second)
    assert (2, "学时", "超过“发表论文”每年最多80学时的上限（本年已有50学时，本项40学时）") in _errors(res)


def test_national_export_file_carries_the_form_code_and_name_as_stored(app, tmp_path):
    with app.app_context():
        rid = declare("zhangsan", learning_form="CONF_NATIONAL", addons="PAPER_GE2000", course_name="对接会议文件")
        approval.decide_one(rid, "approve", user=user("clerk_a"), scope=scope_of(user("clerk_a")))
        _set("CONF_NATIONAL", name="全国性学术会议")  # renamed after approval: the file keeps the stored name
        province = scope_of(user("bureau_js"))
        path = tmp_path / "national.xlsx"
        national.write_xlsx(national.export_rows(year=YEAR, scope=province), str(path))
        old = db.session.execute(select(HourRecord).where(
            HourRecord.form_code.is_(None), HourRecord.status == Status.APPROVED)).scalars().first()
    ws = load_workbook(path).active
    rows = list(ws.values)
    headers = list(rows[0])
    assert headers[-2:] == ["学习形式代码", "学习形式名称"]
    course, code, name, form = (headers.index(h) for h in ("课程名称", "学习形式代码", "学习形式名称", "学习形式"))
    mine = [r for r in rows[1:] if r[course] == "对接会议文件"]
    assert [(r[code], r[name], r[form]) for r in mine] == [("CONF_NATIONAL", "参加全国学术会议", "学术会议")]
    if old is not None and old.year == YEAR:
        theirs = [r for r in rows[1:] if r[course] == old.course_name]
        assert theirs and theirs[0][code] == old.learning_form.name and theirs[0][name] == old.learning_form.value
