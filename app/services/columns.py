"""One column specification per import kind: header ↔ field ↔ parser ↔ formatter.

The same `ColumnSpec` lists build the downloadable template (excel_template.py),
read an uploaded file (importer.py) and write rows back out (exporter.py and the
import error file), so a header or a rule is defined exactly once.

File headers are fixed Chinese strings: the files are a government data format
exchanged between systems, they do not change with the user's language.

Parsers take one raw cell as a reader returns it (str, int, float, bool,
datetime.date / datetime.datetime, None) and return a clean value or raise
ValidationFailed with a Chinese reason.  They never guess: an ID number stored
as a number is refused, because Excel has already rounded it.
"""
import datetime
import re
from dataclasses import dataclass, field
from decimal import Decimal

from flask_babel import gettext as _

from app.models.enums import Category, IdType, LearningForm, Source
from app.services.errors import ValidationFailed
from app.services.validators import normalize_text as _normalize_text


def normalize_text(value):
    """validators.normalize_text with a fast path for plain ASCII strings (most cells)."""
    if value.__class__ is str and value.isascii():
        return value.strip()
    return _normalize_text(value)

EXCEL_EPOCH = datetime.date(1899, 12, 30)
# Serial numbers of plausible dates (1954-10-14 .. 2173-10-14): anything else is no date.
_SERIAL_MIN, _SERIAL_MAX = 20000, 100000
_DATE_RE = (
    # (a time after the date is ignored, RFC 3339 as the national files write it included)
    re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})"
               r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"),
    re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日?$"),
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
)


_SPACES = re.compile(r"\s+")


def is_blank(value):
    return value is None or (isinstance(value, str) and normalize_text(value) == "")


def is_blank_cell(value):
    """None, '' or only spaces (str.strip() also strips the ideographic space U+3000)."""
    if value is None:
        return True
    return value.__class__ is str and not value.strip()


# ---------------------------------------------------------------- parsers


def parse_text(max_len):
    def parse(value):
        if value.__class__ is not str:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, (datetime.date, datetime.datetime)):
                value = value.isoformat()
        text = normalize_text(value)
        text = _SPACES.sub(" ", text)  # runs of spaces, tabs or line breaks inside
        if len(text) > max_len:
            raise ValidationFailed(_("内容过长，最多%(n)d个字", n=max_len))
        return text

    return parse


def parse_id_number(value):
    """ID numbers must arrive as text.  A number cell has lost digits past the 15th
    (Excel keeps 15 significant digits) and may have lost a trailing X: refuse it."""
    if isinstance(value, bool) or isinstance(value, (int, float, Decimal)):
        raise ValidationFailed(
            _("证件号码被存成了数字（Excel 只保留15位有效数字，后几位已丢失，可能显示为科学计数法），"
              "请将该列设置为文本格式后重新录入完整号码")
        )
    number = normalize_text(value).upper().replace(" ", "")
    if number.startswith("'"):
        number = number[1:]
    return number


def parse_date(value):
    """A date from a date cell, an Excel serial number or common text forms
    (2024-03-05, 2024/3/5, 2024.3.5, 2024年3月5日, 20240305)."""
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, bool):
        raise ValidationFailed(_("日期格式不正确"))
    if isinstance(value, (int, float)):
        if float(value).is_integer() and 19000101 <= value <= 21001231:
            value = str(int(value))
        elif _SERIAL_MIN <= value < _SERIAL_MAX:
            return EXCEL_EPOCH + datetime.timedelta(days=int(value))
        else:
            raise ValidationFailed(_("日期格式不正确"))
    text = normalize_text(value).replace(" ", "") if not isinstance(value, str) or "T" not in value else normalize_text(value)
    for pattern in _DATE_RE:
        m = pattern.match(text)
        if m:
            try:
                return datetime.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                raise ValidationFailed(_("日期不存在：%(text)s", text=text))
    raise ValidationFailed(_("日期格式不正确：%(text)s（应为 2024-03-05、2024/3/5、2024年3月5日 或 20240305）", text=text))


def parse_year(value):
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        year = value
    else:
        text = normalize_text(value).rstrip("年")
        if not re.fullmatch(r"\d{4}", text):
            raise ValidationFailed(_("认定年度应为4位年份"))
        year = int(text)
    if not 2000 <= year <= 2100:
        raise ValidationFailed(_("认定年度不正确"))
    return year


def parse_hours(value):
    """Hours as a number or as text ('16', '１６', '16.5学时'); range checked later."""
    if isinstance(value, bool):
        raise ValidationFailed(_("学时应为数字"))
    if isinstance(value, (int, float)):
        return Decimal(repr(float(value))) if isinstance(value, float) else Decimal(value)
    text = normalize_text(value).replace(" ", "")
    text = re.sub(r"(学时|小时|课时)$", "", text)
    try:
        return Decimal(text)
    except Exception:
        raise ValidationFailed(_("学时应为数字"))


def _label_key(text):
    # '培训(面授)' and '培训（面授）' are the same choice.
    return normalize_text(text).replace("(", "（").replace(")", "）").replace(" ", "")


def parse_choice(enum_cls, message):
    table = {}
    for member in enum_cls:
        table[_label_key(member.value)] = member
        table[member.name] = member

    memo = {}

    def parse(value):
        member = memo.get(value) if value.__class__ is str else None
        if member is not None:
            return member
        key = _label_key(value)
        member = table.get(key) or table.get(key.upper())
        if member is None:
            raise ValidationFailed(message())
        if value.__class__ is str and len(memo) < 1000:
            memo[value] = member
        return member

    return parse


# ---------------------------------------------------------------- formatters


def fmt_enum(member):
    return member.value if member is not None else ""


def fmt_plain(value):
    return value


def fmt_hours(value):
    if value is None:
        return None
    f = float(value)
    return int(f) if f.is_integer() else f


# ---------------------------------------------------------------- the spec


@dataclass(frozen=True)
class ColumnSpec:
    key: str  # field of a parsed row (HourRecord attribute or a person field)
    header: str  # the Chinese header in files
    parse: object = None
    fmt: object = fmt_plain
    required: bool = True
    width: int = 14
    text: bool = False  # formatted as text ('@') in templates
    date: bool = False
    choices: tuple = ()  # drop-down values in templates
    example: object = None
    aliases: tuple = ()  # other header spellings accepted on import
    default: object = None  # value when the cell is blank and not required
    note: str = ""  # one line for the instructions sheet


def _cat_msg():
    return _("科目类别应为“专业科目”或“公需科目”")


def _form_msg():
    return _("学习形式不在参考列表中")


def _idtype_msg():
    return _("证件类型不在参考列表中")


FORM_CHOICES = tuple(f.value for f in LearningForm)
ID_TYPE_CHOICES = tuple(t.value for t in IdType)

NAME = ColumnSpec("name", "姓名", parse_text(50), width=10, example="张三", aliases=("人员姓名",))
ID_TYPE = ColumnSpec(
    "id_type", "证件类型", parse_choice(IdType, _idtype_msg), fmt_enum, required=False, width=14,
    choices=ID_TYPE_CHOICES, example=IdType.RESIDENT.value, default=IdType.RESIDENT,
    note="留空视为居民身份证",
)
ID_NUMBER = ColumnSpec(
    "id_number", "证件号码", parse_id_number, width=22, text=True, example="320102198805120115",
    aliases=("身份证号码", "身份证号", "公民身份号码"),
    note="本列已设为文本格式；请勿以数字形式录入，否则后几位会丢失",
)
YEAR = ColumnSpec("year", "认定年度", parse_year, width=10, example=None, aliases=("年度",))


def CATEGORY(choices):
    return ColumnSpec(
        "category", "科目类别", parse_choice(Category, _cat_msg), fmt_enum, width=12,
        choices=tuple(c.value for c in choices), example=choices[0].value,
    )


def FORM(choices=FORM_CHOICES, example=LearningForm.TRAIN_ONSITE.value):
    return ColumnSpec(
        "learning_form", "学习形式", parse_choice(LearningForm, _form_msg), fmt_enum, width=16,
        choices=tuple(choices), example=example,
    )


def RULE_FORM(example="培训（面授）"):
    """学习形式 of a template checked against the year's 学时认定标准: any form of
    the year's catalogue by name (the template's drop-down lists the year's active
    forms, see excel_template.build_template); resolved per row in the importer."""
    return ColumnSpec(
        "learning_form", "学习形式", parse_text(100), width=24, example=example,
        note="从下拉列表中选择本年度学时认定标准中的学习形式（也可填写国家规定的学习形式名称）",
    )


def parse_quantity(value):
    """Days, hours taught: a number ('3', '３天', '2.5'); checked by the rule."""
    if isinstance(value, bool):
        raise ValidationFailed(_("应为数字"))
    if isinstance(value, (int, float)):
        return Decimal(repr(float(value))) if isinstance(value, float) else Decimal(value)
    text = re.sub(r"(天|日|学时|小时|课时)$", "", normalize_text(value).replace(" ", ""))
    try:
        d = Decimal(text)
    except Exception:
        raise ValidationFailed(_("应为数字"))
    if not d.is_finite():
        raise ValidationFailed(_("应为数字"))
    return d


# The quantities a learning form's rule needs (services.rules.Inputs), optional
# columns of the templates whose forms follow the rules.
RULE_COLUMNS = (
    ColumnSpec("days", "天数", parse_quantity, fmt_hours, required=False, width=8,
               note="按天计算的学习形式填写（如培训、研讨每天8学时）"),
    ColumnSpec("taught_hours", "授课（讲座）学时", parse_quantity, fmt_hours, required=False, width=12,
               aliases=("授课学时", "讲座学时", "授课(讲座)学时"),
               note="按学时倍数认定的学习形式填写（如讲授继续教育课程按授课学时的2倍认定）"),
    ColumnSpec("addons", "加项", parse_text(200), required=False, width=20,
               note="每次固定学时的学习形式可填写加项名称（如“报告论文（2000字以上）”），多项用“、”分隔"),
    ColumnSpec("level", "级别", parse_text(50), required=False, width=12,
               note="按级别和名次查表的学习形式填写（如“核心期刊”“国家级”）"),
    ColumnSpec("rank", "名次", parse_text(50), required=False, width=12,
               aliases=("作者排序", "名次（作者排序）"),
               note="按级别和名次查表的学习形式填写（如“第一作者”“主持”）"),
)

COURSE = ColumnSpec(
    "course_name", "课程（项目）名称", parse_text(200), width=30, example="人工智能在制造业中的应用",
    aliases=("课程名称", "项目名称", "课程(项目)名称"),
)
ORGANIZER = ColumnSpec(
    "organizer_name", "举办单位", parse_text(200), required=False, width=24, example="东南大学继续教育学院",
    aliases=("主办单位", "培训机构"),
)
START = ColumnSpec("start_date", "开始日期", parse_date, width=12, date=True, note="如 2024-03-05")
END = ColumnSpec("end_date", "结束日期", parse_date, width=12, date=True, note="如 2024-03-07")
HOURS = ColumnSpec(
    "hours", "学时", parse_hours, fmt_hours, width=8, example=16,
    note="大于0，以0.5为单位", aliases=("学时数",),
)


# 学时 of a template whose forms follow the rules: required for forms counted as
# declared; the others are computed from the row's quantity (a figure given must agree).
RULE_HOURS = ColumnSpec(
    "hours", "学时", parse_hours, fmt_hours, required=False, width=8, example=16, aliases=("学时数",),
    note="按申报学时认定的学习形式必填（大于0，以0.5为单位）；其他学习形式可不填，由系统按学时认定标准计算，填写的须与计算结果一致",
)


@dataclass(frozen=True)
class ImportKind:
    code: str
    title: str  # template title
    source: Source
    categories: tuple
    columns: tuple
    creates_persons: bool = False
    flags_late: bool = False
    fixed: dict = field(default_factory=dict)  # values for fields the file does not carry
    instructions: tuple = ()
    rule_forms: bool = False  # 学习形式 are the year's forms of the 学时认定标准 (issue 20)

    @property
    def headers(self):
        return [c.header for c in self.columns]

    def column(self, key):
        return next((c for c in self.columns if c.key == key), None)


_COMMON_NOTES = (
    "第一行为表头，请勿修改、删除或调整表头文字；从第二行开始每行填写一条学时记录。",
    "示例行（第2行）仅作填写参考，导入前请删除或改写为真实数据。",
    "证件号码列已设为文本格式，请直接录入完整号码；被存成数字的证件号码会被拒绝。",
    "日期可填写 2024-03-05、2024/3/5、2024年3月5日 或 20240305。",
    "学时须大于0，以0.5为单位。",
    "同一人员、年度、科目类别、课程名称和开始日期相同的记录视为重复，不会重复保存。",
    "文件导入前先预览校验结果；有错误的文件不会保存任何记录，请下载错误文件改正后重新导入。",
)

KINDS = {
    "unit": ImportKind(
        code="unit",
        title="单位专业科目学时导入模板",
        source=Source.UNIT_IMPORT,
        categories=(Category.PRO,),
        columns=(NAME, ID_TYPE, ID_NUMBER, YEAR, CATEGORY((Category.PRO,)), RULE_FORM(), COURSE, ORGANIZER,
                 START, END, RULE_HOURS) + RULE_COLUMNS,
        creates_persons=True,
        rule_forms=True,
        instructions=_COMMON_NOTES + (
    "学习形式为认定年度学时认定标准中的学习形式；按天、按倍数、固定学时或查表认定的学习形式，按“天数”“授课（讲座）学时”“加项”“级别”“名次”列计算学时，超过标准规定上限（每项、每人每年）的行不能导入。",
            "单位只能为本单位人员导入专业科目学时。",
            "证件号码尚未登记的人员将按表中姓名、证件信息登记为本单位人员；已登记在其他单位的人员不能导入。",
        ),
    ),
    "bureau": ImportKind(
        code="bureau",
        title="人社局公需科目学时导入模板",
        source=Source.BUREAU_IMPORT,
        categories=(Category.PUB,),
        columns=(NAME, ID_TYPE, ID_NUMBER, YEAR, CATEGORY((Category.PUB,)),
                 RULE_FORM(example=LearningForm.TRAIN_ONLINE.value), COURSE, ORGANIZER, START, END,
                 RULE_HOURS) + RULE_COLUMNS,
        rule_forms=True,
        instructions=_COMMON_NOTES + (
    "学习形式为认定年度学时认定标准中的学习形式；按天、按倍数、固定学时或查表认定的学习形式，按“天数”“授课（讲座）学时”“加项”“级别”“名次”列计算学时，超过标准规定上限（每项、每人每年）的行不能导入。",
            "人社局只能为本辖区单位的已登记人员导入公需科目学时；未登记人员会被列为错误。",
        ),
    ),
    "organizer": ImportKind(
        code="organizer",
        title="高级研修项目学时上报模板",
        source=Source.ORGANIZER_REPORT,
        categories=(Category.PRO,),
        columns=(
            NAME, ID_TYPE, ID_NUMBER, YEAR, CATEGORY((Category.PRO,)),
            FORM((LearningForm.RESEARCH.value,), LearningForm.RESEARCH.value),
            ColumnSpec("course_name", "研修项目名称", parse_text(200), width=30,
                       example="新一代信息技术高级研修班", aliases=("课程（项目）名称", "项目名称")),
            ColumnSpec("start_date", "开始日期", parse_date, width=12, date=True, aliases=("项目开始日期",)),
            ColumnSpec("end_date", "项目结束日期", parse_date, width=12, date=True, aliases=("结束日期",),
                       note="研修项目结束后20个工作日内上报，逾期将被标记"),
            HOURS,
        ),
        flags_late=True,
        instructions=_COMMON_NOTES + (
            "研修承办单位在研修项目结束后20个工作日内上报参训人员学时（按国家法定节假日和调休计算工作日）；逾期上报的记录会被标记为“逾期上报”。",
            "参训人员须已在系统中登记；未登记人员会被列为错误。",
        ),
    ),
    "industry": ImportKind(
        code="industry",
        title="行业主管部门学时导入模板",
        source=Source.INDUSTRY_IMPORT,
        categories=(Category.PRO, Category.PUB),
        columns=(NAME, ID_TYPE, ID_NUMBER, YEAR, CATEGORY((Category.PRO, Category.PUB)), RULE_FORM(), COURSE,
                 ORGANIZER, START, END, RULE_HOURS) + RULE_COLUMNS,
        rule_forms=True,
        instructions=_COMMON_NOTES + (
    "学习形式为认定年度学时认定标准中的学习形式；按天、按倍数、固定学时或查表认定的学习形式，按“天数”“授课（讲座）学时”“加项”“级别”“名次”列计算学时，超过标准规定上限（每项、每人每年）的行不能导入。",
            "行业主管部门可导入本行业自有系统中的学时记录，也可使用全国继续教育数据采集格式（部省对接格式）的文件。",
            "人员须已在系统中登记；未登记人员会被列为错误。",
        ),
    ),
}

# The national collection layout (部省对接 / 全国专业技术人员继续教育数据采集格式):
# read by the industry import, written by the national interchange (issue 8).
NATIONAL = (
    ColumnSpec("id_type", "证件类型", parse_choice(IdType, _idtype_msg), fmt_enum, required=False,
               default=IdType.RESIDENT, choices=ID_TYPE_CHOICES, width=14),
    ColumnSpec("id_number", "证件号码", parse_id_number, width=22, text=True),
    ColumnSpec("name", "姓名", parse_text(50), width=10),
    ColumnSpec("unit_name", "单位名称", parse_text(200), required=False, width=28),
    ColumnSpec("unit_credit_code", "单位统一社会信用代码", parse_text(18), required=False, width=22, text=True),
    ColumnSpec("region_code", "行政区划代码", parse_text(6), required=False, width=12, text=True),
    ColumnSpec("year", "年度", parse_year, width=8, aliases=("认定年度",)),
    ColumnSpec("category", "科目类别", parse_choice(Category, _cat_msg), fmt_enum, width=12,
               choices=tuple(c.value for c in Category)),
    ColumnSpec("learning_form", "学习形式", parse_choice(LearningForm, _form_msg), fmt_enum, width=16,
               choices=FORM_CHOICES),
    ColumnSpec("course_name", "课程名称", parse_text(200), width=30, aliases=("课程（项目）名称",)),
    ColumnSpec("organizer_name", "举办单位", parse_text(200), required=False, width=24),
    ColumnSpec("start_date", "开始日期", parse_date, width=12, date=True),
    ColumnSpec("end_date", "结束日期", parse_date, width=12, date=True),
    ColumnSpec("hours", "学时", parse_hours, fmt_hours, width=8),
    ColumnSpec("source", "来源", parse_choice(Source, lambda: _("来源不在参考列表中")), fmt_enum,
               required=False, width=12),
    ColumnSpec("reviewed_at", "认定时间", parse_date, required=False, width=18, date=True,
               aliases=("审核时间",)),
    # 学时认定标准 (issue 20): the form of the year's catalogue as stored on the record.
    ColumnSpec("form_code", "学习形式代码", parse_text(40), required=False, width=16, text=True),
    ColumnSpec("form_name", "学习形式名称", parse_text(100), required=False, width=24),
)

NATIONAL_HEADERS = [c.header for c in NATIONAL]


def national_row(record, person, unit):
    """One HourRecord as a row of the national layout (values ready for a cell)."""
    return [
        fmt_enum(person.id_type), person.id_number, person.name,
        unit.name if unit else "", unit.credit_code if unit else "", record.region_code or "",
        record.year, fmt_enum(record.category), fmt_enum(record.learning_form), record.course_name,
        record.organizer_name or "", record.start_date, record.end_date, fmt_hours(record.hours),
        fmt_enum(record.source), record.reviewed_at, record.form_code or record.learning_form.name,
        fmt_enum(record.learning_form),
    ]


def get_kind(code):
    kind = KINDS.get(code)
    if kind is None:
        raise ValidationFailed(_("未知的导入类型"))
    return kind


def header_key(text):
    """Header cells compared without spaces and with both paren widths."""
    return _label_key(text)
