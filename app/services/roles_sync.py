"""Sync the roles defined in app/security/roles.py into FAB's tables."""
from flask import current_app

from app.security import roles as R


def sync_roles():
    """Create FAB's view/permission rows, each role, and each role's permissions
    (so the admin's role pages show them).  Idempotent; returns the role names."""
    appbuilder = current_app.appbuilder
    sm = appbuilder.sm
    appbuilder.add_permissions(update_perms=True)
    for name in R.ALL_ROLES + [current_app.config["AUTH_ROLE_PUBLIC"]]:
        role = sm.find_role(name) or sm.add_role(name)
        if name in (R.ADMIN, current_app.config["AUTH_ROLE_PUBLIC"]):
            continue
        wanted = set(R.permissions_of(name))
        have = {(pv.view_menu.name, pv.permission.name) for pv in role.permissions}
        for view, perm in wanted - have:
            pv = sm.add_permission_view_menu(perm, view)
            sm.add_permission_role(role, pv)
        for pv in list(role.permissions):
            if (pv.view_menu.name, pv.permission.name) not in wanted:
                sm.del_permission_role(role, pv)
    return R.ALL_ROLES
