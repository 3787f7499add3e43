"""学时认定标准: the rule engine.  Pure: no database, no request, no app.

A learning form's rule (FormRule) turns what an applicant states (Inputs: hours,
days, chosen add-ons, level and rank) into recognised hours, and refuses what
the rule forbids (a category it does not count for, a cap per record, a cap
per form per year) with a Chinese message naming the rule (RuleRefused).  The
rules themselves are data (models.LearningFormRule, one catalogue per year,
edited in the console); services.standards loads them and applies this engine
wherever hours enter the system (declaration, review, import).

Computation kinds (FormRule.kind):

- DECLARED  as declared: the hours entered (online courseware: the hours it states).
- PER_DAY   per day: days × params["per_day"].
- FIXED     fixed per event: params["base"] plus the add-ons the applicant chose
            (params["addons"]: [{"code", "name", "hours"}]; at most one of them
            when params["single_addon"] is true, e.g. a paper under / over 2 000 字).
- MULTIPLE  multiple of the hours entered: hours × params["factor"] (teaching 2 ×).
- TABLE     table by level and rank: params["table"] = {level: {rank: hours}}.

flask_babel's gettext works without an application (it returns the source
text), so the messages are translated where there is one and Chinese elsewhere.
"""
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from flask_babel import gettext as _

KINDS = ("DECLARED", "PER_DAY", "FIXED", "MULTIPLE", "TABLE")
CATEGORIES = ("PRO", "PUB")
ONE = Decimal("0.1")
MAX_QUANTITY = Decimal(1000)  # days or hours stated on one record
MAX_FIGURE = Decimal(1000)  # any hours figure of a rule


def kind_label(kind):
    return {
        "DECLARED": _("按申报学时"), "PER_DAY": _("按天计算"), "FIXED": _("每次固定学时（可加项）"),
        "MULTIPLE": _("按学时倍数"), "TABLE": _("按级别和名次查表"),
    }.get(kind, kind)


def category_label(code):
    return {"PRO": _("专业科目"), "PUB": _("公需科目")}.get(code, code)


class RuleRefused(Exception):
    """The rule does not recognise these inputs.  `message` is for the user;
    `field` names the form input it concerns (or None)."""

    def __init__(self, message, field=None):
        super().__init__(str(message))
        self.message = message
        self.field = field


def _dec(value):
    """A Decimal with one decimal place, or None for empty; InvalidOperation on junk."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    d = Decimal(str(value).strip())
    if not d.is_finite():
        raise InvalidOperation
    return d.quantize(ONE, rounding=ROUND_HALF_UP)


def fmt(value):
    """Hours as shown: 40, 7.5 (no trailing .0)."""
    if value is None:
        return ""
    d = Decimal(value).quantize(ONE, rounding=ROUND_HALF_UP)
    return str(d.quantize(Decimal(1))) if d == d.to_integral() else str(d)


@dataclass(frozen=True)
class FormRule:
    code: str
    name: str
    categories: tuple = CATEGORIES
    kind: str = "DECLARED"
    params: dict = field(default_factory=dict, hash=False, compare=False)
    cap_record: Decimal = None
    cap_year: Decimal = None
    proof_text: str = ""
    active: bool = True
    national_form: str = "OTHER"  # the national layout's 学习形式 this form reports as
    rule_id: int = None  # the stored version (LearningFormRule.id)
    year: int = None

    # -- parameters, read leniently (validate() says what is wrong)
    def addons(self):
        return [a for a in (self.params.get("addons") or []) if isinstance(a, dict)]

    def table(self):
        t = self.params.get("table") or {}
        return t if isinstance(t, dict) else {}

    def levels(self):
        return list(self.table())

    def ranks(self):
        seen = []
        for row in self.table().values():
            for r in (row or {}):
                if r not in seen:
                    seen.append(r)
        return seen

    def quantity(self):
        """What the form asks for: 'hours', 'days', 'addons', 'table'."""
        return {"DECLARED": "hours", "MULTIPLE": "hours", "PER_DAY": "days", "FIXED": "addons",
                "TABLE": "table"}.get(self.kind, "hours")


@dataclass(frozen=True)
class Inputs:
    hours: object = None
    days: object = None
    addons: tuple = ()
    level: str = None
    rank: str = None

    @classmethod
    def from_form(cls, get, getlist=None):
        """From a form mapping: `get(name)`; add-ons from `getlist('addons')`."""
        addons = tuple(getlist("addons")) if getlist else tuple(filter(None, str(get("addons") or "").split(",")))
        return cls(hours=get("hours"), days=get("days"), addons=tuple(a.strip() for a in addons if a and a.strip()),
                   level=(get("level") or None), rank=(get("rank") or None))

    def as_dict(self):
        d = {"hours": None if self.hours in (None, "") else str(self.hours),
             "days": None if self.days in (None, "") else str(self.days),
             "addons": list(self.addons), "level": self.level, "rank": self.rank}
        return {k: v for k, v in d.items() if v not in (None, [], "")}


@dataclass(frozen=True)
class Recognised:
    hours: Decimal
    rule: FormRule
    text: str  # how the hours were computed, e.g. "学术会议（全国） 10 + 报告论文（2000字以上） 30 = 40 学时"


def _quantity(value, field_name, label):
    try:
        d = _dec(value)
    except (InvalidOperation, ValueError, TypeError):
        raise RuleRefused(_("%(label)s须为数字", label=label), field_name)
    if d is None:
        raise RuleRefused(_("请填写%(label)s", label=label), field_name)
    if d <= 0 or d > MAX_QUANTITY:
        raise RuleRefused(_("%(label)s须大于0且不超过%(max)s", label=label, max=fmt(MAX_QUANTITY)), field_name)
    return d


def _num(params, key, default=None):
    try:
        return _dec(params.get(key, default))
    except (InvalidOperation, ValueError, TypeError):
        return None


def compute(rule, inputs):
    """Recognised hours of one record under `rule`, before caps: (Decimal, text).
    Raises RuleRefused when an input the rule needs is missing or invalid."""
    kind, p = rule.kind, rule.params or {}
    if kind == "DECLARED":
        h = _quantity(inputs.hours, "hours", _("学时数"))
        return h, _("按申报学时 %(h)s", h=fmt(h))
    if kind == "PER_DAY":
        days = _quantity(inputs.days, "days", _("天数"))
        per_day = _num(p, "per_day")
        h = (days * per_day).quantize(ONE, rounding=ROUND_HALF_UP)
        return h, _("%(d)s 天 × %(r)s 学时/天", d=fmt(days), r=fmt(per_day))
    if kind == "MULTIPLE":
        hours = _quantity(inputs.hours, "hours", _("授课（讲座）学时"))
        factor = _num(p, "factor")
        h = (hours * factor).quantize(ONE, rounding=ROUND_HALF_UP)
        return h, _("%(h)s 学时 × %(f)s", h=fmt(hours), f=fmt(factor))
    if kind == "FIXED":
        base = _num(p, "base") or Decimal(0)
        by_code = {str(a.get("code")): a for a in rule.addons()}
        chosen = [c for c in dict.fromkeys(inputs.addons)]
        unknown = [c for c in chosen if c not in by_code]
        if unknown:
            raise RuleRefused(_("“%(rule)s”没有加项“%(addon)s”", rule=rule.name, addon=unknown[0]), "addons")
        if p.get("single_addon") and len(chosen) > 1:
            raise RuleRefused(_("“%(rule)s”的加项只能选择一项", rule=rule.name), "addons")
        h = base
        parts = [_("%(name)s %(h)s", name=rule.name, h=fmt(base))]
        for c in chosen:
            add = _num(by_code[c], "hours") or Decimal(0)
            h += add
            parts.append(_("%(name)s %(h)s", name=by_code[c].get("name", c), h=fmt(add)))
        return h.quantize(ONE), " + ".join(parts)
    if kind == "TABLE":
        table = rule.table()
        if not inputs.level or inputs.level not in table:
            raise RuleRefused(_("请选择“%(rule)s”的级别", rule=rule.name), "level")
        row = table[inputs.level] or {}
        if not inputs.rank or inputs.rank not in row:
            raise RuleRefused(_("请选择“%(rule)s”的名次（作者排序）", rule=rule.name), "rank")
        try:
            h = _dec(row[inputs.rank])
        except (InvalidOperation, ValueError, TypeError):
            h = None
        if h is None:
            raise RuleRefused(_("“%(rule)s”的认定表不完整，请联系管理员", rule=rule.name), "rank")
        return h, _("%(level)s · %(rank)s", level=inputs.level, rank=inputs.rank)
    raise RuleRefused(_("“%(rule)s”的计算方式无效，请联系管理员", rule=rule.name))


def recognise(rule, inputs, category=None, used_this_year=Decimal(0)):
    """Recognised hours of one record under `rule`, caps applied.  `category`
    ('PRO' / 'PUB' or None: not checked) must be one the form counts for;
    `used_this_year` is the hours of this form the person already holds in the
    rule's year (approved or pending, not this record).  Returns Recognised;
    raises RuleRefused naming the rule."""
    if not rule.active:
        raise RuleRefused(_("学习形式“%(rule)s”已停用", rule=rule.name), "learning_form")
    if category is not None and category not in rule.categories:
        raise RuleRefused(
            _("学习形式“%(rule)s”只能认定为%(cats)s", rule=rule.name,
              cats="、".join(category_label(c) for c in rule.categories)), "category")
    hours, how = compute(rule, inputs)
    if hours <= 0:
        raise RuleRefused(_("按“%(rule)s”认定的学时为0", rule=rule.name), rule.quantity())
    if rule.cap_record is not None and hours > Decimal(rule.cap_record):
        raise RuleRefused(
            _("超过“%(rule)s”每项最多%(cap)s学时的上限（按标准计算为%(h)s学时）",
              rule=rule.name, cap=fmt(rule.cap_record), h=fmt(hours)), rule.quantity())
    check_year_cap(rule, used_this_year, hours)
    return Recognised(hours, rule, _("%(how)s = %(h)s 学时", how=how, h=fmt(hours)))


def check_year_cap(rule, used, hours):
    """The cap per form per year: `used` hours of the form the person already
    holds in the year (pending or approved, and earlier rows of the same import
    file) plus `hours` may not exceed rule.cap_year.  Raises RuleRefused."""
    used = Decimal(used or 0)
    if rule.cap_year is not None and used + Decimal(hours) > Decimal(rule.cap_year):
        raise RuleRefused(
            _("超过“%(rule)s”每年最多%(cap)s学时的上限（本年已有%(used)s学时，本项%(h)s学时）",
              rule=rule.name, cap=fmt(rule.cap_year), used=fmt(used), h=fmt(hours)), rule.quantity())


def check_stated(rule, hours, category=None):
    """A record whose hours are stated (an import row): the form must be active,
    count for `category`, and the hours stay within the rule's cap per record.
    Raises RuleRefused naming the rule."""
    if not rule.active:
        raise RuleRefused(_("学习形式“%(rule)s”已停用", rule=rule.name), "learning_form")
    if category is not None and category not in rule.categories:
        raise RuleRefused(
            _("学习形式“%(rule)s”只能认定为%(cats)s", rule=rule.name,
              cats="、".join(category_label(c) for c in rule.categories)), "category")
    if rule.cap_record is not None and Decimal(hours) > Decimal(rule.cap_record):
        raise RuleRefused(_("超过“%(rule)s”每项最多%(cap)s学时的上限", rule=rule.name, cap=fmt(rule.cap_record)),
                          "hours")


def describe(rule):
    """The rule as one line of Chinese text, shown on the form and to reviewers."""
    p = rule.params or {}
    if rule.kind == "DECLARED":
        text = _("按实际（课件标明的）学时认定")
    elif rule.kind == "PER_DAY":
        text = _("每天%(r)s学时", r=fmt(_num(p, "per_day")))
    elif rule.kind == "MULTIPLE":
        text = _("按学时的%(f)s倍认定", f=fmt(_num(p, "factor")))
    elif rule.kind == "FIXED":
        text = _("每次%(b)s学时", b=fmt(_num(p, "base") or 0))
        adds = "；".join(_("%(name)s加%(h)s学时", name=a.get("name", ""), h=fmt(_num(a, "hours") or 0))
                        for a in rule.addons())
        if adds:
            text += _("；%(adds)s", adds=adds) + (_("（加项选一）") if p.get("single_addon") else "")
    elif rule.kind == "TABLE":
        text = "；".join(
            "%s：%s" % (lv, "、".join(_("%(rank)s %(h)s学时", rank=r, h=fmt(_dec(v))) for r, v in (row or {}).items()))
            for lv, row in rule.table().items())
    else:
        text = ""
    caps = []
    if rule.cap_record is not None:
        caps.append(_("每项最多%(cap)s学时", cap=fmt(rule.cap_record)))
    if rule.cap_year is not None:
        caps.append(_("每年最多%(cap)s学时", cap=fmt(rule.cap_year)))
    if caps:
        text += _("（%(caps)s）", caps="，".join(caps))
    return text


def preview(rule, inputs):
    """"参加全国学术会议并报告论文（2000字以上）→ 40 学时" (or the refusal)."""
    try:
        r = recognise(rule, inputs)
    except RuleRefused as exc:
        return _("%(rule)s → %(msg)s", rule=rule.name, msg=exc.message)
    label = rule.name
    if rule.kind == "FIXED" and inputs.addons:
        names = [a.get("name", "") for a in rule.addons() if str(a.get("code")) in inputs.addons]
        label = _("%(rule)s并%(addons)s", rule=rule.name, addons="、".join(names))
    return _("%(label)s → %(h)s 学时", label=label, h=fmt(r.hours))


def validate(rule):
    """Problems of a rule as edited in the console: [(field, Chinese message)]."""
    errors = []
    p = rule.params or {}
    code = (rule.code or "").strip()
    if not code or len(code) > 40 or not all(c.isalnum() or c in "_-" for c in code) or not code.isascii():
        errors.append(("code", _("代码须为1–40位字母、数字、下划线或连字符")))
    if not (rule.name or "").strip() or len(rule.name) > 100:
        errors.append(("name", _("请填写名称（不超过100字）")))
    if not rule.categories or any(c not in CATEGORIES for c in rule.categories):
        errors.append(("categories", _("学习形式至少要计入一个科目类别")))
    if rule.kind not in KINDS:
        errors.append(("kind", _("请选择计算方式")))

    def positive(key, label, src=p, field_name=None):
        v = _num(src, key)
        if v is None or v <= 0 or v > MAX_FIGURE:
            errors.append((field_name or key, _("%(label)s须大于0且不超过%(max)s", label=label, max=fmt(MAX_FIGURE))))
        return v

    fixed_max = None
    if rule.kind == "PER_DAY":
        positive("per_day", _("每天学时"))
    elif rule.kind == "MULTIPLE":
        positive("factor", _("倍数"))
    elif rule.kind == "FIXED":
        base = _num(p, "base")
        if base is None or base < 0 or base > MAX_FIGURE:
            errors.append(("base", _("每次固定学时须在0到%(max)s之间", max=fmt(MAX_FIGURE))))
            base = Decimal(0)
        codes = set()
        adds = []
        for a in rule.addons():
            if not str(a.get("code") or "").strip() or not str(a.get("name") or "").strip():
                errors.append(("addons", _("每个加项都要有代码和名称")))
            if str(a.get("code")) in codes:
                errors.append(("addons", _("加项代码“%(code)s”重复", code=a.get("code"))))
            codes.add(str(a.get("code")))
            adds.append(positive("hours", _("加项学时"), a, "addons") or Decimal(0))
        if base == 0 and not adds:
            errors.append(("base", _("每次固定学时为0时至少要有一个加项")))
        fixed_max = base + (max(adds) if p.get("single_addon") and adds else sum(adds, Decimal(0)))
        fixed_min = base if base > 0 else (min(adds) if adds else Decimal(0))
    elif rule.kind == "TABLE":
        if not rule.table():
            errors.append(("table", _("认定表至少要有一行")))
        for lv, row in rule.table().items():
            if not isinstance(row, dict) or not row:
                errors.append(("table", _("级别“%(level)s”没有名次", level=lv)))
                continue
            for r in row:
                positive(r, _("“%(level)s · %(rank)s”的学时", level=lv, rank=r), row, "table")
    for key, label in (("cap_record", _("每项上限")), ("cap_year", _("每年上限"))):
        v = getattr(rule, key)
        if v is not None and (Decimal(v) <= 0 or Decimal(v) > MAX_FIGURE):
            errors.append((key, _("%(label)s须大于0且不超过%(max)s", label=label, max=fmt(MAX_FIGURE))))
    if rule.cap_record is not None and rule.cap_year is not None and Decimal(rule.cap_year) < Decimal(rule.cap_record):
        errors.append(("cap_year", _("每年上限不能小于每项上限")))
    if rule.kind == "FIXED" and rule.cap_record is not None and fixed_max is not None:
        if Decimal(rule.cap_record) < fixed_min:
            # Every event would be refused: the fixed figure itself breaks the cap.
            errors.append(("cap_record", _("每项上限%(cap)s低于每次固定学时%(b)s，该学习形式将无法申报",
                                           cap=fmt(rule.cap_record), b=fmt(fixed_min))))
    if len(rule.proof_text or "") > 300:
        errors.append(("proof_text", _("证明材料说明不能超过300字")))
    return errors
