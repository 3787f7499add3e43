import datetime

from flask import g
from flask_babel import lazy_gettext as _l

from app.models import HourRecord, Status
from app.security.scope import ScopeFilter
from app.services.records import place_record, validate_record
from app.views.base import ScopedModelView
from app.views.datamodel import CEInterface
from app.views.formatting import hours_text, id_number_for_list, translated
from app.views.validation import DatesInYear, HoursValid, NotADuplicateRecord, YearValid

HOUR_LABELS = {
    "person": _l("姓名"),
    "person.name": _l("姓名"),
    "person.id_number": _l("证件号码"),
    "year": _l("认定年度"),
    "category": _l("科目类别"),
    "learning_form": _l("学习形式"),
    "course_name": _l("课程（项目）名称"),
    "organizer_name": _l("举办单位"),
    "start_date": _l("开始日期"),
    "end_date": _l("结束日期"),
    "hours": _l("学时"),
    "source": _l("来源"),
    "status": _l("状态"),
    "unit": _l("所在单位"),
    "unit.name": _l("所在单位"),
    "region_code": _l("所在区划"),
    "reviewer": _l("审核人"),
    "reviewed_at": _l("审核时间"),
    "review_comment": _l("审核意见"),
    "revoke_reason": _l("撤销原因"),
    "submitted_at": _l("提交时间"),
    "reported_by_unit": _l("上报单位"),
    "late_report": _l("逾期上报"),
    "created_at": _l("创建时间"),
    "attachments": _l("证明材料"),
}


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
