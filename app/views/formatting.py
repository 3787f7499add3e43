"""How values look on screen and in exports, one place for grids and files."""
from flask_babel import gettext

from app.security import roles as R
from app.security.scope import current_scope
from app.services.validators import mask_id_number

# Roles that work with whole ID numbers of the persons in their scope.
FULL_ID_ROLES = frozenset({R.ADMIN, R.UNIT_ADMIN, R.UNIT_OPERATOR, R.APPLICANT})


def sees_full_id(scope=None):
    scope = scope or current_scope()
    return bool(scope.roles & FULL_ID_ROLES)


def id_number_for_list(number, scope=None):
    """ID numbers in lists and exports: whole for roles that need them, masked otherwise."""
    return number if sees_full_id(scope) else mask_id_number(number)


def translated(value):
    """Enum labels arrive as their Chinese value; show them in the user's language."""
    return gettext(value) if value else ""


def hours_text(value):
    if value is None:
        return ""
    return f"{float(value):g}"
