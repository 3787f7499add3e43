"""WTForms validators for the grids' add/edit forms, built on the service checks.

They run in `form.validate()`, so a bad value comes back on the form, under its
field, in Chinese, with the user's input kept; `validate_item` in the views runs
the same rules again before anything is stored (the second line)."""
from flask import current_app
from flask_babel import gettext as _
from wtforms.validators import StopValidation, ValidationError

from app.services import validators as V
from app.services.errors import ValidationFailed
from app.services.records import find_duplicate


class Checked:
    """Run `check(value)` (a services.validators check_* function); store its
    normalised result in the field, report its message on the field."""

    def __init__(self, check):
        self.check = check

    def __call__(self, form, field):
        if field.data in (None, ""):
            return  # `required` is the job of FAB's own validator
        try:
            field.data = self.check(field.data)
        except ValidationFailed as e:
            raise StopValidation(str(e))


class IdNumberValid:
    """The number fits its ID type (resident IDs: GB 11643)."""

    def __call__(self, form, field):
        id_type = getattr(getattr(form, "id_type", None), "data", None)
        try:
            field.data = V.check_id_number(id_type, field.data)
        except ValidationFailed as e:
            raise StopValidation(str(e))


class HoursValid:
    def __call__(self, form, field):
        if field.data is None:
            return
        try:
            field.data = V.check_hours(field.data, current_app.config["MAX_HOURS_PER_RECORD"])
        except ValidationFailed as e:
            raise StopValidation(str(e))


class YearValid:
    def __call__(self, form, field):
        if field.data is None:
            return
        if not (2000 <= int(field.data) <= 2100):
            raise StopValidation(_("认定年度不正确"))


class DatesInYear:
    """On the end date: start <= end, both inside the declared year, not in the future."""

    def __call__(self, form, field):
        start = form.start_date.data
        year = form.year.data if hasattr(form, "year") else None
        if start is None or field.data is None:
            return
        try:
            V.check_dates_in_year(start, field.data, year)
        except ValidationFailed as e:
            raise ValidationError(str(e))


class NotADuplicateRecord:
    """On the course name: the same person, year, category, course name and start
    date is one record (SPEC §2)."""

    def __call__(self, form, field):
        person = form.person.data if hasattr(form, "person") else None
        year, category, start = form.year.data, form.category.data, form.start_date.data
        if person is None or not field.data or year is None or category is None or start is None:
            return
        if find_duplicate(person.id, year, category, field.data, start, getattr(form, "_id", None)):
            raise ValidationError(_("该人员已有相同的学时记录（同一年度、科目类别、课程名称和开始日期）"))
