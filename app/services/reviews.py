"""年度审核 and 离职审核 (SPEC §3 flow 3).

A unit reviews each of its persons' year (totals per category and 达标, from
app.services.requirement); before a person leaves, the unit reviews them once more
and the person then moves to the new unit (or the agency holding the file) through
app.services.persons.attach_person: history intact, new declarations routed to the
new reviewer.  Reviews are PersonReview rows, audited.
"""
import datetime
from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import func, select

from app.extensions import db
from app.models import HourRecord, Person, PersonReview, ReviewKind, Status, Unit, UnitKind
from app.security.scope import get_scoped, scope_clause
from app.services import audit, requirement, validators
from app.services.approval import reviewer_scope
from app.services.errors import OutOfScope, ValidationFailed
from app.services.persons import attach_person

MAX_COMMENT = 500


@dataclass
class YearRow:
    person: Person
    totals: requirement.YearTotals
    review: PersonReview | None


def unit_for_review(unit_id=None, user=None, scope=None):
    """The unit whose persons the reviewer reviews: `unit_id` if given and in the
    reviewer's scope, else the user's own unit.  Raises OutOfScope."""
    scope = reviewer_scope(scope)
    wanted = unit_id or getattr(user, "unit_id", None)
    unit = get_scoped(Unit, wanted, scope) if wanted else None
    if unit is None:
        raise OutOfScope(_("单位不存在或不在您的权限范围内"))
    return unit


def year_rows(unit, year, scope=None):
    """Every person currently attached to `unit`, with approved hours of `year`
    per category, 达标, and the latest year-end review of that year (or None)."""
    scope = reviewer_scope(scope)
    persons = db.session.execute(
        select(Person).where(Person.unit_id == unit.id, scope_clause(Person, scope)).order_by(Person.name, Person.id)
    ).scalars().all()
    totals = requirement.totals_of([p.id for p in persons], year)
    reviews = {}
    for r in db.session.execute(
        select(PersonReview).where(PersonReview.unit_id == unit.id, PersonReview.year == year,
                                   PersonReview.kind == ReviewKind.YEAR_END)
        .order_by(PersonReview.reviewed_at)
    ).scalars():
        reviews[r.person_id] = r
    return [
        YearRow(p, totals[p.id], reviews.get(p.id))
        for p in persons
    ]


def _comment(text):
    text = (text or "").strip()
    if len(text) > MAX_COMMENT:
        raise ValidationFailed(_("意见不能超过%(n)d个字", n=MAX_COMMENT))
    return text or None


def _snapshot(review):
    return audit.snapshot(review, ("kind", "person_id", "unit_id", "year", "professional_hours",
                                   "public_hours", "met", "reviewer_id", "comment"))


def review_year(unit, year, person_ids, user, comment=None, scope=None):
    """年度审核 of the selected persons of `unit` for `year`: store (or refresh) the
    review with the current totals and 达标, by whom and when.  Persons outside the
    unit or the reviewer's scope are skipped.  Returns (reviewed, skipped).  Commits."""
    comment = _comment(comment)
    scope = reviewer_scope(scope)
    wanted = set()
    for pid in person_ids or ():
        try:
            wanted.add(int(pid))
        except (TypeError, ValueError):
            continue
    rows = {r.person.id: r for r in year_rows(unit, year, scope)}
    now = datetime.datetime.utcnow()
    reviewed = 0
    try:
        for pid in sorted(wanted & set(rows)):
            row = rows[pid]
            review = row.review
            old = _snapshot(review) if review is not None else None
            if review is None:
                review = PersonReview(kind=ReviewKind.YEAR_END, person_id=pid, unit_id=unit.id, year=year)
                db.session.add(review)
            review.professional_hours = row.totals.professional
            review.public_hours = row.totals.public
            review.met = row.totals.met
            review.reviewer_id = user.id
            review.reviewed_at = now
            review.comment = comment
            db.session.flush()
            audit.record("year_review", "PersonReview", review.id, old=old, new=_snapshot(review),
                         unit_id=unit.id, region_code=unit.region_code, user=user)
            reviewed += 1
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return reviewed, len(wanted) - reviewed


def find_target_unit(credit_code):
    """The unit a leaving person moves to, named by its unified social credit code
    (the reviewer need not see other units to name one).  Employers and HR service
    agencies only.  Raises ValidationFailed."""
    code = validators.check_credit_code(credit_code)
    unit = db.session.execute(select(Unit).where(Unit.credit_code == code)).scalar_one_or_none()
    if unit is None or not unit.approved:
        raise ValidationFailed(_("未找到统一社会信用代码为%(code)s的单位", code=code))
    if unit.kind not in (UnitKind.EMPLOYER, UnitKind.AGENCY):
        raise ValidationFailed(_("只能转入用人单位或人力资源服务机构"))
    return unit


def person_for_review(person_id, scope=None):
    person = get_scoped(Person, person_id, reviewer_scope(scope))
    if person is None:
        raise OutOfScope(_("人员不存在或不在您的权限范围内"))
    return person


def pending_count(person_id):
    return db.session.scalar(
        select(func.count(HourRecord.id)).where(HourRecord.person_id == person_id,
                                                 HourRecord.status == Status.SUBMITTED)
    )


def depart(person_id, target_credit_code, user, comment=None, scope=None, today=None):
    """离职审核: review the leaving person's current year for their unit, then move
    them to the unit (or agency) with `target_credit_code`.  Refused while the
    person has pending declarations (the current unit decides them first).
    Returns the PersonReview.  Commits."""
    comment = _comment(comment)
    person = person_for_review(person_id, scope)
    target = find_target_unit(target_credit_code)
    if target.id == person.unit_id:
        raise ValidationFailed(_("转入单位与当前单位相同"))
    pending = pending_count(person.id)
    if pending:
        raise ValidationFailed(_("该人员尚有%(n)d条待核准申报，请先核准或退回", n=pending))
    today = today or datetime.date.today()
    old_unit = person.unit
    totals = requirement.year_totals(person.id, today.year)
    try:
        review = PersonReview(
            kind=ReviewKind.DEPARTURE, person_id=person.id, unit_id=old_unit.id, year=today.year,
            professional_hours=totals.professional, public_hours=totals.public, met=totals.met,
            reviewer_id=user.id, reviewed_at=datetime.datetime.utcnow(), comment=comment,
        )
        db.session.add(review)
        db.session.flush()
        audit.record("departure_review", "PersonReview", review.id, new=_snapshot(review),
                     unit_id=old_unit.id, region_code=old_unit.region_code, user=user,
                     target_unit_id=target.id)
        # The move itself is audited by attach_person (for the new unit's scope).
        attach_person(person, target, start=today, note=_("离职审核后转出：%(unit)s", unit=old_unit.name))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return review
