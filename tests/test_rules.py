"""学时认定标准: the rule engine (services.rules), pure: each computation kind,
each cap, the category check and the console's validation."""
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.services.rules import FormRule, Inputs, RuleRefused, compute, describe, preview, recognise, validate

CONF = FormRule("CONF_NATIONAL", "参加全国学术会议", ("PRO",), "FIXED",
                {"base": 10, "single_addon": True, "addons": [
                    {"code": "LT", "name": "报告论文（2000字以下）", "hours": 20},
                    {"code": "GE", "name": "报告论文（2000字以上）", "hours": 30}]})
ABROAD = FormRule("ABROAD", "出国（境）培训", ("PRO",), "PER_DAY", {"per_day": 8}, cap_record=Decimal(30),
                  cap_year=Decimal(90))
TEACH = FormRule("TEACH", "讲授继续教育课程", ("PRO", "PUB"), "MULTIPLE", {"factor": 2})
ONLINE = FormRule("ONLINE", "网络课件学习", ("PRO", "PUB"), "DECLARED", {})
PAPER = FormRule("PAPER", "发表论文", ("PRO",), "TABLE",
                 {"table": {"核心期刊": {"第一作者": 40, "第二作者": 20}, "省级期刊": {"第一作者": 20}}})


def test_fixed_with_addon_and_preview():
    assert recognise(CONF, Inputs(addons=("GE",)), "PRO").hours == Decimal(40)
    assert recognise(CONF, Inputs(), "PRO").hours == Decimal(10)
    assert preview(CONF, Inputs(addons=("GE",))) == "参加全国学术会议并报告论文（2000字以上） → 40 学时"
    with pytest.raises(RuleRefused, match="只能选择一项"):
        recognise(CONF, Inputs(addons=("GE", "LT")))
    with pytest.raises(RuleRefused, match="没有加项"):
        recognise(CONF, Inputs(addons=("XX",)))


def test_per_day_and_caps_name_the_rule():
    assert recognise(ABROAD, Inputs(days="3"), "PRO").hours == Decimal(24)
    with pytest.raises(RuleRefused) as exc:
        recognise(ABROAD, Inputs(days="5"), "PRO")
    assert "出国（境）培训" in exc.value.message and "每项最多30学时" in exc.value.message and "40" in exc.value.message
    assert exc.value.field == "days"
    # Per form per year: 72 already used + 24 > 90.
    with pytest.raises(RuleRefused, match="每年最多90学时.*本年已有72学时"):
        recognise(ABROAD, Inputs(days="3"), "PRO", used_this_year=Decimal(72))
    assert recognise(ABROAD, Inputs(days="2"), "PRO", used_this_year=Decimal(72)).hours == Decimal(16)


def test_multiple_declared_and_table():
    assert recognise(TEACH, Inputs(hours="6"), "PUB").hours == Decimal(12)
    assert recognise(ONLINE, Inputs(hours="7.5"), "PUB").hours == Decimal("7.5")
    assert recognise(PAPER, Inputs(level="核心期刊", rank="第二作者"), "PRO").hours == Decimal(20)
    with pytest.raises(RuleRefused, match="名次"):
        recognise(PAPER, Inputs(level="省级期刊", rank="第二作者"))
    with pytest.raises(RuleRefused, match="级别"):
        recognise(PAPER, Inputs(level="SCI", rank="第一作者"))
    with pytest.raises(RuleRefused, match="请填写天数"):
        recognise(ABROAD, Inputs())
    with pytest.raises(RuleRefused, match="须为数字"):
        recognise(TEACH, Inputs(hours="两"))


def test_category_and_inactive_are_refused():
    with pytest.raises(RuleRefused, match="只能认定为专业科目") as exc:
        recognise(CONF, Inputs(), "PUB")
    assert exc.value.field == "category"
    off = FormRule("OLD", "旧形式", kind="DECLARED", active=False)
    with pytest.raises(RuleRefused, match="已停用"):
        recognise(off, Inputs(hours="2"))


@given(days=st.decimals(min_value=Decimal("0.5"), max_value=Decimal(100), places=1),
       used=st.decimals(min_value=Decimal(0), max_value=Decimal(200), places=1))
def test_per_day_never_passes_a_cap(days, used):
    """Whatever the days and the hours already used, a recognised figure is
    days × rate and never exceeds either cap; a refusal happens exactly when it would."""
    h = (days * 8).quantize(Decimal("0.1"))
    try:
        r = recognise(ABROAD, Inputs(days=str(days)), "PRO", used_this_year=used)
    except RuleRefused:
        assert h > 30 or used + h > 90
    else:
        assert r.hours == h and r.hours <= 30 and used + r.hours <= 90


@given(hours=st.decimals(min_value=Decimal("0.1"), max_value=Decimal(500), places=1),
       factor=st.sampled_from([1, 2, 3, Decimal("1.5")]))
def test_multiple_is_factor_times_hours(hours, factor):
    rule = FormRule("T", "讲课", kind="MULTIPLE", params={"factor": str(factor)})
    h, _text = compute(rule, Inputs(hours=str(hours)))
    assert h == (hours * Decimal(str(factor))).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def test_validation_messages_in_chinese():
    assert validate(CONF) == []
    bad = FormRule("坏 code", "", (), "FIXED", {"base": 10}, cap_record=Decimal(5), cap_year=Decimal(3))
    msgs = " ".join(m for _f, m in validate(bad))
    assert "代码须为" in msgs and "请填写名称" in msgs and "至少要计入一个科目类别" in msgs
    assert "每年上限不能小于每项上限" in msgs and "每项上限5低于每次固定学时10" in msgs
    assert any("每天学时" in m for _f, m in validate(FormRule("D", "按天", kind="PER_DAY", params={})))
    assert any("认定表至少要有一行" in m for _f, m in validate(FormRule("P", "论文", kind="TABLE", params={})))


def test_describe_shows_rule_and_caps():
    assert describe(ABROAD) == "每天8学时（每项最多30学时，每年最多90学时）"
    assert "报告论文（2000字以上）加30学时" in describe(CONF)
    assert "核心期刊：第一作者 40学时、第二作者 20学时" in describe(PAPER)
