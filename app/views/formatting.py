"""How values look on screen and in exports, one place for grids and files."""
from flask_babel import gettext

# (the rule on whole ID numbers lives in the row scope; the masking in services)
from app.security.scope import sees_full_id  # noqa: F401
from app.services.localtime import beijing_text
from app.services.validators import id_number_for_list  # noqa: F401


def translated(value):
    """Enum labels arrive as their Chinese value; show them in the user's language."""
    return gettext(value) if value else ""


def hours_text(value):
    if value is None:
        return ""
    return f"{float(value):g}"


def display(value):
    """Default cell of grids and detail pages: nothing for None (FAB prints "None"),
    是/否 for booleans (FAB prints "True"/"False"), datetimes to the minute in
    Beijing time (stored UTC)."""
    import datetime

    if value is None:
        return ""
    if value is True:
        return gettext("是")
    if value is False:
        return gettext("否")
    if isinstance(value, datetime.datetime):
        return beijing_text(value, "%Y-%m-%d %H:%M")
    return value


def beijing_seconds(value):
    """A stored UTC time as Beijing time to the second (the audit log)."""
    return beijing_text(value)


def unit_history_text(periods):
    """A person's unit periods, oldest first: '南京金陵科技有限公司（2024-01-01 至今）'."""
    parts = []
    for p in periods or []:
        unit = p.unit.name if p.unit is not None else ""
        if p.end_date:
            parts.append(gettext("%(unit)s（%(start)s 至 %(end)s）", unit=unit, start=p.start_date, end=p.end_date))
        else:
            parts.append(gettext("%(unit)s（%(start)s 至今）", unit=unit, start=p.start_date))
    return "；".join(parts)
