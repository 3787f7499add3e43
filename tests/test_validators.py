"""Resident IDs (GB 11643), credit codes (GB 32100), hours and dates.

The check digits of the test numbers are computed here with the standards'
own formulas, independently of python-stdnum, which the validators use.
"""
import datetime
from decimal import Decimal

import pytest
from stdnum import exceptions as stdnum_exc
from stdnum.cn import ric

from app.services.errors import ValidationFailed
from app.services.validators import (
    check_credit_code, check_dates_in_year, check_hours, check_id_number, check_resident_id,
    is_valid_credit_code, is_valid_resident_id, mask_id_number,
)
from app.models.enums import IdType

ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def id_with_check(body17):
    """GB 11643: sum(digit * weight) mod 11 -> '10X98765432'."""
    total = sum(int(d) * w for d, w in zip(body17, ID_WEIGHTS))
    return body17 + "10X98765432"[total % 11]


def wrong_check(number):
    last = number[-1]
    return number[:-1] + ("1" if last != "1" else "2")


def uscc_with_check(body17):
    """GB 32100: 31 - (sum(value * weight) mod 31), 31 -> 0."""
    total = sum(USCC_CHARS.index(c) * w for c, w in zip(body17, USCC_WEIGHTS))
    return body17 + USCC_CHARS[(31 - total % 31) % 31]


@pytest.fixture(autouse=True)
def _ctx(app):
    with app.test_request_context():
        yield


def message(fn, *args):
    with pytest.raises(ValidationFailed) as exc:
        fn(*args)
    return str(exc.value)


# ------------------------------------------------------------- resident IDs


def test_the_standard_example_is_valid():
    assert id_with_check("11010519491231002") == "11010519491231002X"
    assert check_resident_id("11010519491231002X") == "11010519491231002X"


def test_valid_ids_are_normalised():
    number = id_with_check("32010219880512001")
    assert check_resident_id(number) == number
    assert check_resident_id("  " + number + " ") == number
    # lower-case x is accepted and upper-cased
    assert check_resident_id("11010519491231002x") == "11010519491231002X"
    # full-width digits (typed with a Chinese input method) become ASCII
    fullwidth = number.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789X"})
    assert fullwidth != number
    assert check_resident_id(fullwidth) == number
    assert check_resident_id("１１０１０５１９４９１２３１００２ｘ") == "11010519491231002X"


def test_wrong_check_digit():
    number = id_with_check("32010219880512001")
    assert message(check_resident_id, wrong_check(number)) == "身份证号码校验位不正确"
    assert not is_valid_resident_id(wrong_check(number))


def test_invalid_birth_dates():
    feb30 = id_with_check("32010219900230001")
    assert message(check_resident_id, feb30) == "身份证号码中的出生日期无效"
    month13 = id_with_check("32010219901301001")
    assert message(check_resident_id, month13) == "身份证号码中的出生日期无效"
    future = datetime.date.today() + datetime.timedelta(days=400)
    later = id_with_check(f"320102{future:%Y%m%d}001")
    assert message(check_resident_id, later) == "身份证号码中的出生日期无效"
    too_old = id_with_check("32010218800101001")
    assert message(check_resident_id, too_old) == "身份证号码中的出生日期无效"


def test_wrong_lengths_and_characters():
    number = id_with_check("32010219880512001")
    assert message(check_resident_id, number[:17]) == "身份证号码应为18位，当前为17位"
    assert message(check_resident_id, number + "1") == "身份证号码应为18位，当前为19位"
    assert message(check_resident_id, "") == "身份证号码应为18位，当前为0位"
    assert "格式不正确" in message(check_resident_id, "3201021988O512001X")  # letter O
    assert "格式不正确" in message(check_resident_id, "32010219880512001Y")
    # other scripts' digits pass str.isdigit() but are no ID: Arabic-Indic zero, superscript two
    assert "格式不正确" in message(check_resident_id, number[:14] + "\u0660" + number[15:])
    assert "格式不正确" in message(check_resident_id, "\u00b2" + number[1:])


def test_unknown_province_is_rejected():
    number = id_with_check("99010219880512001")
    assert message(check_resident_id, number) == "身份证号码中的地址码无效"


def test_abolished_county_code_is_accepted():
    """320982 (大丰市, now a district of 盐城) is missing from python-stdnum's list,
    but people still carry it: checksum and birth date decide."""
    number = id_with_check("32098219750308201")
    with pytest.raises(stdnum_exc.ValidationError):
        ric.validate(number)  # why the app cannot simply call stdnum
    assert check_resident_id(number) == number
    assert is_valid_resident_id(number)
    # ... but not with a wrong check digit or birth date
    assert message(check_resident_id, wrong_check(number)) == "身份证号码校验位不正确"
    assert message(check_resident_id, id_with_check("32098219750231201")) == "身份证号码中的出生日期无效"


def test_other_id_types_are_free_format():
    assert check_id_number(IdType.PASSPORT, " e12345678 ") == "E12345678"
    assert check_id_number(IdType.HK_MACAO, "H1234567890") == "H1234567890"
    assert message(check_id_number, IdType.PASSPORT, "AB") == "证件号码应为4至32位字母或数字"
    assert message(check_id_number, IdType.PASSPORT, "E123 45678") == "证件号码应为4至32位字母或数字"
    # the resident type goes through the full check
    assert message(check_id_number, IdType.RESIDENT, "123") == "身份证号码应为18位，当前为3位"


def test_masking():
    assert mask_id_number("320102198805120011") == "320102********0011"
    assert mask_id_number("E1234567") == "E1****67"
    assert mask_id_number("") == ""


# ------------------------------------------------------------- credit codes


def test_valid_credit_codes():
    code = uscc_with_check("91320102MA1MXXXX0")
    assert check_credit_code(code) == code
    assert check_credit_code(" " + code.lower() + " ") == code
    fullwidth = code.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789ABCDEFGHJKLMNPQRTUWXY"})
    assert check_credit_code(fullwidth) == code
    assert check_credit_code("91110000600037341L") == "91110000600037341L"  # a published code
    assert is_valid_credit_code(code)


def test_credit_code_wrong_check_digit():
    code = uscc_with_check("91320102MA1MXXXX0")
    bad = code[:-1] + ("0" if code[-1] != "0" else "1")
    assert message(check_credit_code, bad) == "统一社会信用代码校验位不正确"
    assert not is_valid_credit_code(bad)


def test_credit_code_wrong_length():
    code = uscc_with_check("91320102MA1MXXXX0")
    assert message(check_credit_code, code[:17]) == "统一社会信用代码应为18位"
    assert message(check_credit_code, code + "0") == "统一社会信用代码应为18位"
    assert message(check_credit_code, "") == "统一社会信用代码应为18位"


def test_credit_code_invalid_characters():
    # I, O, S, V and Z are not in the GB 32100 alphabet; neither is punctuation.
    for bad in ("91320102MA1MIXXX0Y", "91320102MA1MOXXX0Y", "91320102MA1M-XXX0Y", "9132010ZMA1MXXXX0Y"):
        assert message(check_credit_code, bad) == "统一社会信用代码格式不正确", bad


# -------------------------------------------------------------------- hours


def test_hours():
    assert check_hours("8", 200) == Decimal("8.0")
    assert check_hours("0.5", 200) == Decimal("0.5")
    assert check_hours(Decimal("200"), 200) == Decimal("200.0")
    assert check_hours("８", 200) == Decimal("8.0")  # full-width
    assert check_hours("１２．５", 200) == Decimal("12.5")  # full-width point too
    assert message(check_hours, "-4", 200) == "学时应大于0"
    assert message(check_hours, "0", 200) == "学时应大于0"
    assert message(check_hours, "0.3", 200) == "学时应以0.5为单位"
    assert message(check_hours, "200.5", 200) == "单条记录学时不能超过200"
    assert message(check_hours, "1000", 200) == "单条记录学时不能超过200"
    assert message(check_hours, "八", 200) == "学时应为数字"
    assert message(check_hours, "", 200) == "学时应为数字"
    assert message(check_hours, "NaN", 200) == "学时应大于0"
    assert message(check_hours, "Infinity", 200) == "学时应大于0"


# -------------------------------------------------------------------- dates


def test_dates_must_lie_in_the_year():
    year = datetime.date.today().year - 1
    d = datetime.date
    check_dates_in_year(d(year, 3, 1), d(year, 3, 2), year)
    check_dates_in_year(d(year, 1, 1), d(year, 12, 31), str(year))
    assert message(check_dates_in_year, d(year - 1, 12, 30), d(year, 1, 2), year) == f"学习日期应在认定年度{year}年内"
    assert message(check_dates_in_year, d(year, 12, 30), d(year + 1, 1, 2), year) == f"学习日期应在认定年度{year}年内"
    assert message(check_dates_in_year, d(year + 1, 3, 1), d(year + 1, 3, 2), year) == f"学习日期应在认定年度{year}年内"
    assert message(check_dates_in_year, d(year, 3, 2), d(year, 3, 1), year) == "结束日期不能早于开始日期"
    assert message(check_dates_in_year, None, d(year, 3, 1), year) == "请填写开始日期和结束日期"
    tomorrow = datetime.date.today() + datetime.timedelta(days=1)
    assert message(check_dates_in_year, tomorrow, tomorrow, tomorrow.year) == "结束日期不能晚于今天"
