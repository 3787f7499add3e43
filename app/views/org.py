from flask_babel import lazy_gettext as _l
from wtforms import BooleanField

from app.models import Region, Unit
from app.services.errors import ValidationFailed
from app.services.validators import check_credit_code, check_region_code
from app.security.scope import ScopeFilter
from app.views.base import ScopedModelView
from app.fab.datamodel import CEInterface
from app.views.formatting import translated
from app.views.validation import Checked


class RegionView(ScopedModelView):
    datamodel = CEInterface(Region)
    list_title = _l("行政区划")
    show_title = _l("行政区划")
    add_title = _l("新增行政区划")
    edit_title = _l("编辑行政区划")
    list_columns = ["code", "name", "parent"]
    show_columns = ["code", "name", "parent"]
    add_columns = edit_columns = ["code", "name", "parent"]
    search_columns = ["code", "name"]
    order_columns = ["code", "name"]
    base_order = ("code", "asc")
    label_columns = {"code": _l("区划代码"), "name": _l("名称"), "parent": _l("上级区划")}
    page_size = 50
    audit_fields = ("code", "name", "parent_code")
    validators_columns = {"code": [Checked(check_region_code)]}

    def validate_item(self, item):
        item.code = check_region_code(item.code)


class UnitView(ScopedModelView):
    datamodel = CEInterface(Unit)
    list_title = _l("单位")
    show_title = _l("单位信息")
    add_title = _l("新增单位")
    edit_title = _l("编辑单位")
    list_columns = ["name", "credit_code", "kind", "region", "contact_name", "contact_phone", "approved"]
    show_columns = list_columns
    add_columns = edit_columns = ["name", "credit_code", "kind", "region", "contact_name", "contact_phone", "approved"]
    search_columns = ["name", "credit_code", "kind", "region_code", "approved"]
    order_columns = ["name", "credit_code", "kind"]
    base_order = ("name", "asc")
    label_columns = {
        "name": _l("单位名称"),
        "credit_code": _l("统一社会信用代码"),
        "kind": _l("单位类型"),
        "region": _l("所在区划"),
        "region_code": _l("所在区划"),
        "contact_name": _l("联系人"),
        "contact_phone": _l("联系电话"),
        "approved": _l("已审核"),
    }
    formatters_columns = {"kind": translated}
    add_form_query_rel_fields = edit_form_query_rel_fields = {"region": [["code", ScopeFilter, None]]}
    audit_fields = ("name", "credit_code", "kind", "region_code", "contact_name", "contact_phone", "approved")
    validators_columns = {"credit_code": [Checked(check_credit_code)]}
    # FAB marks a NOT NULL boolean as required, so an unticked box could never be saved.
    add_form_extra_fields = edit_form_extra_fields = {"approved": BooleanField(_l("已审核"))}

    def validate_item(self, item):
        if not item.name or not item.name.strip():
            raise ValidationFailed(_l("请填写单位名称"))
        item.name = item.name.strip()
        item.credit_code = check_credit_code(item.credit_code)
        if item.region is not None:
            item.region_code = item.region.code

    def audit_scope(self, item):
        return {"unit_id": item.id, "region_code": item.region_code}
