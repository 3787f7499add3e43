"""个人申报: an applicant's declaration of hours, from draft to submission.

The declaration is an HourRecord with source DECLARED owned by the applicant's
person.  It is routed by `records.place_record`: to the person's current unit, which
for a freelancer is the HR service agency holding the file.  Status changes go
through app.services.approval (the one status machine); edits are conditional on
the record still being editable, and audited with old and new values.
"""
import datetime
import json

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select, update

from app.extensions import db
from app.models import Category, HourRecord, LearningForm, Person, PersonYearTotal, Source, Status
from app.security.scope import get_scoped, scope_clause
from app.services import approval, audit, requirement, standards, validators
from app.services import rules
from app.services.errors import InvalidTransition, OutOfScope, ValidationFailed
from app.services.records import place_record, validate_record

FIELDS = ("year", "category", "learning_form", "course_name", "organizer_name",
          "start_date", "end_date", "hours", "form_code", "rule_id", "rule_inputs", "computed_hours")
RULE_FIELDS = ("rule_id", "rule_inputs", "computed_hours")
AUDIT_FIELDS = FIELDS + ("person_id", "unit_id", "status")
MAX_TEXT = 200


def _date(value):
    value = validators.normalize_text(value)
    if not value:
        return None
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        return False


def _enum(cls, value):
    value = validators.normalize_text(value)
    return cls.__members__.get(value)


def parse(form, person_id=None, record_id=None):
    """Read a submitted declaration form.  Returns (values, errors): values by
    field (typed where valid), errors {field: Chinese message}.  Every field is
    checked, so the form can show all problems at once.  The hours are those the
    year's 学时认定标准 recognise for the form's quantities (services.rules):
    whatever hours the client computed are ignored."""
    errors = {}
    values = {}
    year_text = validators.normalize_text(form.get("year"))
    try:
        values["year"] = int(year_text)
        if not 2000 <= values["year"] <= 2100:
            raise ValueError
    except ValueError:
        values["year"] = None
        errors["year"] = _("请选择认定年度") if not year_text else _("认定年度不正确")
    values["category"] = _enum(Category, form.get("category"))
    if values["category"] is None:
        errors["category"] = _("请选择科目类别")
    code = validators.normalize_text(form.get("learning_form"))
    values["form_code"] = code or None
    values["learning_form"] = None
    rule = standards.rule_for(values["year"], code) if code and values["year"] else None
    if not code:
        errors["learning_form"] = _("请选择学习形式")
    elif values["year"] and (rule is None or not rule.active):
        errors["learning_form"] = _("%(year)s年度的学时认定标准中没有这一学习形式", year=values["year"])
    elif rule is not None:
        values["learning_form"] = LearningForm.__members__.get(rule.national_form, LearningForm.OTHER)
    for name, message in (("course_name", _("请填写课程（项目）名称")), ("organizer_name", _("请填写举办单位"))):
        text = validators.normalize_text(form.get(name))
        values[name] = text
        if not text:
            errors[name] = message
        elif len(text) > MAX_TEXT:
            errors[name] = _("不能超过%(n)d个字", n=MAX_TEXT)
    for name, message in (("start_date", _("请填写开始日期")), ("end_date", _("请填写结束日期"))):
        d = _date(form.get(name))
        values[name] = d or None
        if d is None:
            errors[name] = message
        elif d is False:
            errors[name] = _("日期格式应为 年-月-日")
    getlist = getattr(form, "getlist", None)
    inputs = rules.Inputs.from_form(lambda n: validators.normalize_text(form.get(n)), getlist)
    values["inputs"] = inputs
    values["rule_inputs"] = values["computed_hours"] = values["rule_id"] = None
    values["hours"] = validators.normalize_text(form.get("hours"))
    if rule is not None and rule.active and rule.quantity() == "hours":
        # The hours entered keep the record's own checks (range, half-hour steps).
        try:
            validators.check_hours(form.get("hours"), current_app.config["MAX_HOURS_PER_RECORD"])
        except ValidationFailed as exc:
            errors["hours"] = exc.message
    if rule is not None and rule.active and "hours" not in errors:
        try:
            recognised = standards.apply(person_id, values["year"], code, inputs,
                                         values["category"], exclude_id=record_id)
            values["hours"] = validators.check_hours(recognised.hours, current_app.config["MAX_HOURS_PER_RECORD"])
            values["rule_id"], values["computed_hours"] = rule.rule_id, recognised.hours
            values["rule_inputs"] = json.dumps(inputs.as_dict(), ensure_ascii=False)[:500]
            values["recognised"] = recognised
        except rules.RuleRefused as exc:
            errors[exc.field if exc.field in ("category", "learning_form", "days", "addons", "level", "rank")
                   else "hours"] = exc.message
        except ValidationFailed as exc:
            errors["hours"] = exc.message
    start, end, year = values["start_date"], values["end_date"], values["year"]
    if start and end and "end_date" not in errors:
        try:
            validators.check_dates_in_year(start, end, year)
        except ValidationFailed as exc:
            errors["end_date" if end < start or end > datetime.date.today() else "start_date"] = exc.message
    return values, errors


def _check(record, values, errors):
    """The shared record rules (records.validate_record) and the duplicate rule."""
    if errors:
        raise ValidationFailed(_("申报内容有误，请按提示修改"), errors=errors)
    try:
        validate_record(record)
    except ValidationFailed as exc:
        raise ValidationFailed(exc.message, errors={"form": exc.message})
    dup = db.session.execute(
        select(HourRecord.id).where(
            HourRecord.person_id == record.person_id, HourRecord.year == record.year,
            HourRecord.category == record.category, HourRecord.course_name == record.course_name,
            HourRecord.start_date == record.start_date,
            HourRecord.id != (record.id or 0),
        )
    ).first()
    if dup is not None:
        message = _("已存在相同的学时记录（同一年度、科目类别、课程名称和开始日期）")
        raise ValidationFailed(message, errors={"course_name": message})


def person_of(user):
    """The applicant's Person, or ValidationFailed when the account has none."""
    person = db.session.get(Person, user.person_id) if getattr(user, "person_id", None) else None
    if person is None:
        raise ValidationFailed(_("您的账号未关联专业技术人员信息，不能申报学时"))
    if person.unit_id is None:
        raise ValidationFailed(_("您尚未关联单位或人才服务机构，不能申报学时"))
    from app.services.accounts import person_attachment_confirmed

    if not person_attachment_confirmed(person):
        # Declarations reach a unit only once it has confirmed the person (issue 6).
        raise ValidationFailed(_("您的单位（或人才服务机构）尚未确认您的归属，暂不能申报学时"))
    return person


def create_draft(user, form, commit=True):
    """Save a new declaration as a draft of the user's person, routed to the
    person's current unit (or agency).  Returns the record; raises ValidationFailed
    (details['errors'] by field).  Commits unless commit=False (the declaration
    form adds its proofs and submits in the same transaction)."""
    person = person_of(user)
    values, errors = parse(form, person.id)
    record = HourRecord(person=person, person_id=person.id, source=Source.DECLARED,
                        status=Status.DRAFT, created_by_id=user.id)
    for name in FIELDS:
        setattr(record, name, values[name])
    try:
        _check(record, values, errors)
        place_record(record, person)
        db.session.add(record)
        db.session.flush()
        audit.record("declare", "HourRecord", record.id, new=audit.snapshot(record, AUDIT_FIELDS),
                     unit_id=record.unit_id, region_code=record.region_code, user=user)
        if commit:
            db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return record


def get_own(record_id, scope=None):
    """The applicant's own record `record_id`, or OutOfScope."""
    record = get_scoped(HourRecord, record_id, approval.applicant_scope(scope))
    if record is None:
        raise OutOfScope(_("记录不存在或不在您的权限范围内"))
    return record


def update_draft(record_id, user, form, scope=None):
    """Edit a draft, returned or withdrawn declaration.  Audited with the old and
    new values of the changed fields.  Raises ValidationFailed, InvalidTransition,
    OutOfScope.  Commits."""
    scope = approval.applicant_scope(scope)
    record = get_own(record_id, scope)
    if record.status not in approval.EDITABLE:
        raise InvalidTransition(_("当前状态为“%(status)s”，不能修改", status=_(record.status.value)))
    values, errors = parse(form, record.person_id, record.id)
    old = audit.snapshot(record, FIELDS)
    probe = HourRecord(id=record.id, person_id=record.person_id, person=record.person)
    for name in FIELDS:
        setattr(probe, name, values[name])
    # `probe` is never added to the session: it only carries the new values
    # through the shared checks.
    _check(probe, values, errors)
    new = audit.snapshot(probe, FIELDS)
    changes = {k: getattr(probe, k) for k in FIELDS if new[k] != old[k]}
    # The rule bookkeeping follows the visible fields; the audit shows those.
    shown = [k for k in changes if k not in RULE_FIELDS]
    if not shown:
        return record
    try:
        # Conditional on the status, so an edit never lands on a record that was
        # submitted (in another tab) in the meantime.
        res = db.session.execute(
            update(HourRecord)
            .where(HourRecord.id == record.id, HourRecord.status.in_(approval.EDITABLE),
                   scope_clause(HourRecord, scope))
            .values(updated_at=datetime.datetime.utcnow(), **changes)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != 1:
            raise InvalidTransition(_("该申报的状态已变化，不能修改，请刷新后查看"))
        audit.record("edit", "HourRecord", record.id,
                     old={k: old[k] for k in shown}, new={k: new[k] for k in shown},
                     unit_id=record.unit_id, region_code=record.region_code, user=user)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    db.session.expire_all()
    return get_own(record_id, scope)


def submit(record_id, user, scope=None):
    """Submit (or resubmit after a return / withdrawal) to the reviewer.  A
    declaration needs at least one proof file.  Returns the TransitionResult."""
    record = get_own(record_id, scope)
    if record.status in approval.EDITABLE and not record.attachments:
        raise ValidationFailed(_("请先上传证明材料再提交"))
    return approval.decide_one(record.id, "submit", user=user, scope=scope)


def withdraw(record_id, user, scope=None):
    """Withdraw a pending declaration (it can then be edited and resubmitted)."""
    get_own(record_id, scope)
    return approval.decide_one(record_id, "withdraw", user=user, scope=scope)


def my_records(person_id, year):
    """The person's records of a year, newest first (any status)."""
    return db.session.execute(
        select(HourRecord)
        .where(HourRecord.person_id == person_id, HourRecord.year == year)
        .order_by(HourRecord.start_date.desc(), HourRecord.id.desc())
    ).unique().scalars().all()


def approved_in_year_of(record_id):
    """Approved hours of the record's person in the record's year (the reviewer's
    "earlier hours" next to a pending declaration).  The caller has loaded the
    record through the scope."""
    return approved_in_year_of_many([record_id])[record_id]


def approved_in_year_of_many(record_ids):
    """{record id: approved hours of its person in its year} for these records, in
    one query (a page of the to-do grid; from person_year_total).  The caller has
    scoped the ids."""
    T = PersonYearTotal
    totals = dict.fromkeys(record_ids, 0)
    if record_ids:
        totals.update(db.session.execute(
            select(HourRecord.id, T.professional + T.public)
            .join(T, (T.person_id == HourRecord.person_id) & (T.year == HourRecord.year))
            .where(HourRecord.id.in_(record_ids), requirement.has_hours())
        ).all())
    return totals


def years_of(person_id):
    """Years in which the person has any record, newest first, always with this year."""
    years = set(db.session.execute(
        select(HourRecord.year).where(HourRecord.person_id == person_id).distinct()
    ).scalars())
    years.add(datetime.date.today().year)
    return sorted(years, reverse=True)
