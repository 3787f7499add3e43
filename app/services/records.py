"""Rules about one hour record that every path (form, import, API) shares."""
from flask import current_app
from flask_babel import gettext as _

from app.services import validators
from app.services.errors import ValidationFailed


def place_record(record, person=None):
    """Copy the person's current unit and its region onto the record: the row scope
    and the grid filters read these columns (see models.hours.HourRecord)."""
    person = person or record.person
    unit = person.unit if person is not None else None
    record.unit_id = unit.id if unit is not None else None
    record.region_code = unit.region_code if unit is not None else None


def validate_record(record):
    """Check hours, dates and required fields of a filled record; normalise hours.
    Raises ValidationFailed with the first problem, in Chinese."""
    if record.person is None and record.person_id is None:
        raise ValidationFailed(_("请选择人员"))
    if not record.course_name or not record.course_name.strip():
        raise ValidationFailed(_("请填写课程（项目）名称"))
    if record.year is None:
        raise ValidationFailed(_("请填写认定年度"))
    if not (2000 <= int(record.year) <= 2100):
        raise ValidationFailed(_("认定年度不正确"))
    record.course_name = record.course_name.strip()
    record.hours = validators.check_hours(record.hours, current_app.config["MAX_HOURS_PER_RECORD"])
    validators.check_dates_in_year(record.start_date, record.end_date, record.year)


def find_duplicate(person_id, year, category, course_name, start_date, exclude_id=None):
    """The id of the record that already holds this (person, year, category, course
    name, start date) key (SPEC §2: one record), ignoring `exclude_id`; else None."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import HourRecord as H

    query = select(H.id).where(
        H.person_id == person_id, H.year == int(year), H.category == category,
        H.course_name == (course_name or "").strip(), H.start_date == start_date,
    )
    if exclude_id is not None:
        query = query.where(H.id != int(exclude_id))
    return db.session.execute(query.limit(1)).scalar()
