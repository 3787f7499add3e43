"""A filter value its column cannot hold (typed in the search box or edited into
the URL) gets a message naming the filter and matches nothing: no server error
(PostgreSQL rejects an integer beyond its type; SQLAlchemy an Enum name that is
no member), and no silent `IS NULL` (FAB's conversion of text for a number)."""
import datetime
import io
import re

import pytest
from openpyxl import load_workbook
from app.models.enums import Category

LIST = "/hourrecordview/list/"
YEAR = datetime.date.today().year - 1


def _page(client, query):
    resp = client.get(LIST + "?" + query)
    assert resp.status_code == 200, query
    html = resp.get_data(as_text=True)
    text = re.sub(r"<[^>]+>|\s+", " ", html)
    count = re.search(r"记录数\s*:?\s*(\d+)", text)
    return text, int(count.group(1)) if count else None, html


@pytest.mark.parametrize("query, message", [
    ("_flt_0_category=XX", "筛选「科目类别」的值「XX」无效：应为以下之一：专业科目、公需科目"),
    ("_flt_0_status=bad", "筛选「状态」的值「bad」无效：应为以下之一：草稿、待核准"),
    ("_flt_0_year=abc", "筛选「认定年度」的值「abc」无效：不是整数"),
    ("_flt_0_year=99999999999999999999", "筛选「认定年度」的值「99999999999999999999」无效：超出范围"),
    (f"_flt_0_year={YEAR}&_flt_1_year=2O24", "筛选「认定年度」的值「2O24」无效：不是整数"),
])
def test_a_value_the_column_cannot_hold_is_named_and_matches_nothing(login_as, query, message):
    clerk = login_as("clerk_a")
    text, count, html = _page(clerk, query)
    assert message in text
    assert count == 0 and "没有找到记录" in text
    assert "alert-warning" in html


def test_an_enum_takes_its_label_as_well_as_its_name(login_as):
    clerk = login_as("clerk_a")
    by_name, n_name, _ = _page(clerk, "_flt_0_category=PRO")
    by_label, n_label, _ = _page(clerk, "_flt_0_category=专业科目")
    _all, n_all, _ = _page(clerk, "")
    assert 0 < n_name == n_label < n_all
    assert "无效" not in by_name and "无效" not in by_label


def test_an_empty_box_leaves_the_filter_out(login_as):
    clerk = login_as("clerk_a")
    _text, n_all, _ = _page(clerk, "")
    text, n_empty, _ = _page(clerk, "_flt_0_year=&_flt_0_category=")
    assert n_empty == n_all > 0 and "无效" not in text


def test_a_negated_filter_with_an_invalid_value_keeps_every_row(login_as):
    clerk = login_as("clerk_a")
    _text, n_all, _ = _page(clerk, "")
    text, n, _ = _page(clerk, "_flt_3_year=abc")  # 不等于 abc: every row
    assert "无效：不是整数" in text and n == n_all > 0


def test_bureau_and_export_see_the_same(login_as):
    bureau = login_as("bureau_nj")
    text, count, _ = _page(bureau, "_flt_0_year=99999999999999999999")
    assert "超出范围" in text and count == 0
    resp = bureau.get("/hourrecordview/export/?_flt_0_year=99999999999999999999")
    assert resp.status_code == 200
    rows = list(load_workbook(io.BytesIO(resp.data)).worksheets[0].iter_rows(values_only=True))
    assert rows[0][:2] == ("姓名", "证件号码") and rows[1:] == []
    # and a valid year exports rows, so the empty file above is the filter's doing
    resp = bureau.get(f"/hourrecordview/export/?_flt_0_year={YEAR}&_flt_0_category=专业科目")
    rows = list(load_workbook(io.BytesIO(resp.data)).worksheets[0].iter_rows(values_only=True))
    assert len(rows) > 1 and {r[3] for r in rows[1:]} == {Category.PRO.value}


def test_the_search_panel_is_open_while_filters_are_active(login_as):
    """The rows' filters are in sight (FAB kept its search panel folded), also
    when the page is loaded again."""
    clerk = login_as("clerk_a")
    for _ in range(2):
        _t, _n, plain = _page(clerk, "")
        _t, _n, filtered = _page(clerk, f"_flt_0_year={YEAR}")
        assert 'id="accordion1_href" class="panel-collapse collapse"' in plain
        assert 'id="accordion1_href" class="panel-collapse collapse in"' in filtered
        assert 'id="accordion1_href" class="panel-collapse collapse in"' not in plain
    todo = clerk.get("/review/todo/list/?_flt_0_year=%d" % YEAR).get_data(as_text=True)
    assert 'class="panel-collapse collapse in"' in todo


def test_the_message_shows_the_typed_value_as_text(login_as):
    clerk = login_as("clerk_a")
    resp = clerk.get(LIST + "?_flt_0_year=<b>x</b>")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "「&lt;b&gt;x&lt;/b&gt;」无效：不是整数" in html and "<b>x</b>" not in html
