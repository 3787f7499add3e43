"""The streaming .xlsx writer behind every export (issue 4): each file is read back
with openpyxl and with python-calamine (the importer's reader), cell by cell."""
import datetime
import zipfile
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from python_calamine import CalamineWorkbook

from app.services import xlsx_stream

HEADERS = ["证件号码", "开始日期", "提交时间", "学时", "比例", "核定学时", "已确认", "备注", "课程（项目）名称"]
LONG = "继续教育专业科目学时认定与登记管理" * 400  # 6 800 characters


def _write(tmp_path, rows, headers=HEADERS, **kw):
    path = tmp_path / "out.xlsx"
    n = xlsx_stream.write_xlsx(str(path), headers, rows, **kw)
    assert zipfile.ZipFile(path).testzip() is None
    return path, n


def _openpyxl(path):
    return load_workbook(path).worksheets[0]


def _calamine(path):
    return CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()


def test_values_and_types_survive_both_readers(tmp_path):
    rows = [
        ["012345678901234567", datetime.date(2025, 3, 1), datetime.datetime(2025, 3, 2, 14, 30, 15),
         8, 1.5, Decimal("24.0"), True, None, "现代企业管理"],
        ["32010219880512011X", datetime.date(2025, 12, 31), None, 0, -2.25, Decimal("7.5"), False, "无", LONG],
    ]
    path, n = _write(tmp_path, rows, title="学时记录")
    assert n == 2

    ws = _openpyxl(path)
    assert ws.title == "学时记录" and ws.freeze_panes == "A2"
    head = ws[1]
    assert [c.value for c in head] == HEADERS and all(c.font.b for c in head)
    first, second = ws[2], ws[3]
    assert not any(c.font.b for c in first)
    # ID numbers: text, leading zero and all 18 characters kept
    assert first[0].value == "012345678901234567" and first[0].data_type == "s"
    assert second[0].value == "32010219880512011X"
    # dates are date cells with a date format, not text
    assert first[1].is_date and first[1].number_format == "yyyy-mm-dd"
    assert first[1].value == datetime.datetime(2025, 3, 1)
    assert second[1].value == datetime.datetime(2025, 12, 31)
    assert first[2].is_date and first[2].number_format == "yyyy-mm-dd hh:mm:ss"
    assert first[2].value == datetime.datetime(2025, 3, 2, 14, 30, 15)
    # numbers are numbers
    assert [(c.value, c.data_type) for c in first[3:6]] == [(8, "n"), (1.5, "n"), (24, "n")]
    assert [c.value for c in second[3:6]] == [0, -2.25, 7.5]
    assert (first[6].value, second[6].value) == (True, False)
    # None is an empty cell and the cells after it stay in their columns
    assert first[7].value is None and second[2].value is None
    assert first[8].value == "现代企业管理" and second[8].value == LONG

    assert _calamine(path) == [
        HEADERS,
        ["012345678901234567", datetime.date(2025, 3, 1), datetime.datetime(2025, 3, 2, 14, 30, 15),
         8.0, 1.5, 24.0, True, "", "现代企业管理"],
        ["32010219880512011X", datetime.date(2025, 12, 31), "", 0.0, -2.25, 7.5, False, "无", LONG],
    ]


def test_text_is_escaped_cleaned_and_never_a_formula(tmp_path):
    cells = ['<b>&amp; "引号" \'单\'</b>', "a\x00b\x07c\x0bd\x1fe\ufffe", "  两端空格  ", "第一行\r\n第二行",
             '=HYPERLINK("http://evil.invalid","x")', "+1", "-3", "@SUM(1+1)", "\t=1", "\r=1", "1+1="]
    path, _n = _write(tmp_path, [cells], headers=[f"列{i}" for i in range(len(cells))])
    expected = ['<b>&amp; "引号" \'单\'</b>', "abcde", "  两端空格  ", "第一行\r\n第二行",
                '\'=HYPERLINK("http://evil.invalid","x")', "'+1", "'-3", "'@SUM(1+1)", "'\t=1", "'\r=1", "1+1="]
    row = _openpyxl(path)[2]
    assert [c.value for c in row] == expected and {c.data_type for c in row} == {"s"}
    assert _calamine(path)[1] == expected


def test_header_only_export(tmp_path):
    path, n = _write(tmp_path, [])
    assert n == 0
    ws = _openpyxl(path)
    assert ws.max_row == 1 and [c.value for c in ws[1]] == HEADERS and ws["A1"].font.b
    assert _calamine(path) == [HEADERS]


def test_converters_and_repeating_values_past_the_cache(tmp_path):
    # more distinct values than a column remembers, each repeated, with gaps:
    # every cell must still be its own value, a gap stays a gap
    distinct = xlsx_stream.CACHE_LIMIT + 500
    rows = [(i % distinct, None if i % 7 == 0 else f"单位{i % distinct}", "尾") for i in range(3 * distinct)]
    path, n = _write(tmp_path, rows, headers=["序号", "单位", "尾"],
                     converters=[None, lambda v: v + "（已确认）", None])
    assert n == len(rows)
    got = _calamine(path)[1:]
    assert got == [[float(i), "" if u is None else f"{u}（已确认）", "尾"] for i, u, _t in rows]


def test_a_converter_runs_once_per_distinct_value(tmp_path):
    # labels are translated per distinct value, not per cell (gettext per cell made exports 5x slower)
    seen = []

    def label(v):
        seen.append(v)
        return None if v == "无" else f"标签{v}"

    rows = [(v, 1) for v in ["甲", "乙", "无"] * 1000]
    path, _n = _write(tmp_path, rows, headers=["类别", "数"], converters=[label, None])
    assert sorted(seen) == ["乙", "无", "甲"]
    assert _calamine(path)[1:4] == [["标签甲", 1.0], ["标签乙", 1.0], ["", 1.0]]


def test_excel_limits(tmp_path):
    rows = [[datetime.date(1899, 12, 1), datetime.date(1900, 1, 1), datetime.date(1900, 3, 1),
             "长" * 40000, float("nan")]]
    path, _n = _write(tmp_path, rows, headers=["a", "b", "c", "d", "e"], title="2025/学时:[汇总]*'")
    ws = _openpyxl(path)
    assert ws.title == "2025_学时__汇总__"
    a, b, c, d, e = ws[2]
    assert a.value == "1899-12-01" and a.data_type == "s"  # Excel has no dates before 1900
    assert b.value == datetime.datetime(1900, 1, 1) and c.value == datetime.datetime(1900, 3, 1)
    assert d.value == "长" * 32767  # Excel's limit for one cell
    assert e.value == "nan" and e.data_type == "s"


def test_column_widths_fit_the_first_rows(tmp_path):
    path, _n = _write(tmp_path, [["32010219880512011X", datetime.date(2025, 1, 1), None, 8, 1, 1, True,
                                  "南京金陵科技有限公司", "短"]])
    dims = _openpyxl(path).column_dimensions
    assert dims["A"].width >= 18  # a whole ID number
    assert dims["B"].width >= 10  # a date, not ####
    assert dims["H"].width >= 20  # ten Chinese characters


def test_one_converter_per_header():
    with pytest.raises(ValueError):
        xlsx_stream.write_xlsx("unused.xlsx", ["a", "b"], [], converters=[None])


def _sheets(path):
    """{sheet name: rows} as openpyxl and as calamine read them, in workbook order."""
    wb = load_workbook(path)
    by_openpyxl = {ws.title: [list(r) for r in ws.iter_rows(values_only=True)] for ws in wb.worksheets}
    cal = CalamineWorkbook.from_path(str(path))
    by_calamine = {name: cal.get_sheet_by_name(name).to_python() for name in cal.sheet_names}
    return wb, by_openpyxl, by_calamine


def test_rows_past_a_sheets_limit_continue_on_new_sheets_with_the_header(tmp_path):
    rows = [[f"32010219880512{i:04d}", datetime.date(2025, 1, 1) + datetime.timedelta(days=i), i]
            for i in range(11)]
    seen = []
    path, n = _write(tmp_path, rows, headers=["证件号码", "开始日期", "序号"], title="学时记录",
                     max_rows=3, on_chunk=seen.append)
    assert n == 11 and seen == [3, 6, 9, 11]  # progress counts the rows of every sheet
    wb, by_openpyxl, by_calamine = _sheets(path)
    assert list(by_openpyxl) == list(by_calamine) == ["学时记录", "学时记录(2)", "学时记录(3)", "学时记录(4)"]
    for ws in wb.worksheets:
        assert ws.freeze_panes == "A2" and all(c.font.b for c in ws[1])
    for sheet in (by_openpyxl, by_calamine):
        assert all(r[0] == ["证件号码", "开始日期", "序号"] for r in sheet.values())
        assert [len(r) - 1 for r in sheet.values()] == [3, 3, 3, 2]
    # every row exactly once, in order: ID text, dates as dates, numbers as numbers
    assert [r for rs in by_openpyxl.values() for r in rs[1:]] == [
        [i, datetime.datetime.combine(d, datetime.time()), k] for i, d, k in rows]
    assert [r for rs in by_calamine.values() for r in rs[1:]] == [[i, d, float(k)] for i, d, k in rows]


def test_a_full_last_sheet_is_not_followed_by_an_empty_one(tmp_path):
    path, n = _write(tmp_path, [[i] for i in range(6)], headers=["序号"], title="学时记录", max_rows=3)
    _wb, by_openpyxl, by_calamine = _sheets(path)
    assert n == 6 and by_calamine == {"学时记录": [["序号"], [0.0], [1.0], [2.0]],
                                      "学时记录(2)": [["序号"], [3.0], [4.0], [5.0]]}
    assert list(by_openpyxl) == ["学时记录", "学时记录(2)"]


def test_sheet_names_of_a_long_title_fit_31_characters_and_differ(tmp_path):
    title = "南京市继续教育专业技术人员学时登记与认定汇总表（全部）"  # 27 characters
    path, _n = _write(tmp_path, [[i] for i in range(25)], headers=["序号"], title=title, max_rows=2)
    names = load_workbook(path).sheetnames
    assert len(names) == 13 and len(set(names)) == 13 and max(map(len, names)) == 31
    assert names[0] == title and names[1] == title + "(2)"
    assert names[12] == title[:27] + "(13)"
    assert xlsx_stream.nth_sheet_name("学" * 31, 2) == "学" * 28 + "(2)"


def test_a_sheets_limit_is_checked():
    for limit in (0, xlsx_stream.MAX_ROWS + 1):
        with pytest.raises(ValueError):
            xlsx_stream.write_xlsx("unused.xlsx", ["a"], [], max_rows=limit)
    assert xlsx_stream.MAX_ROWS + 1 == 2 ** 20  # Excel's 1 048 576 rows, header included


def test_text_columns_are_formatted_as_text_even_where_empty(tmp_path):
    rows = [["32010219880512011X", 320102, "甲"], [None, None, "乙"]]
    path, _n = _write(tmp_path, rows, headers=["证件号码", "区划", "名称"], text_columns=(0, 1))
    ws = _openpyxl(path)
    ids, codes, names = ws["A"], ws["B"], ws["C"]
    # an ID number typed later into A3 stays text in Excel: the cell and the column say "@"
    assert [c.number_format for c in ids[1:] + codes[1:]] == ["@"] * 4
    assert {c.number_format for c in names[1:]} == {"General"} and ids[0].font.b  # the header stays bold
    assert ids[1].value == "32010219880512011X" and ids[2].value is None and codes[1].value == 320102
    assert ws.column_dimensions["A"].number_format == "@"
    assert _calamine(path)[1:] == [["32010219880512011X", 320102.0, "甲"], ["", "", "乙"]]


def test_neutralised_text_reads_back_to_the_original_with_restore(tmp_path):
    texts = ["=1+2", "+SUM(A1)", "-", "@x", "\t=1", "'=1", "''+1", "'", "'a", "a'", "普通文本", "",
             "\x00=1"]
    path, _n = _write(tmp_path, [[t] for t in texts], headers=["文本"])
    ws = _openpyxl(path)
    assert {c.data_type for c in ws["A"][1:]} == {"s"}
    written = [c.value for c in ws["A"][1:]]
    assert written[:9] == ["'=1+2", "'+SUM(A1)", "'-", "'@x", "'\t=1", "''=1", "'''+1", "'", "'a"]
    assert written[-1] == "'=1"  # a dropped control character does not uncover a formula
    read = [r[0] for r in _calamine(path)[1:]]
    assert [xlsx_stream.restore(t) for t in read] == texts[:-1] + ["=1"]
    assert [xlsx_stream.restore(xlsx_stream.neutralise(t)) for t in texts] == texts
