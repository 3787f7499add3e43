"""The home page's figures: what waits for the signed-in user, in their scope."""
import datetime

from sqlalchemy import func, select

from app.extensions import db
from app.models import HourRecord, Person, Status, Unit
from app.security.scope import current_scope, scope_clause
from app.services import approval, requirement


def pending_declarations(scope=None):
    """Declarations waiting for the user's decision (their reviewer part of the scope)."""
    return db.session.execute(
        select(func.count(HourRecord.id)).where(
            HourRecord.status == Status.SUBMITTED, scope_clause(HourRecord, approval.reviewer_scope(scope))
        )
    ).scalar_one()


def pending_unit_registrations(scope=None):
    return db.session.execute(
        select(func.count(Unit.id)).where(Unit.approved.is_(False), scope_clause(Unit, scope))
    ).scalar_one()


def pending_attachments(scope=None):
    scope = scope or current_scope()
    if not scope.unit_ids and not scope.everything:
        return 0
    return db.session.execute(
        select(func.count(Person.id)).where(
            Person.pending_unit_id.isnot(None),
            Person.pending_unit_id.in_(scope.unit_ids) if not scope.everything else Person.id.isnot(None),
        )
    ).scalar_one()


def my_year(person_id, year=None):
    """The applicant's approved hours this year (YearTotals) and open declarations."""
    year = year or datetime.date.today().year
    totals = requirement.year_totals(person_id, year)
    open_count = db.session.execute(
        select(func.count(HourRecord.id)).where(
            HourRecord.person_id == person_id,
            HourRecord.status.in_((Status.DRAFT, Status.SUBMITTED, Status.RETURNED)),
        )
    ).scalar_one()
    return totals, open_count
