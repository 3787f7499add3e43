from flask_babel import lazy_gettext as _l

from app.models import AuditLog
from app.views.base import ScopedModelView
from app.fab.datamodel import CEInterface


class AuditLogView(ScopedModelView):
    """Read-only: the log is append-only."""

    datamodel = CEInterface(AuditLog)
    base_permissions = ["can_list", "can_show"]
    list_title = show_title = _l("操作日志")
    list_columns = ["at", "username", "ip", "action", "object_type", "object_id", "region_code"]
    show_columns = list_columns + ["unit_id", "detail"]
    search_columns = ["at", "username", "action", "object_type", "object_id", "region_code"]
    order_columns = ["at"]
    base_order = ("id", "desc")
    label_columns = {
        "at": _l("时间（UTC）"),
        "username": _l("用户"),
        "ip": _l("来源地址"),
        "action": _l("操作"),
        "object_type": _l("对象类型"),
        "object_id": _l("对象编号"),
        "region_code": _l("区划"),
        "unit_id": _l("单位编号"),
        "detail": _l("内容（原值/新值）"),
    }
