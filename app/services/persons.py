"""Persons and their attachment to a unit (or to the agency holding their file)."""
import datetime

from sqlalchemy import update

from app.extensions import db
from app.models import HourRecord, PersonUnitHistory, UnitKind
from app.services import audit


def attach_person(person, unit, *, start=None, note=None):
    """Attach `person` to `unit` from `start` (today by default): close the open
    history period, open a new one, and move the scope columns of the person's
    records with them (their history stays intact).  The caller commits."""
    start = start or datetime.date.today()
    old_unit_id = person.unit_id
    for period in person.history:
        if period.end_date is None:
            period.end_date = start
    db.session.add(PersonUnitHistory(person=person, unit_id=unit.id, start_date=start, note=note))
    person.unit = unit
    person.unit_id = unit.id
    person.is_freelancer = unit.kind == UnitKind.AGENCY
    if person.id is not None:
        db.session.execute(
            update(HourRecord)
            .where(HourRecord.person_id == person.id)
            .values(unit_id=unit.id, region_code=unit.region_code)
            .execution_options(synchronize_session=False)
        )
        audit.record(
            "move_person", "Person", person.id,
            old={"unit_id": old_unit_id}, new={"unit_id": unit.id},
            unit_id=unit.id, region_code=unit.region_code,
        )
    return person
