"""National data interchange (部省对接, SPEC §3 flow 7).

Two ways out for approved hour records:

* `changes(...)`: an incremental feed.  The cursor is the position (updated_at, id)
  of the last row delivered; rows are read in that order, so a consumer that keeps the last
  cursor never misses or repeats a row.  A row changed after it was delivered
  (corrected, revoked, moved) gets a newer updated_at and is delivered
  again with its new state; a row that no longer counts (any status but 已核准)
  is delivered as a tombstone carrying no personal data.
  Rows written by a transaction that commits late carry an updated_at older than
  its commit: the feed only reads rows older than a safety lag
  (NATIONAL_FEED_LAG_SECONDS) and, on PostgreSQL, older than the oldest open
  transaction, so such a row cannot fall behind a cursor already handed out (on
  SQLite: as long as transactions and clock skew stay below the lag).
* `export_rows(...)` / `write_csv` / `write_xlsx`: a region's approved records of
  one year in the national-collection layout (NATIONAL_LAYOUT).

What the feed carries (docs/national-api.md): a record enters it when it is first
approved, comes again whenever it changes while approved, and leaves as a
tombstone (id, status, time; no personal data) once revoked.  A record that was
never approved (draft, pending, returned, withdrawn) never appears: the feed reads
the statuses reachable from 已核准 only (`ONCE_APPROVED`, derived from the one
state machine in app.services.approval).

Times: the database keeps naive UTC (`datetime.utcnow()`), compares and pages in
UTC (the cursor holds the UTC value); every answer and file shows them as RFC 3339
with the Beijing offset (`rfc3339`: 2024-08-15T23:00:00+08:00).

Everything reads through the row scope (app.security.scope).
"""
import csv
import datetime
import io
import os
import re
from dataclasses import dataclass

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select, text, tuple_

from app.extensions import db
from app.models import HourRecord, LearningFormRule, Person, Status, Unit
from app.models.regions import region_prefix, region_range
from app.security.scope import current_scope, scope_clause
from app.services import audit, columns, jobs, xlsx_stream
from app.services.errors import OutOfScope, ValidationFailed
from app.services.localtime import BEIJING
from app.services.requirement import COUNTING_STATUSES
from app.services.sqlplan import without_city_index

# The national-collection layout is the column spec of app.services.columns (issue 4):
# the industry import reads exactly what this export writes.  Its headers are part
# of an interchange format, fixed Chinese text, never translated with the UI locale.
NATIONAL_LAYOUT = tuple((c.key, c.header) for c in columns.NATIONAL)
NATIONAL_HEADERS = tuple(h for _k, h in NATIONAL_LAYOUT)
NATIONAL_KEYS = tuple(k for k, _h in NATIONAL_LAYOUT)
_TEXT_COLUMNS = tuple(i for i, c in enumerate(columns.NATIONAL) if c.text)
_EXPORT_KEYS = (
    "id_type", "id_number", "name", "unit_name", "unit_credit_code", "region_code", "year",
    "category", "learning_form", "course_name", "organizer_name", "start_date", "end_date",
    "hours", "source", "reviewed_at", "form_code", "form_name",
)

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MIN_YEAR, MAX_YEAR = 2000, 2100



def rfc3339(value):
    """A stored naive-UTC datetime as RFC 3339 text with the Beijing offset
    ('2024-08-15T23:00:00+08:00'; fractions of a second when stored), a date as
    'YYYY-MM-DD', None as None."""
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.astimezone(BEIJING).isoformat()
    return value.isoformat()


def hours_number(value):
    """Hours as a JSON number with at most one decimal (8, 7.5)."""
    if value is None:
        return None
    f = round(float(value), 1)
    return int(f) if f.is_integer() else f


def _reachable(start):
    """The statuses a record can have from `start` on, by the approval state machine."""
    from app.services.approval import TRANSITIONS

    seen, todo = {start}, [start]
    while todo:
        status = todo.pop()
        for sources, target in TRANSITIONS.values():
            if status in sources and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


# The statuses of records that are approved or once were: 已核准 and what can follow
# it (已撤销).  Only these enter the feed; tests/test_national.py checks that no
# status of a never-approved record is among them (else the feed would need a
# stored "first approved" mark).
ONCE_APPROVED = tuple(s for s in Status if s in _reachable(Status.APPROVED))


# --------------------------------------------------------------------- filters


def check_year(year):
    """The year as an int, or None when not given; ValidationFailed when malformed."""
    if year in (None, ""):
        return None
    try:
        year = int(year)
    except (TypeError, ValueError):
        raise ValidationFailed(_("认定年度不正确"))
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValidationFailed(_("认定年度不正确"))
    return year


def check_region(code):
    """A region code filter turned into its subtree prefix ('320100' -> '3201'), or None."""
    if code in (None, ""):
        return None
    code = str(code).strip()
    if not code.isdigit() or len(code) not in (2, 4, 6):
        raise ValidationFailed(_("行政区划代码应为6位数字"))
    return region_prefix(code.ljust(6, "0"))


def check_region_in_scope(prefix, scope):
    """Refuse a region filter outside a bureau user's subtree (OutOfScope) instead of
    answering it with an empty result that looks like "no data there"."""
    if not prefix or scope.everything:
        return prefix
    if scope.region_prefixes and not any(prefix.startswith(p) for p in scope.region_prefixes):
        raise OutOfScope(_("该行政区划不在您的权限范围内"))
    return prefix


def _filters(scope, region, year):
    H = HourRecord
    conds = [scope_clause(H, scope)]
    prefix = check_region_in_scope(check_region(region), scope)
    if prefix:
        conds.append(region_range(H.region_code, prefix))
    year = check_year(year)
    if year is not None:
        conds.append(H.year == year)
    return conds


# ---------------------------------------------------------------------- cursor


# The cursor is the position of the last delivered row: its updated_at in
# microseconds since 1970 (UTC) and its id, "1723734000000000-1234".  It only says
# where to go on inside the caller's own scope, so it needs no signature; being a
# plain pattern, the OpenAPI document can say exactly which values are valid.
CURSOR_PATTERN = r"\d{1,16}-\d{1,12}"
_CURSOR = re.compile(CURSOR_PATTERN)
_EPOCH = datetime.datetime(1970, 1, 1)


def encode_cursor(updated_at, record_id):
    micros = (updated_at - _EPOCH) // datetime.timedelta(microseconds=1)
    return f"{micros}-{int(record_id)}"


def decode_cursor(token):
    """(updated_at, id) of a cursor, or None for the start of the feed.
    Raises ValidationFailed when it is not one."""
    if not token:
        return None
    if not isinstance(token, str) or not _CURSOR.fullmatch(token):
        raise ValidationFailed(_("游标无效，请从上次返回的游标继续或从头拉取"))
    micros, record_id = token.split("-")
    return _EPOCH + datetime.timedelta(microseconds=int(micros)), int(record_id)


# ------------------------------------------------------------------------ feed


@dataclass
class FeedPage:
    items: list
    next_cursor: str
    has_more: bool
    horizon: datetime.datetime


def _feed_columns():
    H = HourRecord
    return (
        H.id, H.status, H.updated_at, Person.id_type, Person.id_number, Person.name,
        Unit.name.label("unit_name"), Unit.credit_code, H.region_code, H.year, H.category,
        H.learning_form, H.course_name, H.organizer_name, H.start_date, H.end_date, H.hours,
        H.source, H.reviewed_at, H.created_at, H.form_code, H.rule_id,
    )


def _form_names(rows):
    """{rule version id: the form's name as stored} for a page of rows (one small query)."""
    from app.models import LearningFormRule

    ids = {r.rule_id for r in rows if getattr(r, "rule_id", None)}
    if not ids:
        return {}
    return dict(db.session.execute(
        select(LearningFormRule.id, LearningFormRule.name).where(LearningFormRule.id.in_(ids))).all())


def record_payload(r, form_names=None):
    """One delivered row (a row of `_feed_columns`): the national layout's fields plus
    id, status and updated_at; a row that no longer counts is a tombstone without
    personal data."""
    base = {"id": r.id, "status": r.status.name, "updated_at": rfc3339(r.updated_at)}
    if r.status not in COUNTING_STATUSES:
        base["removed"] = True
        return base
    base.update(
        removed=False,
        id_type=r.id_type.name,
        id_type_label=r.id_type.value,
        id_number=r.id_number,
        name=r.name,
        unit_name=r.unit_name,
        unit_credit_code=r.credit_code,
        region_code=r.region_code,
        year=r.year,
        category=r.category.name,
        category_label=r.category.value,
        learning_form=r.learning_form.name,
        learning_form_label=r.learning_form.value,
        # 学时认定标准 (issue 20): the form of the year's catalogue, as stored on the
        # record (a record from before the rules: its learning form).
        form_code=r.form_code or r.learning_form.name,
        form_name=(form_names or {}).get(r.rule_id) or r.learning_form.value,
        course_name=r.course_name,
        organizer_name=r.organizer_name,
        start_date=r.start_date.isoformat(),
        end_date=r.end_date.isoformat(),
        hours=hours_number(r.hours),
        source=r.source.name,
        source_label=r.source.value,
        approved_at=rfc3339(r.reviewed_at or r.created_at),
    )
    return base


def _oldest_open_transaction():
    """Start (UTC) of the oldest transaction open on this PostgreSQL database other
    than ours, or None.  Its rows, once committed, carry updated_at >= its start."""
    if db.session.get_bind().dialect.name != "postgresql":
        return None
    # Statistics views are snapshotted once per transaction: take a fresh look.
    db.session.execute(text("SELECT pg_stat_clear_snapshot()"))
    return db.session.execute(text(
        "SELECT min(xact_start) AT TIME ZONE 'UTC' FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND xact_start IS NOT NULL AND backend_type = 'client backend'"
    )).scalar()


def feed_horizon(now=None):
    """The newest updated_at the feed may read now: `now - lag`, and on PostgreSQL
    also before the oldest open transaction (minus the lag, for clock skew between
    application hosts and the database), so a long import that stamped its rows at
    its start and commits minutes later is still read."""
    lag = datetime.timedelta(seconds=float(current_app.config.get("NATIONAL_FEED_LAG_SECONDS", 60)))
    horizon = (now or datetime.datetime.utcnow()) - lag
    oldest = _oldest_open_transaction()
    if oldest is not None:
        horizon = min(horizon, oldest - lag)
    return horizon


def _once_approved():
    """`status IN ONCE_APPROVED`, which on SQLite (no statistics) must not lead the
    index choice: with it SQLite reads ix_hr_status_region and sorts a whole region
    instead of paging along (updated_at, id); a unary + hides the column from the
    index chooser (the same idea as sqlplan.without_city_index)."""
    if db.session.get_bind().dialect.name == "sqlite":
        from sqlalchemy import literal_column

        return literal_column("+hour_record.status").in_([s.name for s in ONCE_APPROVED])
    return HourRecord.status.in_(ONCE_APPROVED)


def changes(cursor=None, region=None, year=None, page_size=None, scope=None, now=None):
    """One page of the incremental feed after `cursor` (None: from the start).

    Returns a FeedPage: rows in (updated_at, id) order, each as `record_payload`,
    `next_cursor` to pass next time (the same cursor when nothing new), and
    `has_more` when another page is ready.  Only records approved or once
    approved (`ONCE_APPROVED`) are read.  Raises ValidationFailed on a bad
    cursor, region, year or page size, OutOfScope on a region outside the scope."""
    scope = current_scope() if scope is None else scope
    try:
        size = int(page_size or DEFAULT_PAGE_SIZE)
    except (TypeError, ValueError):
        raise ValidationFailed(_("每页条数不正确"))
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise ValidationFailed(_("每页条数应在1到%(n)d之间", n=MAX_PAGE_SIZE))
    after = decode_cursor(cursor)
    horizon = feed_horizon(now)
    H = HourRecord
    # The first page starts from the smallest key too: the same condition on every
    # page keeps the planner on the (updated_at, id) index instead of sorting a region.
    after = after or (datetime.datetime(1970, 1, 1), 0)
    conds = [without_city_index(c) for c in _filters(scope, region, year)] + [
        H.updated_at <= horizon, tuple_(H.updated_at, H.id) > tuple_(*after), _once_approved(),
    ]
    rows = db.session.execute(
        select(*_feed_columns()).select_from(H)
        .join(Person, Person.id == H.person_id).outerjoin(Unit, Unit.id == H.unit_id)
        .where(*conds).order_by(H.updated_at, H.id).limit(size + 1)
    ).all()
    has_more = len(rows) > size
    rows = rows[:size]
    if rows:
        next_cursor = encode_cursor(rows[-1].updated_at, rows[-1].id)
    else:
        next_cursor = cursor or ""
    names = _form_names(rows)
    return FeedPage([record_payload(r, names) for r in rows], next_cursor, has_more, horizon)


def feed_record(record_id, scope=None):
    """The record `record_id` as the feed delivers it (`record_payload`), or None
    when it is outside the scope or was never approved."""
    scope = current_scope() if scope is None else scope
    H = HourRecord
    row = db.session.execute(
        select(*_feed_columns()).select_from(H)
        .join(Person, Person.id == H.person_id).outerjoin(Unit, Unit.id == H.unit_id)
        .where(H.id == record_id, H.status.in_(ONCE_APPROVED), scope_clause(H, scope))
    ).first()
    return record_payload(row, _form_names([row])) if row is not None else None


def in_scope_count(region=None, year=None, scope=None):
    """How many records a full pull of the feed from an empty cursor returns: those
    in scope (and region / year) that are approved or once were."""
    from sqlalchemy import func

    scope = current_scope() if scope is None else scope
    H = HourRecord
    return db.session.execute(
        select(func.count(H.id)).where(H.status.in_(ONCE_APPROVED), *_filters(scope, region, year))
    ).scalar_one()


# ---------------------------------------------------------------------- export


def export_query(region=None, year=None, scope=None):
    """Select of the approved rows in scope for `region` / `year`, in the layout's
    column order (plus the record id last), ordered by id."""
    scope = current_scope() if scope is None else scope
    H = HourRecord
    return (
        select(
            Person.id_type, Person.id_number, Person.name, Unit.name, Unit.credit_code,
            H.region_code, H.year, H.category, H.learning_form, H.course_name,
            H.organizer_name, H.start_date, H.end_date, H.hours, H.source,
            H.reviewed_at, H.created_at, H.form_code, LearningFormRule.name, H.id,
        )
        .select_from(H)
        .join(Person, Person.id == H.person_id)
        .outerjoin(Unit, Unit.id == H.unit_id)
        .outerjoin(LearningFormRule, LearningFormRule.id == H.rule_id)
        .where(H.status.in_(COUNTING_STATUSES), *_filters(scope, region, year))
        .order_by(H.id)
    )


def _cell(value):
    if value is None:
        return ""
    if hasattr(value, "value") and hasattr(value, "name"):  # enum: the layout uses the label
        return value.value
    if isinstance(value, datetime.datetime):
        return rfc3339(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def export_rows(region=None, year=None, scope=None):
    """Yield the rows (tuples in NATIONAL_LAYOUT order) of the export, streamed.
    学习形式代码 / 学习形式名称 are the form's code and the name of the rule version
    the record was recognised under, as stored.
    认定时间 is the review time, or the creation time of imported records (stored
    approved, without a review), as RFC 3339 text with the Beijing offset."""
    if NATIONAL_KEYS != _EXPORT_KEYS:  # the spec changed: this writer must follow it
        raise RuntimeError("national layout changed: " + ",".join(NATIONAL_KEYS))
    result = db.session.execute(export_query(region, year, scope).execution_options(yield_per=2000))
    for row in result:
        (id_type, id_number, name, unit_name, credit, region_code, yr, cat, form, course,
         organizer, start, end, hours, source, reviewed_at, created_at, form_code, form_name, _id) = row
        yield (
            _cell(id_type), id_number, name, unit_name or "", credit or "", region_code or "",
            yr, _cell(cat), _cell(form), course, organizer or "", start, end,
            columns.fmt_hours(hours), _cell(source), rfc3339(reviewed_at or created_at),
            # 学时认定标准 (issue 20): the form as stored (a record from before the rules: its learning form)
            form_code or form.name, form_name or form.value,
        )


def iter_csv(rows):
    """UTF-8 CSV with a BOM (Excel opens it as Chinese text), as byte chunks."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    yield "\ufeff".encode("utf-8")
    writer.writerow(NATIONAL_HEADERS)
    n = 0
    for row in rows:
        writer.writerow([_cell(v) for v in row])
        n += 1
        if n % 500 == 0:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode("utf-8")


def write_xlsx(rows, out):
    """Write the layout to `out` (a path or binary file) as .xlsx, streamed by
    app.services.xlsx_stream (constant memory): dates as dates, the ID number and
    code columns formatted as text, text that could run as a formula behind an
    apostrophe (which the industry import drops again), and rows past Excel's
    limit on further sheets "学时数据(2)", ....  Returns the number of rows."""
    from app.services.excel_template import DATA_SHEET  # the sheet the import reads

    return xlsx_stream.write_xlsx(out, NATIONAL_HEADERS, rows, title=DATA_SHEET, text_columns=_TEXT_COLUMNS)


def export_filename(region, year, ext):
    return f"national_{region or 'all'}_{year or 'all'}.{ext}"


def count_export(region=None, year=None, scope=None):
    from sqlalchemy import func

    q = export_query(region, year, scope).order_by(None).with_only_columns(func.count())
    return db.session.execute(q).scalar_one()


# ------------------------------------------------- large exports as a long job


def export_dir():
    folder = os.path.join(current_app.config["VAR_DIR"], "exports")
    os.makedirs(folder, exist_ok=True)
    return folder


@jobs.handler("national_export")
def _job_national_export(job_id, params, progress):
    """Write the national-layout .xlsx of params (region, year) for the submitting
    user's scope (app.services.jobs runs it in a worker or thread)."""
    from app.models import CEUser
    from app.security.scope import scope_of

    user = db.session.get(CEUser, params["user_id"])
    if user is None:
        raise OutOfScope(_("用户不存在"))
    scope = scope_of(user)
    total = max(int(params.get("total") or 1), 1)
    path = os.path.join(export_dir(), f"national-{job_id}.xlsx")
    written = [0]

    def rows():
        for row in export_rows(params.get("region"), params.get("year"), scope=scope):
            written[0] += 1
            if written[0] % 5000 == 0:
                progress(min(95, written[0] * 100 // total), _("已写入%(n)d行", n=written[0]))
            yield row

    write_xlsx(rows(), path)
    audit.record("export_national", "HourRecord", None, user=user, region_code=params.get("region"),
                 year=params.get("year"), format="xlsx", rows=written[0], job=job_id)
    db.session.commit()
    return {"rows": written[0], "_path": path, "filename": params.get("filename")}
