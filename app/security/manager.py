"""The app's SecurityManager: FAB's, with the scoped user model."""
from flask_appbuilder.security.sqla.manager import SecurityManager
from flask_appbuilder.security.views import UserDBModelView
from flask_babel import lazy_gettext as _l

from app.models.user import CEUser


class CEUserDBModelView(UserDBModelView):
    """Admin's user grid, with the binding that decides each user's row scope."""

    list_columns = ["username", "first_name", "last_name", "active", "roles", "region", "unit", "person"]
    add_columns = [
        "first_name", "last_name", "username", "active", "email", "roles",
        "region", "unit", "person", "password", "conf_password",
    ]
    edit_columns = ["first_name", "last_name", "username", "active", "email", "roles", "region", "unit", "person"]
    show_fieldsets = [
        (_l("账号"), {"fields": ["username", "active", "roles", "region", "unit", "person", "login_count"]}),
        (_l("个人信息"), {"fields": ["first_name", "last_name", "email"], "expanded": True}),
        (
            _l("审计信息"),
            {"fields": ["last_login", "fail_login_count", "created_on", "created_by", "changed_on", "changed_by"]},
        ),
    ]
    label_columns = dict(
        UserDBModelView.label_columns,
        region=_l("所属区划（人社局）"),
        unit=_l("所属单位"),
        person=_l("对应人员（个人）"),
    )


class CESecurityManager(SecurityManager):
    user_model = CEUser
    userdbmodelview = CEUserDBModelView
