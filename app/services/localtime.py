"""Times as people read them.  Every time is stored as naive UTC; pages, files and
filters show and take Beijing time (UTC+8: China keeps one offset all year, so a
fixed zone needs no tz database)."""
import datetime

BEIJING = datetime.timezone(datetime.timedelta(hours=8), "CST")
_OFFSET = datetime.timedelta(hours=8)


def to_beijing(value):
    """A stored naive-UTC datetime as naive Beijing time (anything else unchanged)."""
    if not isinstance(value, datetime.datetime):
        return value
    if value.tzinfo is not None:
        return value.astimezone(BEIJING).replace(tzinfo=None)
    return value + _OFFSET


def from_beijing(value):
    """A naive Beijing time (typed into a filter) as the stored naive UTC."""
    if not isinstance(value, datetime.datetime):
        return value
    if value.tzinfo is not None:
        return value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return value - _OFFSET


def local_to_beijing(value):
    """A naive datetime in the server's own zone as naive Beijing time.  Flask-AppBuilder
    writes its account columns (ab_user.last_login, created_on, changed_on) with
    datetime.now(): the server's local time, UTC or Asia/Shanghai as it is set up."""
    if not isinstance(value, datetime.datetime):
        return value
    return value.astimezone(BEIJING).replace(tzinfo=None)


def local_beijing_text(value, fmt="%Y-%m-%d %H:%M"):
    """An account column of Flask-AppBuilder as Beijing time text ('' for None)."""
    return "" if value is None else local_to_beijing(value).strftime(fmt)


def beijing_text(value, fmt="%Y-%m-%d %H:%M:%S"):
    """A stored naive-UTC datetime as Beijing time text ('' for None)."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    return to_beijing(value).strftime(fmt)
