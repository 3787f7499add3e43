"""学时认定标准 in the database: each year's catalogue of learning forms
(models.LearningFormRule), its edits (a new version per edit, audited with old
and new values), copying a year forward, the demo's example table, and
applying a rule to a person's record (services.rules does the arithmetic).

The year's requirement (total, floors) lives in models.YearRequirement and is
changed through services.requirement.set_requirement.

A year without a catalogue of its own uses the nearest earlier year's (else
the nearest later one's): declaring in January works before the province has
copied the year forward.  A record from before the rules (form_code NULL) reads
as its learning_form's code under version 1 of its year.
"""
import datetime
import json
from decimal import Decimal

from flask import g
from flask_babel import gettext as _
from sqlalchemy import and_, func, or_, select, update

from app.extensions import db
from app.models import HourRecord, LearningForm, LearningFormRule, Status
from app.services import audit
from app.services.errors import ValidationFailed
from app.services.rules import CATEGORIES, KINDS, FormRule, Inputs, RuleRefused, fmt, recognise, validate

# Hours of a form already used in a year, for the per-year cap: pending and approved.
CAP_STATUSES = (Status.SUBMITTED, Status.APPROVED)
EDIT_FIELDS = ("name", "national_form", "categories", "kind", "params", "cap_record", "cap_year",
               "proof_text", "active", "sort", "note")
EXAMPLE_NOTE = "示例（演示数据），请按本省标准修改"


def _cache():
    try:
        return g.setdefault("_ce_rules", {})
    except RuntimeError:
        return {}


def to_rule(row):
    """The engine's FormRule of a stored row."""
    try:
        params = json.loads(row.params or "{}")
    except ValueError:
        params = {}
    return FormRule(
        code=row.code, name=row.name, categories=tuple(c for c in (row.categories or "").split(",") if c),
        kind=row.kind, params=params if isinstance(params, dict) else {},
        cap_record=None if row.cap_record is None else Decimal(row.cap_record),
        cap_year=None if row.cap_year is None else Decimal(row.cap_year),
        proof_text=row.proof_text or "", active=bool(row.active),
        national_form=row.national_form.name if isinstance(row.national_form, LearningForm) else str(row.national_form),
        rule_id=row.id, year=row.year,
    )


def catalogue_year(year):
    """The year whose catalogue applies to `year` (itself, else nearest earlier, else later; None: none)."""
    year = int(year)
    cache = _cache()  # (per request, cleared by the writes below: the form asks for two years)
    if "years" not in cache:
        cache["years"] = [y for (y,) in db.session.execute(select(LearningFormRule.year).distinct())]
    years = cache["years"]
    if not years:
        return None
    if year in years:
        return year
    earlier = [y for y in years if y < year]
    return max(earlier) if earlier else min(years)


def rows_of(year, active_only=False):
    """The current rule rows of the catalogue that applies to `year`, in display order."""
    src = catalogue_year(year)
    if src is None:
        return []
    q = select(LearningFormRule).where(LearningFormRule.year == src, LearningFormRule.is_current.is_(True))
    if active_only:
        q = q.where(LearningFormRule.active.is_(True))
    return db.session.execute(q.order_by(LearningFormRule.sort, LearningFormRule.id)).scalars().all()


def catalogue(year, active_only=True):
    """[FormRule] of `year` (the year's active forms by default)."""
    key = (int(year), active_only)
    cache = _cache()
    if key not in cache:
        cache[key] = [to_rule(r) for r in rows_of(year, active_only)]
    return cache[key]


def rule_for(year, code):
    """The current FormRule of `code` in `year`'s catalogue (active or not), or None."""
    for r in catalogue(year, active_only=False):
        if r.code == code:
            return r
    return None


def rule_by_id(rule_id):
    row = db.session.get(LearningFormRule, rule_id) if rule_id else None
    return to_rule(row) if row is not None else None


def rule_of_record(record):
    """The FormRule version a record was recognised under (None: none stored)."""
    if record.rule_id:
        return rule_by_id(record.rule_id)
    code = record.form_code or (record.learning_form.name if record.learning_form else None)
    src = catalogue_year(record.year) if record.year else None
    if code is None or src is None:
        return None
    row = db.session.execute(
        select(LearningFormRule).where(LearningFormRule.year == src, LearningFormRule.code == code)
        .order_by(LearningFormRule.version).limit(1)).scalar_one_or_none()
    return to_rule(row) if row is not None else None


def form_code_of(record):
    return record.form_code or (record.learning_form.name if record.learning_form else "")


def form_name_of(record):
    """The form's name as stored for the record (its rule version's name)."""
    rule = rule_of_record(record)
    if rule is not None:
        return rule.name
    from app.models.enums import label

    return label(record.learning_form)


def form_names(records):
    """{record id: the form's name as stored} for many records, in one query.  A
    record from before the rules shows its learning form's label (the name of
    version 1 of that form, which the migration seeded from the label)."""
    from app.models.enums import label

    ids = {r.rule_id for r in records if r.rule_id}
    names = dict(db.session.execute(
        select(LearningFormRule.id, LearningFormRule.name).where(LearningFormRule.id.in_(ids))).all()) if ids else {}
    return {r.id: names.get(r.rule_id) or label(r.learning_form) for r in records}


def _form_clause(code):
    return or_(HourRecord.form_code == code, and_(HourRecord.form_code.is_(None), HourRecord.learning_form == code))


def used_this_year(person_id, year, code, exclude_id=None):
    """Hours of form `code` the person holds in `year`, pending or approved (the per-year cap)."""
    if code in LearningForm.__members__:
        clause = or_(HourRecord.form_code == code,
                     and_(HourRecord.form_code.is_(None), HourRecord.learning_form == LearningForm[code]))
    else:
        clause = HourRecord.form_code == code
    q = select(func.coalesce(func.sum(HourRecord.hours), 0)).where(
        HourRecord.person_id == person_id, HourRecord.year == int(year), clause,
        HourRecord.status.in_(CAP_STATUSES))
    if exclude_id:
        q = q.where(HourRecord.id != exclude_id)
    return Decimal(db.session.execute(q).scalar() or 0)


def apply(person_id, year, code, inputs, category=None, exclude_id=None):
    """Recognise a record of `person_id` in `year` of form `code` with `inputs`
    (rules.Inputs) under the year's current rule.  Returns rules.Recognised;
    raises RuleRefused (a form the year does not offer among them)."""
    rule = rule_for(year, code)
    if rule is None:
        raise RuleRefused(_("%(year)s年度的学时认定标准中没有学习形式“%(code)s”", year=year, code=code),
                          "learning_form")
    cat = category.name if hasattr(category, "name") else category
    return recognise(rule, inputs, cat, used_this_year(person_id, year, code, exclude_id) if rule.cap_year else 0)


def stamp(record, recognised, inputs):
    """Store on `record` what it was recognised under."""
    rule = recognised.rule
    record.form_code = rule.code
    record.rule_id = rule.rule_id
    record.learning_form = LearningForm.__members__.get(rule.national_form, LearningForm.OTHER)
    record.rule_inputs = json.dumps(inputs.as_dict(), ensure_ascii=False)[:500]
    record.computed_hours = recognised.hours


def inputs_of(record):
    try:
        d = json.loads(record.rule_inputs or "{}")
    except ValueError:
        d = {}
    return Inputs(hours=d.get("hours"), days=d.get("days"), addons=tuple(d.get("addons") or ()),
                  level=d.get("level"), rank=d.get("rank"))


# ------------------------------------------------------------ console edits


def pending_affected(year, code):
    """Pending declarations (待核准) of `year` with form `code`: what an edit of this year's rule touches."""
    clause = _form_clause(code) if code in LearningForm.__members__ else (HourRecord.form_code == code)
    return db.session.execute(
        select(func.count()).select_from(HourRecord)
        .where(HourRecord.year == int(year), HourRecord.status == Status.SUBMITTED, clause)).scalar()


def _snapshot(row):
    if row is None:
        return None
    return {f: audit._jsonable(getattr(row, f)) for f in ("code", "version") + EDIT_FIELDS}


def parse_fields(form):
    """Console form values -> {field: typed value}; ValidationFailed on junk numbers / JSON."""
    errors = []
    values = {}
    values["name"] = (form.get("name") or "").strip()
    values["national_form"] = LearningForm.__members__.get((form.get("national_form") or "OTHER").strip(),
                                                           LearningForm.OTHER)
    cats = form.getlist("categories") if hasattr(form, "getlist") else form.get("categories") or []
    if isinstance(cats, str):
        cats = cats.split(",")
    values["categories"] = ",".join(c for c in CATEGORIES if c in cats)
    values["kind"] = (form.get("kind") or "").strip()
    params = form.get("params") or "{}"
    field_errors = {}
    if "params" not in form:
        # The console's form: the parameters as fields that fit the kind.
        values["params"] = params_from_fields(values["kind"], form, field_errors)
        errors.extend(field_errors.values())
    elif isinstance(params, dict):
        values["params"] = params
    else:
        try:
            values["params"] = json.loads(params)
            if not isinstance(values["params"], dict):
                raise ValueError
        except ValueError:
            errors.append(_("计算参数须为 JSON 对象"))
            values["params"] = {}
    for key, label in (("cap_record", _("每项上限")), ("cap_year", _("每年上限"))):
        v = form.get(key)
        if v in (None, ""):
            values[key] = None
            continue
        try:
            values[key] = Decimal(str(v).strip())
            if not values[key].is_finite():
                raise ValueError
        except Exception:
            errors.append(_("%(label)s须为数字", label=label))
            values[key] = None
    values["proof_text"] = (form.get("proof_text") or "").strip() or None
    values["active"] = str(form.get("active", "")).lower() in ("1", "y", "on", "true", "yes")
    try:
        values["sort"] = int(form.get("sort") or 0)
    except ValueError:
        values["sort"] = 0
    values["note"] = (form.get("note") or "").strip()[:200] or None
    if errors:
        raise ValidationFailed("；".join(dict.fromkeys(str(e) for e in errors)), errors=field_errors)
    return values


# ------------------------------------------------------------ parameters as form fields
#
# The console edits a rule's computation parameters (services.rules) through
# fields that fit its kind: per_day; factor; base, single_addon and the add-on
# rows addon_code / addon_name / addon_hours; the table rows table_level /
# table_rank / table_hours.  Blank rows are ignored.

def _getlist(form, key):
    if hasattr(form, "getlist"):
        return form.getlist(key)
    v = form.get(key)
    return v if isinstance(v, (list, tuple)) else ([] if v is None else [v])


def _finite_decimal(text):
    """`text` as a finite Decimal, or None when it is not a number."""
    try:
        d = Decimal(text)
    except ArithmeticError:
        return None
    return d if d.is_finite() else None


def _figure_json(d):
    return int(d) if d == d.to_integral() else float(d)


def _field_number(form, key, label, errors, field_name=None):
    raw = str(form.get(key) or "").strip()
    if not raw:
        errors.setdefault(field_name or key, _("请填写%(label)s", label=label))
        return None
    try:
        d = Decimal(raw)
        if not d.is_finite():
            raise ValueError
    except Exception:
        errors.setdefault(field_name or key, _("%(label)s须为数字", label=label))
        return None
    return d


def params_from_fields(kind, form, errors):
    """The params of a rule of `kind` from the console's fields; problems go to
    errors[field] in Chinese (range checks are rules.validate's)."""
    if kind == "PER_DAY":
        d = _field_number(form, "per_day", _("每天学时"), errors)
        return {"per_day": _figure_json(d)} if d is not None else {}
    if kind == "MULTIPLE":
        d = _field_number(form, "factor", _("倍数"), errors)
        return {"factor": _figure_json(d)} if d is not None else {}
    if kind == "FIXED":
        raw = str(form.get("base") or "").strip()
        base = _field_number(form, "base", _("每次固定学时"), errors) if raw else Decimal(0)
        params = {"base": _figure_json(base) if base is not None else 0}
        if str(form.get("single_addon") or "").lower() in ("1", "y", "on", "true", "yes"):
            params["single_addon"] = True
        addons, used = [], set()
        rows = zip(_getlist(form, "addon_code"), _getlist(form, "addon_name"), _getlist(form, "addon_hours"))
        for n, (code, name, hours) in enumerate(rows, start=1):
            code, name, hours = (str(x or "").strip() for x in (code, name, hours))
            if not (code or name or hours):
                continue
            if not name or not hours:
                errors.setdefault("addons", _("加项第%(n)d行：请填写名称和学时", n=n))
                continue
            h = _finite_decimal(hours)
            if h is None:
                errors.setdefault("addons", _("加项第%(n)d行：学时须为数字", n=n))
                continue
            if not code:  # a new add-on: a code of its own
                code = next(f"ADD{i}" for i in range(1, 100) if f"ADD{i}" not in used and
                            f"ADD{i}" not in _getlist(form, "addon_code"))
            used.add(code)
            addons.append({"code": code, "name": name, "hours": _figure_json(h)})
        if addons:
            params["addons"] = addons
        return params
    if kind == "TABLE":
        table = {}
        rows = zip(_getlist(form, "table_level"), _getlist(form, "table_rank"), _getlist(form, "table_hours"))
        for n, (level, rank, hours) in enumerate(rows, start=1):
            level, rank, hours = (str(x or "").strip() for x in (level, rank, hours))
            if not (level or rank or hours):
                continue
            if not level or not rank or not hours:
                errors.setdefault("table", _("认定表第%(n)d行：请填写级别、名次和学时", n=n))
                continue
            h = _finite_decimal(hours)
            if h is None:
                errors.setdefault("table", _("认定表第%(n)d行：学时须为数字", n=n))
                continue
            if rank in table.get(level, {}):
                errors.setdefault("table", _("认定表中“%(level)s · %(rank)s”重复", level=level, rank=rank))
                continue
            table.setdefault(level, {})[rank] = _figure_json(h)
        return {"table": table}
    return {}


def param_fields(params):
    """The console's field values of stored params (for the edit form)."""
    p = params or {}

    def show(v):
        try:
            return fmt(v) if v not in (None, "") else ""
        except Exception:
            return str(v)

    return {
        "per_day": show(p.get("per_day")), "factor": show(p.get("factor")), "base": show(p.get("base")),
        "single_addon": bool(p.get("single_addon")),
        "addons": [{"code": str(a.get("code", "")), "name": str(a.get("name", "")), "hours": show(a.get("hours"))}
                   for a in (p.get("addons") or []) if isinstance(a, dict)],
        "table": [{"level": lv, "rank": r, "hours": show(h)}
                  for lv, row in (p.get("table") or {}).items() if isinstance(row, dict) for r, h in row.items()],
    }


def raw_param_fields(form):
    """The console's field values as posted (shown again after an error or a preview)."""
    return {
        "per_day": form.get("per_day", ""), "factor": form.get("factor", ""), "base": form.get("base", ""),
        "single_addon": bool(form.get("single_addon")),
        "addons": [{"code": c, "name": n, "hours": h} for c, n, h in zip(
            _getlist(form, "addon_code"), _getlist(form, "addon_name"), _getlist(form, "addon_hours")) if c or n or h],
        "table": [{"level": lv, "rank": r, "hours": h} for lv, r, h in zip(
            _getlist(form, "table_level"), _getlist(form, "table_rank"), _getlist(form, "table_hours"))
                  if lv or r or h],
    }


def save_rule(year, code, values, *, user=None):
    """Add or edit the rule of form `code` in `year`: a new version; the old one
    is kept for the records recognised under it.  Returns (row, pending
    declarations of that year with that form).  Raises ValidationFailed (Chinese,
    all problems at once).  Audited with old and new values.  The caller commits."""
    year = int(year)
    code = (code or "").strip()
    rule = FormRule(code=code, name=values["name"], categories=tuple(c for c in values["categories"].split(",") if c),
                    kind=values["kind"], params=values["params"], cap_record=values["cap_record"],
                    cap_year=values["cap_year"], proof_text=values["proof_text"] or "", active=values["active"])
    problems = validate(rule)
    if not (2000 <= year <= 2100):
        problems.insert(0, ("year", _("年度不正确")))
    if problems:
        raise ValidationFailed("；".join(dict.fromkeys(str(m) for _f, m in problems)), errors=dict(problems))
    old = db.session.execute(
        select(LearningFormRule).where(LearningFormRule.year == year, LearningFormRule.code == code,
                                       LearningFormRule.is_current.is_(True))).scalar_one_or_none()
    if old is None and values.get("_new") is False:
        raise ValidationFailed(_("规则已被他人修改，请刷新后重试"))
    before = _snapshot(old)
    version = 1
    if old is not None:
        version = (db.session.execute(
            select(func.max(LearningFormRule.version)).where(LearningFormRule.year == year,
                                                             LearningFormRule.code == code)).scalar() or 0) + 1
        # Conditional: two administrators editing the same rule cannot both win.
        done = db.session.execute(
            update(LearningFormRule).where(LearningFormRule.id == old.id, LearningFormRule.is_current.is_(True))
            .values(is_current=False).execution_options(synchronize_session=False)).rowcount
        if done != 1:
            raise ValidationFailed(_("规则已被他人修改，请刷新后重试"))
    row = LearningFormRule(year=year, code=code, version=version, is_current=True,
                           updated_at=datetime.datetime.utcnow(), updated_by_id=getattr(user, "id", None))
    for f in EDIT_FIELDS:
        v = values[f]
        setattr(row, f, json.dumps(v, ensure_ascii=False) if f == "params" else v)
    db.session.add(row)
    db.session.flush()
    pending = pending_affected(year, code)
    after = _snapshot(row)
    changed = {k for k in after if before is None or before.get(k) != after[k]} - {"version"}
    audit.record("edit_rule" if old is not None else "add_rule", "LearningFormRule", row.id, user=user,
                 old=None if before is None else {k: before[k] for k in changed | {"version"}},
                 new={**{k: after[k] for k in changed | {"version"}}, "year": year, "code": code},
                 pending_affected=pending)
    _cache().clear()
    return row, pending


def copy_year(source, target, *, user=None):
    """Start `target`'s catalogue as a copy of `source`'s current rules (version 1
    each).  Returns the number of forms copied; ValidationFailed when `target`
    already has a catalogue or `source` has none.  Audited.  The caller commits."""
    source, target = int(source), int(target)
    if db.session.execute(select(LearningFormRule.id).where(LearningFormRule.year == target).limit(1)).first():
        raise ValidationFailed(_("%(year)s年度已有学时认定标准，不能再复制", year=target))
    rows = db.session.execute(select(LearningFormRule).where(
        LearningFormRule.year == source, LearningFormRule.is_current.is_(True))).scalars().all()
    if not rows:
        raise ValidationFailed(_("%(year)s年度没有学时认定标准可复制", year=source))
    now = datetime.datetime.utcnow()
    for r in rows:
        db.session.add(LearningFormRule(
            year=target, code=r.code, version=1, is_current=True, updated_at=now,
            updated_by_id=getattr(user, "id", None), **{f: getattr(r, f) for f in EDIT_FIELDS}))
    db.session.flush()
    audit.record("copy_rules", "LearningFormRule", None, user=user,
                 new={"from": source, "to": target, "forms": len(rows)})
    _cache().clear()
    return len(rows)


def newest_rule_id():
    """The highest rule version id (0: none): changes with every edit or copy."""
    return db.session.execute(select(func.coalesce(func.max(LearningFormRule.id), 0))).scalar()


def years():
    """Years that have a catalogue, newest first."""
    return [y for (y,) in db.session.execute(
        select(LearningFormRule.year).distinct().order_by(LearningFormRule.year.desc()))]


# ------------------------------------------------------------ demo example

# The example table of issue 20 (city rules under the Jiangsu regime; figures for
# the demo, not law).  (code, name, national form, categories, kind, params,
# cap per record, cap per year, proof)
EXAMPLE = (
    ("TRAIN_DAY", "培训、研讨（按天）", "TRAIN_ONSITE", "PRO,PUB", "PER_DAY", {"per_day": 8}, None, None,
     "培训通知或结业证书，注明起止日期"),
    ("TRAIN_DAY_ONLY", "培训、研讨（仅知天数）", "TRAIN_ONSITE", "PRO,PUB", "PER_DAY", {"per_day": 4}, None, None,
     "参训证明"),
    ("ONLINE", "网络课件学习", "TRAIN_ONLINE", "PRO,PUB", "DECLARED", {}, 200, None, "学习平台的学时证明（课件标明的学时）"),
    ("CONF_NATIONAL", "参加全国学术会议", "CONFERENCE", "PRO", "FIXED",
     {"base": 10, "single_addon": True, "addons": [
         {"code": "PAPER_LT2000", "name": "报告论文（2000字以下）", "hours": 20},
         {"code": "PAPER_GE2000", "name": "报告论文（2000字以上）", "hours": 30}]}, None, None,
     "会议通知、参会证明；报告论文的附论文"),
    ("CONF_PROVINCE", "参加省级学术会议", "CONFERENCE", "PRO", "FIXED",
     {"base": 8, "single_addon": True, "addons": [
         {"code": "PAPER_LT2000", "name": "报告论文（2000字以下）", "hours": 15},
         {"code": "PAPER_GE2000", "name": "报告论文（2000字以上）", "hours": 25}]}, None, None,
     "会议通知、参会证明；报告论文的附论文"),
    ("TEACH", "讲授继续教育课程", "OTHER", "PRO,PUB", "MULTIPLE", {"factor": 2}, None, None, "授课通知或课程安排"),
    ("LECTURE", "举办专题讲座", "OTHER", "PRO", "MULTIPLE", {"factor": 3}, None, None, "讲座通知"),
    ("ABROAD", "出国（境）培训", "STUDY", "PRO", "PER_DAY", {"per_day": 8}, 30, 90, "出国（境）批件及培训证明"),
    ("EXAM", "参加专业考试（每科合格）", "OTHER", "PRO", "FIXED", {"base": 20}, None, None, "成绩合格证明"),
    ("PAPER", "发表论文", "RESEARCH", "PRO", "TABLE",
     {"table": {"核心期刊": {"第一作者": 40, "第二作者": 20, "其他作者": 10},
                "省级期刊": {"第一作者": 20, "第二作者": 10, "其他作者": 5}}}, None, 80, "刊物封面、目录及论文"),
    ("PROJECT", "承担科研项目", "RESEARCH", "PRO", "TABLE",
     {"table": {"国家级": {"主持": 60, "参与": 30}, "省级": {"主持": 40, "参与": 20},
                "市级": {"主持": 20, "参与": 10}}}, None, None, "立项或结题文件"),
)


def seed_example(year, *, replace=False):
    """Add the example table to the catalogue of `year` (demo data), after the
    forms already there (`replace`: retire those, inactive; records keep their
    rules either way).  Returns the number of example forms."""
    year = int(year)
    now = datetime.datetime.utcnow()
    if replace:
        db.session.execute(update(LearningFormRule).where(LearningFormRule.year == year)
                           .values(active=False).execution_options(synchronize_session=False))
    for i, (code, name, nat, cats, kind, params, cap_r, cap_y, proof) in enumerate(EXAMPLE):
        db.session.add(LearningFormRule(
            year=year, code=code, version=1, is_current=True, name=name, national_form=LearningForm[nat],
            categories=cats, kind=kind, params=json.dumps(params, ensure_ascii=False),
            cap_record=cap_r, cap_year=cap_y, proof_text=proof, active=True, sort=1000 + i * 10, note=EXAMPLE_NOTE,
            updated_at=now))
    db.session.flush()
    _cache().clear()
    return len(EXAMPLE)


# ------------------------------------------------------------ imports


def _key(text):
    from app.services.columns import header_key

    return header_key(str(text or ""))


def form_choices(year, categories=CATEGORIES):
    """Names of `year`'s active forms that count for any of `categories` (the
    import templates' drop-down of 学习形式), in display order."""
    cats = {getattr(c, "name", c) for c in categories}
    return [r.name for r in catalogue(year) if cats & set(r.categories)]


def resolve_form(year, text):
    """The current FormRule of `year` an import cell names (active or not, so that
    a stopped form is refused as such), or None.  A cell matches a form's name
    (either paren width, spaces ignored), else its code, else a national
    learning form's label whose code is in the catalogue."""
    key = _key(text)
    if not key:
        return None
    forms = catalogue(year, active_only=False)
    for r in forms:
        if _key(r.name) == key:
            return r
    for r in forms:
        if r.code.upper() == key.upper():
            return r
    for member in LearningForm:
        if _key(member.value) == key:
            return next((r for r in forms if r.code == member.name), None)
    return None


def used_by_persons(keys):
    """{(person id, year, form code): hours held, pending or approved} for the
    given keys (the per-form yearly cap of an import, counted in a few grouped
    queries).  A record from before the rules counts under its learning form's code."""
    out = {k: Decimal(0) for k in keys}
    by_year_code = {}
    for pid, year, code in keys:
        by_year_code.setdefault((int(year), code), set()).add(pid)
    for (year, code), pids in by_year_code.items():
        clause = _form_clause(code) if code in LearningForm.__members__ else (HourRecord.form_code == code)
        pids = sorted(pids)
        for i in range(0, len(pids), 900):
            rows = db.session.execute(
                select(HourRecord.person_id, func.coalesce(func.sum(HourRecord.hours), 0))
                .where(HourRecord.person_id.in_(pids[i:i + 900]), HourRecord.year == year, clause,
                       HourRecord.status.in_(CAP_STATUSES))
                .group_by(HourRecord.person_id)).all()
            for pid, hours in rows:
                out[(pid, year, code)] = Decimal(hours or 0)
    return out
