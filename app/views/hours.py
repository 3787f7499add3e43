import datetime

from flask import g
from flask_babel import lazy_gettext as _l

from app.models import HourRecord, Status
from app.security.scope import ScopeFilter
from app.fab.datamodel import CEInterface
from app.fab.labels import HOUR_LABELS
from app.services.records import place_record, validate_record
from app.views.base import ScopedModelView
from app.views.formatting import hours_text, id_number_for_list, translated
from app.views.validation import DatesInYear, HoursValid, NotADuplicateRecord, YearValid


class HourRecordView(ScopedModelView):
    datamodel = CEInterface(HourRecord)
    list_title = _l("学时记录")
    show_title = _l("学时记录详情")
    add_title = _l("新增学时记录")
    edit_title = _l("编辑学时记录")
    list_columns = [
        "person.name", "person.id_number", "year", "category", "learning_form",
        "course_name", "hours", "start_date", "end_date", "source", "status", "unit.name",
    ]
    show_columns = [
        "person", "person.id_number", "year", "category", "learning_form", "course_name",
        "organizer_name", "start_date", "end_date", "hours", "source", "status", "unit",
        "region_code", "reported_by_unit", "late_report", "submitted_at", "reviewer",
        "reviewed_at", "review_comment", "revoke_reason", "created_at",
    ]
    # No status field: statuses change only through the status machine
    # (services.approval); a record an administrator registers here is approved.
    add_columns = edit_columns = [
        "person", "year", "category", "learning_form", "course_name", "organizer_name",
        "start_date", "end_date", "hours", "source",
    ]
    search_columns = [
        "year", "category", "status", "source", "learning_form", "unit", "region_code",
        "course_name", "person",
    ]
    order_columns = ["year", "hours", "start_date", "end_date", "course_name"]
    base_order = ("id", "desc")
    label_columns = HOUR_LABELS
    formatters_columns = {
        "person.id_number": id_number_for_list,
        "category": translated,
        "learning_form": translated,
        "source": translated,
        "status": translated,
        "hours": hours_text,
    }
    add_form_query_rel_fields = edit_form_query_rel_fields = {"person": [["id", ScopeFilter, None]]}
    search_form_query_rel_fields = {
        "unit": [["id", ScopeFilter, None]],
        "person": [["id", ScopeFilter, None]],
    }
    validators_columns = {
        "hours": [HoursValid()],
        "year": [YearValid()],
        "end_date": [DatesInYear()],
        "course_name": [NotADuplicateRecord()],
    }
    audit_fields = (
        "person_id", "year", "category", "learning_form", "course_name", "organizer_name",
        "start_date", "end_date", "hours", "source", "status",
    )

    def pre_add(self, item):
        item.status = Status.APPROVED
        item.reviewer_id = g.user.id
        item.reviewed_at = datetime.datetime.utcnow()
        item.created_by_id = g.user.id
        super().pre_add(item)

    def validate_item(self, item):
        validate_record(item)
        place_record(item)

    def audit_scope(self, item):
        return {"unit_id": item.unit_id, "region_code": item.region_code}
