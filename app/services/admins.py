"""三员分立 at installation (issue 25): the three administrator accounts."""
import secrets
import string

from flask import current_app
from flask_babel import gettext

from app.extensions import db
from app.security import roles as R
from app.services import audit

ADMINISTRATORS = (("sysadmin", R.SYS_ADMIN, "系统", "管理员"),
                  ("secadmin", R.SEC_ADMIN, "安全", "管理员"),
                  ("auditor", R.AUDITOR, "安全", "审计员"))


def one_time_password():
    """16 characters from letters, digits and signs, at least one of each kind."""
    alphabet = string.ascii_letters + string.digits + "#%+=@"
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(16))
        if (any(c.islower() for c in pw) and any(c.isupper() for c in pw) and any(c.isdigit() for c in pw)
                and any(c in "#%+=@" for c in pw)):
            return pw


def create_administrators():
    """Create the accounts that do not exist yet, each with a one-time password it
    must change at first login.  Returns [(username, role label, password or None
    when the account existed)]."""
    sm = current_app.appbuilder.sm
    out = []
    for username, role, first, last in ADMINISTRATORS:
        label = gettext(R.ROLE_LABELS[role])
        if sm.find_user(username=username) is not None:
            out.append((username, label, None))
            continue
        password = one_time_password()
        user = sm.add_user(username=username, first_name=first, last_name=last,
                           email=f"{username}@localhost.invalid", role=sm.find_role(role), password=password)
        user.must_change_password = True
        audit.record("create_account", "CEUser", user.id, user=None, new={"username": username, "roles": [role]},
                     via="cli")
        db.session.commit()
        out.append((username, label, password))
    return out
