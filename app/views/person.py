from flask_babel import lazy_gettext as _l

from sqlalchemy import inspect as sa_inspect

from app.models import Person
from app.security.scope import ScopeFilter
from app.services.errors import ValidationFailed
from app.services.persons import attach_person
from app.services.validators import check_id_number
from app.views.base import ScopedModelView
from app.fab.datamodel import CEInterface
from app.views.formatting import id_number_for_list, translated, unit_history_text
from app.views.validation import IdNumberValid


class PersonView(ScopedModelView):
    datamodel = CEInterface(Person)
    list_title = _l("专业技术人员")
    show_title = _l("人员信息")
    add_title = _l("新增人员")
    edit_title = _l("编辑人员")
    list_columns = ["name", "id_type", "id_number", "unit", "title", "specialty", "is_freelancer"]
    show_columns = ["name", "id_type", "id_number", "unit", "title", "specialty", "phone", "is_freelancer", "history"]
    add_columns = edit_columns = ["name", "id_type", "id_number", "unit", "title", "specialty", "phone"]
    search_columns = ["name", "id_number", "unit", "title", "specialty", "is_freelancer"]
    order_columns = ["name", "id_number", "title"]
    base_order = ("id", "desc")
    label_columns = {
        "name": _l("姓名"),
        "id_type": _l("证件类型"),
        "id_number": _l("证件号码"),
        "unit": _l("所在单位（档案存放机构）"),
        "title": _l("职称"),
        "specialty": _l("专业"),
        "phone": _l("联系电话"),
        "is_freelancer": _l("自由职业"),
        "history": _l("单位变动记录"),
    }
    formatters_columns = {"id_number": id_number_for_list, "id_type": translated, "history": unit_history_text}
    add_form_query_rel_fields = edit_form_query_rel_fields = search_form_query_rel_fields = {
        "unit": [["id", ScopeFilter, None]]
    }
    audit_fields = ("name", "id_type", "id_number", "unit_id", "title", "specialty", "phone")
    validators_columns = {"id_number": [IdNumberValid()]}

    def validate_item(self, item):
        if not item.name or not item.name.strip():
            raise ValidationFailed(_l("请填写姓名"))
        item.name = item.name.strip()
        item.id_number = check_id_number(item.id_type, item.id_number)
        # A new unit on the form is a move: the history gets a period and the
        # person's records follow (their unit/region copies decide who sees them).
        added = sa_inspect(item).attrs.unit.history.added
        new_unit = added[0] if added else None
        if new_unit is not None and new_unit.id != item.unit_id:
            attach_person(item, new_unit, note=str(_l("在人员信息中修改所在单位")))

    def audit_scope(self, item):
        unit = item.unit
        return {"unit_id": item.unit_id, "region_code": unit.region_code if unit else None}
