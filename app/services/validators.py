"""Identity and code checks, through python-stdnum where it applies.

Each `check_*` returns the normalised value or raises ValidationFailed with a
Chinese message; `is_*` are the boolean forms for WTForms and imports.
"""
import datetime
import re
from decimal import Decimal, InvalidOperation

from flask_babel import gettext as _
from stdnum import exceptions as stdnum_exc
from stdnum.cn import ric, uscc

from app.security.scope import sees_full_id
from app.services.errors import ValidationFailed

# GB/T 2260 province-level codes: the first two digits of any resident ID.
PROVINCE_CODES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 "
    "61 62 63 64 65 71 81 82".split()
)

_FULLWIDTH = {ord(c): ord(c) - 0xFEE0 for c in "０１２３４５６７８９ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ"}
_FULLWIDTH[0x3000] = 0x20  # ideographic space
_FULLWIDTH[0xFF0E] = ord(".")  # full-width point, as in "１２．５" typed with a Chinese IME
_FULLWIDTH[0xFF0D] = ord("-")


def normalize_text(value):
    """Full-width digits/letters to ASCII, ideographic spaces to spaces, trimmed."""
    if value is None:
        return ""
    return str(value).translate(_FULLWIDTH).strip()


def check_resident_id(value):
    """An 18-character resident ID (GB 11643): format, check digit, real birth date.

    python-stdnum also rejects address codes missing from its bundled list (e.g.
    320982, the abolished 大丰市) although real people still carry them: such an
    ID is accepted when its province code, birth date and check digit are right.
    So stdnum's full `ric.validate` is not called: everything else it checks is
    checked here, and its address lookup costs ~0.2 ms an ID (a bulk import checks
    thousands).
    """
    number = normalize_text(value).upper().replace(" ", "")
    if len(number) != 18:
        raise ValidationFailed(_("身份证号码应为18位，当前为%(n)d位", n=len(number)))
    # ASCII digits only: str.isdigit() also accepts '²' or Arabic-Indic digits.
    if not (number.isascii() and number[:17].isdigit() and (number[17].isdigit() or number[17] == "X")):
        raise ValidationFailed(_("身份证号码格式不正确：前17位应为数字，末位为数字或X"))
    if number[17] != ric.calc_check_digit(number):
        raise ValidationFailed(_("身份证号码校验位不正确"))
    try:
        birth = ric.get_birth_date(number)
    except stdnum_exc.ValidationError:
        raise ValidationFailed(_("身份证号码中的出生日期无效"))
    if birth > datetime.date.today() or birth.year < 1900:
        raise ValidationFailed(_("身份证号码中的出生日期无效"))
    if number[:2] not in PROVINCE_CODES:
        raise ValidationFailed(_("身份证号码中的地址码无效"))
    return number


def check_credit_code(value):
    """An 18-character unified social credit code (GB 32100) with its check digit."""
    code = normalize_text(value).upper().replace(" ", "")
    if not code.isalnum() and code:
        # stdnum silently drops '-' and would then report a wrong length.
        raise ValidationFailed(_("统一社会信用代码格式不正确"))
    try:
        return uscc.validate(code)
    except stdnum_exc.InvalidLength:
        raise ValidationFailed(_("统一社会信用代码应为18位"))
    except stdnum_exc.InvalidChecksum:
        raise ValidationFailed(_("统一社会信用代码校验位不正确"))
    except stdnum_exc.ValidationError:
        raise ValidationFailed(_("统一社会信用代码格式不正确"))


def check_region_code(value):
    code = normalize_text(value)
    if not re.fullmatch(r"\d{6}", code):
        raise ValidationFailed(_("行政区划代码应为6位数字"))
    return code


def check_id_number(id_type, value):
    """Resident IDs are validated; other ID types are free format (4–32 characters)."""
    from app.models.enums import IdType

    if id_type in (None, IdType.RESIDENT, "RESIDENT"):
        return check_resident_id(value)
    number = normalize_text(value).upper()
    if not (4 <= len(number) <= 32) or not re.fullmatch(r"[0-9A-Z()（）\-]+", number):
        raise ValidationFailed(_("证件号码应为4至32位字母或数字"))
    return number


def check_hours(value, maximum):
    """Positive, in half-hour steps, at most `maximum`.  Returns a Decimal."""
    try:
        hours = Decimal(normalize_text(value))
    except (InvalidOperation, ValueError):
        raise ValidationFailed(_("学时应为数字"))
    if not hours.is_finite() or hours <= 0:
        raise ValidationFailed(_("学时应大于0"))
    if hours > Decimal(str(maximum)):
        raise ValidationFailed(_("单条记录学时不能超过%(max)s", max=_fmt(maximum)))
    if (hours * 2) % 1 != 0:
        raise ValidationFailed(_("学时应以0.5为单位"))
    return hours.quantize(Decimal("0.1"))


def check_dates_in_year(start, end, year):
    """start <= end, and the period lies in the year it is declared for."""
    if start is None or end is None:
        raise ValidationFailed(_("请填写开始日期和结束日期"))
    if end < start:
        raise ValidationFailed(_("结束日期不能早于开始日期"))
    if year is not None and (start.year != int(year) or end.year != int(year)):
        raise ValidationFailed(_("学习日期应在认定年度%(year)s年内", year=year))
    if end > datetime.date.today():
        raise ValidationFailed(_("结束日期不能晚于今天"))


def _fmt(number):
    return f"{float(number):g}"


def is_valid_resident_id(value):
    try:
        check_resident_id(value)
        return True
    except ValidationFailed:
        return False


def is_valid_credit_code(value):
    try:
        check_credit_code(value)
        return True
    except ValidationFailed:
        return False


def mask_id_number(number):
    """'320102199001011234' -> '320102********1234' (6 shown, 4 kept at the end)."""
    if not number:
        return ""
    number = str(number)
    if len(number) <= 8:
        return number[:2] + "*" * max(len(number) - 4, 0) + number[-2:]
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


def mask_phone(number):
    """'13912345678' -> '139****5678', '025-84561234' -> '025*****1234' (3 shown, 4 kept at the end)."""
    if not number:
        return ""
    number = str(number)
    if len(number) <= 7:
        return "*" * len(number)
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


def id_number_for_list(number, scope=None):
    """ID numbers in lists and exports: whole for roles that need them
    (security.scope.sees_full_id), masked otherwise.  A whole number shown in a
    request is noted for its audit entry (audit.record_full_ids_shown)."""
    if sees_full_id(scope):
        if number:
            _note_full_id(number)
        return number
    return mask_id_number(number)


def _note_full_id(number):
    from flask import g, has_request_context

    if has_request_context():
        seen = g.get("_ce_full_ids")
        if seen is None:
            seen = g._ce_full_ids = set()
        seen.add(str(number))


def mask_name(name):
    """'张三' -> '张*', '欧阳小明' -> '欧**明'."""
    if not name:
        return ""
    if len(name) <= 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]
