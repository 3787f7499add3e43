"""Bulk import of hour records from .xlsx files (SPEC §3 flow 4, issue 4).

    check_file(path)          refuse non-xlsx, corrupt zips, zip bombs, oversized files
    analyse(path, kind, user) read → normalise → validate every row → ImportResult (the preview)
    store(path, kind, user)   analyse again, then store ALL-OR-NOTHING in one transaction
    error_file(path, kind, result)  the failing rows with a reason column, as .xlsx bytes

Rules, in one place:

* Scope.  unit (UnitAdmin / UnitOperator): only persons attached to the user's unit.
  bureau: only persons whose unit lies in the user's region (the row scope of Person).
  organizer / industry: any *registered* person — participants of a programme come from
  every unit; the records they create carry `reported_by_unit_id` = their unit, which is
  what their own scope shows.
* Unknown persons.  Only the unit kind creates them: a unit knows its staff, so a valid
  resident-ID (or other ID) row whose number is not registered anywhere registers that
  person at the importing unit (with a unit history period).  A number registered at
  another unit is an error (the person must be moved first).  Every other kind reports
  unknown persons as errors.
* Duplicates (the uq_hour_record_dup key: person, year, category, course name, start date)
  inside the file and against stored rows are reported and skipped, never stored.  A file
  whose rows are all stored already stores nothing and says so.
* All-or-nothing.  A file with any row error stores nothing; a confirmed file is inserted
  set-based in one transaction with its ImportBatch and audit entry.
* Formula-like text.  The files this app writes (the error file, exports, the national
  layout) put an apostrophe in front of text starting with = + - @ tab or CR
  (app.services.xlsx_stream.neutralise), so that it is never run as a formula; the
  import drops exactly that apostrophe (xlsx_stream.restore), so such a file imports
  as the values it was written from: an error file re-imported unchanged gives the same
  rows and errors, a corrected one stores the names as they were.
* Organizer reports more than 20 working days after the programme end are flagged late
  (chinesecalendar; past its data: weekends only, flagged "节假日数据缺失"; config
  HOLIDAYS_EXTRA adds a year's holidays and make-up working days).
"""
import contextlib
import datetime
import gc
import hashlib
import hmac
import io
import itertools
import json
import os
import pickle
import re
import time
import zipfile
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from operator import itemgetter
from typing import NamedTuple

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import case, insert, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import (
    CEUser, HourRecord, ImportBatch, Person, PersonUnitHistory, Status, Unit, UnitKind,
)
from app.models.enums import Category, IdType, LearningForm
from app.security.scope import scope_clause, scope_of
from app.services import audit, jobs, rules, standards, totals, validators, xlsx_stream
from app.services.columns import NATIONAL, get_kind, header_key, is_blank, is_blank_cell
from app.services.errors import DomainError, ValidationFailed

DEFAULTS = {
    "IMPORT_MAX_BYTES": 30 * 1024 * 1024,
    "IMPORT_MAX_ROWS": 200_000,
    "IMPORT_MAX_UNCOMPRESSED_BYTES": 400 * 1024 * 1024,
    "IMPORT_MAX_RATIO": 400,
    "IMPORT_READER": "calamine",
    "IMPORT_LATE_WORKING_DAYS": 20,
    "HOLIDAYS_EXTRA": {},
    "IMPORT_MAX_SHOWN_ERRORS": 500,
}

CHUNK = 900  # IN-list size (SQLite allows 32766 parameters; PostgreSQL many more)


def cfg(name):
    return current_app.config.get(name, DEFAULTS[name])


# ============================================================ file checks


def check_file(path, filename=""):
    """Refuse what is not a sane .xlsx: too large, not a zip (or an old .xls), a
    corrupt zip, no workbook inside, or declared sizes of a zip bomb.
    Raises ValidationFailed with a Chinese reason."""
    size = os.path.getsize(path)
    if size > cfg("IMPORT_MAX_BYTES"):
        raise ValidationFailed(
            _("文件过大（%(size).1f MB），导入文件不能超过 %(max).0f MB；请拆分后分批导入",
              size=size / 1048576, max=cfg("IMPORT_MAX_BYTES") / 1048576)
        )
    if size == 0:
        raise ValidationFailed(_("文件是空的"))
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise ValidationFailed(_("这是旧版 Excel（.xls）文件，请在 Excel 中另存为 .xlsx 格式后再导入"))
    if not head.startswith(b"PK"):
        raise ValidationFailed(_("文件不是 Excel（.xlsx）文件，请使用系统提供的模板"))
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            names = {i.filename for i in infos}
            total = sum(i.file_size for i in infos)
            packed = sum(i.compress_size for i in infos) or 1
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError):
        raise ValidationFailed(_("文件已损坏，无法打开；请在 Excel 中重新保存后再导入"))
    if "xl/workbook.xml" not in names:
        raise ValidationFailed(_("文件不是 Excel（.xlsx）文件，请使用系统提供的模板"))
    if total > cfg("IMPORT_MAX_UNCOMPRESSED_BYTES") or (total > 50 * 1048576 and total / packed > cfg("IMPORT_MAX_RATIO")):
        raise ValidationFailed(_("文件解压后异常庞大（疑似压缩炸弹），已拒绝导入"))
    return size


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ============================================================ reading

_SHEET_RE = re.compile(rb'<sheet\b[^>]*?name="([^"]*)"[^>]*?r:id="([^"]+)"')
_REL_RE = re.compile(rb'<Relationship\b[^>]*?Id="([^"]+)"[^>]*?Target="([^"]+)"|<Relationship\b[^>]*?Target="([^"]+)"[^>]*?Id="([^"]+)"')
_FORMULA_RE = re.compile(rb'<c r="([A-Z]{1,3})(\d+)"[^>]*?>\s*<f[\s>/]')


def _sheet_parts(zf):
    """[(sheet name, zip member)] in workbook order."""
    wb = zf.read("xl/workbook.xml")
    rels = zf.read("xl/_rels/workbook.xml.rels") if "xl/_rels/workbook.xml.rels" in zf.namelist() else b""
    targets = {}
    for m in _REL_RE.finditer(rels):
        rid, target = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
        target = target.decode()
        target = target.lstrip("/") if target.startswith("/") else "xl/" + target
        targets[rid] = target
    out = []
    for m in _SHEET_RE.finditer(wb):
        name = m.group(1).decode("utf-8", "replace")
        out.append((_xml_unescape(name), targets.get(m.group(2))))
    return out


def _xml_unescape(s):
    return s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&apos;", "'").replace("&amp;", "&")


def _col_index(letters):
    n = 0
    for ch in letters:
        n = n * 26 + (ord(ch) - 64)
    return n - 1


def scan_sheet(path, sheet_name):
    """Decompress the data sheet once, counting real bytes (a lying zip header cannot
    hide a bomb) and collecting the cells that hold formulas: {(row, col0)}."""
    limit = cfg("IMPORT_MAX_UNCOMPRESSED_BYTES")
    formulas = set()
    with zipfile.ZipFile(path) as zf:
        parts = _sheet_parts(zf)
        member = dict(parts).get(sheet_name) if sheet_name else None
        if member is None and parts:
            member = parts[0][1]
        if not member:
            return formulas
        total = 0
        tail = b""
        try:
            with zf.open(member) as fh:
                while True:
                    block = fh.read(1 << 20)
                    if not block:
                        break
                    total += len(block)
                    if total > limit:
                        raise ValidationFailed(_("文件解压后异常庞大（疑似压缩炸弹），已拒绝导入"))
                    data = tail + block
                    if b"<f" in data:
                        for m in _FORMULA_RE.finditer(data):
                            formulas.add((int(m.group(2)), _col_index(m.group(1).decode())))
                    tail = data[-300:]
        except (zipfile.BadZipFile, EOFError, OSError, KeyError, ValueError) as e:
            if isinstance(e, ValidationFailed):
                raise
            raise ValidationFailed(_("文件已损坏，无法打开；请在 Excel 中重新保存后再导入"))
    return formulas


def _pick_sheet(names):
    from app.services.excel_template import DATA_SHEET

    return DATA_SHEET if DATA_SHEET in names else (names[0] if names else None)


def read_rows(path, engine=None):
    """(sheet name, iterator of (excel row number, [cells])).  Cells are str, int,
    float, bool, date/datetime or None/''.  Merged areas carry the top-left value."""
    engine = engine or cfg("IMPORT_READER")
    if engine == "openpyxl":
        return _read_openpyxl(path)
    return _read_calamine(path)


def _read_calamine(path):
    from python_calamine import CalamineWorkbook

    try:
        wb = CalamineWorkbook.from_path(path)
        name = _pick_sheet(wb.sheet_names)
        sheet = wb.get_sheet_by_name(name)
    except Exception:
        raise ValidationFailed(_("文件已损坏，无法打开；请在 Excel 中重新保存后再导入"))
    start = sheet.start or (0, 0)
    row0, col0 = start
    merged = {}
    try:
        for (r1, c1), (r2, c2) in sheet.merged_cell_ranges or ():
            for r in range(r1, r2 + 1):
                for c in range(c1, c2 + 1):
                    if (r, c) != (r1, c1):
                        merged[(r, c)] = (r1, c1)
    except Exception:
        merged = {}
    if not col0 and not merged:
        return name, enumerate(sheet.iter_rows(), row0 + 1)  # the rows as they are

    def gen():
        pad = [None] * col0
        tops = set(merged.values())
        cache = {}
        for i, cells in enumerate(sheet.iter_rows()):
            r = row0 + i
            cells = pad + list(cells)
            if merged:
                for c, v in enumerate(cells):
                    if (r, c) in tops:
                        cache[(r, c)] = v
                    elif (r, c) in merged and is_blank(v):
                        cells[c] = cache.get(merged[(r, c)])
            yield r + 1, cells

    return name, gen()


def _read_openpyxl(path):
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception:
        raise ValidationFailed(_("文件已损坏，无法打开；请在 Excel 中重新保存后再导入"))
    name = _pick_sheet(wb.sheetnames)
    ws = wb[name]

    def gen():
        try:
            for r, cells in enumerate(ws.iter_rows(values_only=True), start=1):
                yield r, list(cells)
        finally:
            wb.close()

    return name, gen()


# ============================================================ working days


def _extra_holidays():
    """HOLIDAYS_EXTRA = {"2027": {"holidays": ["2027-01-01", ...], "workdays": ["2027-02-07", ...]}}"""
    holidays, workdays, years = set(), set(), set()
    for year, spec in (cfg("HOLIDAYS_EXTRA") or {}).items():
        years.add(int(year))
        holidays.update(datetime.date.fromisoformat(d) for d in spec.get("holidays", ()))
        workdays.update(datetime.date.fromisoformat(d) for d in spec.get("workdays", ()))
    return holidays, workdays, years


def is_workday(day, extra=None):
    """(is it a working day, did we know the holidays of its year)."""
    holidays, workdays, years = extra or _extra_holidays()
    if day.year in years:
        if day in workdays:
            return True, True
        if day in holidays:
            return False, True
        return day.weekday() < 5, True
    try:
        import chinese_calendar

        return chinese_calendar.is_workday(day), True
    except NotImplementedError:
        return day.weekday() < 5, False


def add_working_days(start, n):
    """The n-th working day after `start`, and whether holiday data was complete."""
    extra = _extra_holidays()
    day, count, known = start, 0, True
    while count < n:
        day += datetime.timedelta(days=1)
        work, k = is_workday(day, extra)
        known = known and k
        if work:
            count += 1
    return day, known


# ============================================================ result


@dataclass
class ImportResult:
    kind: str
    filename: str = ""
    sha256: str = ""
    layout: str = "template"
    rows_total: int = 0
    rows_new: int = 0
    rows_dup_file: int = 0
    rows_dup_stored: int = 0
    rows_error: int = 0
    persons_new: int = 0
    errors: list = field(default_factory=list)  # [row, column, reason]
    duplicates: list = field(default_factory=list)  # [row, reason]
    late_rows: list = field(default_factory=list)
    holiday_data_missing: bool = False
    previous_batch: dict = None
    file_error: str = None
    rows_stored: int = 0
    batch_id: int = None
    seconds: float = 0.0

    @property
    def ok(self):
        return not self.file_error and not self.errors

    @property
    def can_store(self):
        return self.ok and self.rows_new > 0

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


# ============================================================ analyse


def _headers_match(header_cells, columns):
    """{key: cell index} for the columns found, and the headers missing."""
    keys = {}
    for idx, cell in enumerate(header_cells):
        if isinstance(cell, str) and cell.strip():
            keys.setdefault(header_key(cell), idx)
    found, missing = {}, []
    for col in columns:
        idx = None
        for h in (col.header,) + tuple(col.aliases):
            idx = keys.get(header_key(h))
            if idx is not None:
                break
        if idx is None:
            if col.required:
                missing.append(col.header)
        else:
            found[col.key] = idx
    return found, missing


class _Ctx:
    """What one analysis needs about the importing user."""

    def __init__(self, user, kind):
        self.user = user
        self.kind = kind
        self.scope = scope_of(user)
        self.unit = db.session.get(Unit, user.unit_id) if getattr(user, "unit_id", None) else None


def _allowed(user, kind):
    from app.security import roles as R

    names = {r.name for r in user.roles}
    need = {
        "unit": {R.UNIT_ADMIN, R.UNIT_OPERATOR},
        "bureau": {R.BUREAU, R.ADMIN},
        "organizer": {R.ORGANIZER},
        "industry": {R.INDUSTRY},
    }[kind.code]
    if not names & need:
        raise DomainError(_("您的角色不能使用此导入模板"))
    if kind.code in ("unit", "organizer", "industry") and not user.unit_id:
        raise DomainError(_("您的账号未绑定单位，不能导入"))
    if kind.code == "bureau" and R.ADMIN not in names and not user.region_code:
        raise DomainError(_("您的账号未绑定行政区划，不能导入"))


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector while a file is imported: an import builds
    several container objects a row that live until it ends, and every full
    collection walks them all again (a quarter of the time of a 100 000-row
    import).  They form no reference cycles, so reference counting frees them all
    the same.  Left alone when already paused (a nested or concurrent import)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@_gc_paused()
def analyse(path, kind_code, user, *, filename="", progress=None, today=None, keep_rows=False):
    """Validate every row of the file at `path` for import kind `kind_code` by `user`.

    Returns an ImportResult (with `rows` attached when keep_rows: the records to
    store, see _resolve).  File-level problems (not an xlsx, bomb, wrong headers,
    too many rows) land in `result.file_error`; row problems in `result.errors` as
    [row, column, reason]."""
    t0 = time.perf_counter()
    kind = get_kind(kind_code)
    res = ImportResult(kind=kind.code, filename=filename or os.path.basename(path))
    _allowed(user, kind)
    ctx = _Ctx(user, kind)
    today = today or datetime.date.today()
    if progress:
        progress(2, _("正在读取文件"))
    try:
        check_file(path)
        res.sha256 = file_sha256(path)
        good = _load_validated(res, today)
        if good is None:
            sheet_name, rows = read_rows(path)
            formulas = scan_sheet(path, sheet_name)
            good = _validate_rows(rows, kind, res, formulas, progress, today)
            if not res.errors:
                _save_validated(res, today, good)
    except ValidationFailed as e:
        res.file_error = str(e)
        res.seconds = time.perf_counter() - t0
        return res
    if progress:
        progress(60, _("正在核对人员和重复记录"))
    records = _resolve(good, ctx, res, today)
    prev = db.session.execute(
        select(ImportBatch.id, ImportBatch.created_at).where(ImportBatch.sha256 == res.sha256,
                                                          ImportBatch.kind == kind.code)
        .order_by(ImportBatch.id.desc()).limit(1)
    ).first()
    if prev:
        res.previous_batch = {"id": prev.id, "created_at": prev.created_at.strftime("%Y-%m-%d %H:%M")}
    res.errors.sort(key=lambda e: e[0])
    res.duplicates.sort(key=lambda e: e[0])
    res.rows_error = len({e[0] for e in res.errors})
    res.seconds = time.perf_counter() - t0
    if keep_rows:
        res.rows = records
    return res


class Row(NamedTuple):
    """One valid row of a file, as the preview found it and the confirm stores it."""

    row: int  # the Excel row number
    name: str
    id_type: IdType
    id_number: str
    year: int
    category: Category
    learning_form: LearningForm
    course_name: str
    organizer_name: str | None
    start_date: datetime.date
    end_date: datetime.date
    hours: Decimal
    # 学时认定标准 (issue 20): the form of the year's catalogue the row was
    # recognised under, what the row stated for it and the hours it computed.
    form_code: str
    rule_id: int | None
    rule_inputs: str | None
    computed_hours: Decimal | None


# The fields a file's columns give (the rest are derived by _check_rows).
_CELL_FIELDS = ("name", "id_type", "id_number", "year", "category", "learning_form", "course_name",
                "organizer_name", "start_date", "end_date", "hours", "days", "taught_hours", "addons", "level",
                "rank", "form_code")


# ---- the validated rows of a file, kept next to it between preview and confirm.
# Parsing depends only on the file's bytes, the kind, the day and the limits, so
# confirm reuses them and re-checks only what depends on the database (persons,
# scope, duplicates).  Pickled column by column, because that is fast (plain
# tuples of values; a value shared by many rows is written once), and signed with
# the app's SECRET_KEY over the cache's name, the Row fields and the bytes: a cache
# written by anything but this code, for another file or another Row layout is not
# trusted, and the file is read again.  Even a signed cache unpickles nothing but
# dates, decimals and the import enums.

_CACHE_CLASSES = {
    ("datetime", "date"), ("decimal", "Decimal"),
    (IdType.__module__, "IdType"), (Category.__module__, "Category"), (LearningForm.__module__, "LearningForm"),
}


class _CacheUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _CACHE_CLASSES:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in the import cache")
        return super().find_class(module, name)


def _validated_path(res, today):
    """Named by all that parsing depends on: a changed limit reads the file again."""
    folder = os.path.join(current_app.config["UPLOAD_DIR"], "imports", "validated")
    os.makedirs(folder, exist_ok=True)
    # The newest rule version: every edit of a 学时认定标准 adds one, so a file is
    # checked again against rules changed since its preview.
    limits = (current_app.config["MAX_HOURS_PER_RECORD"], cfg("IMPORT_MAX_ROWS"), cfg("IMPORT_MAX_UNCOMPRESSED_BYTES"),
              standards.newest_rule_id())
    return os.path.join(folder, "{}.{}.{}.{}.rows".format(res.sha256, res.kind, today.isoformat(),
                                                         ".".join(map(str, limits))))


def _signature(target, payload):
    key = current_app.secret_key
    msg = "{}\0{}\0".format(os.path.basename(target), ",".join(Row._fields)).encode() + payload
    return hmac.new(key.encode() if isinstance(key, str) else key, msg, hashlib.sha256).digest()


def _save_validated(res, today, rows):
    target = _validated_path(res, today)
    payload = pickle.dumps((res.rows_total, res.layout, list(zip(*rows))), protocol=pickle.HIGHEST_PROTOCOL)
    tmp = f"{target}.{os.getpid()}.part"
    try:
        with open(tmp, "wb") as fh:
            fh.write(_signature(target, payload))
            fh.write(payload)
        os.replace(tmp, target)
    except OSError:
        pass  # only a cache


def _load_validated(res, today):
    """The cached Rows of this file, or None (no cache, or one not to be trusted)."""
    target = _validated_path(res, today)
    try:
        with open(target, "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    mac, payload = data[:32], data[32:]
    if not hmac.compare_digest(mac, _signature(target, payload)):
        return None
    try:
        rows_total, layout, columns = _CacheUnpickler(io.BytesIO(payload)).load()
        rows = list(map(Row._make, zip(*columns)))
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError):
        return None
    res.rows_total, res.layout = rows_total, layout
    return rows


# ---- parsing and checking the rows


class _Invalid:
    """A cell that did not parse, and why: never a valid value."""

    __slots__ = ("reason",)

    def __init__(self, reason):
        self.reason = reason


def _validate_rows(rows, kind, res, formulas, progress, today):
    """Parse and check every data row; return the valid ones as Rows.  Errors go to
    res.errors as [row, column, reason]: a row's cell errors in column order, then
    the checks across its cells (run only when every cell parsed).

    Works column by column: a column repeats few distinct values (a person's ID and
    name on dozens of rows, a year's dates, a handful of categories), so a parser
    runs once per distinct value and a cell costs a dictionary lookup."""
    header_row, header_cells = _find_header(rows)
    columns, found = _layout(header_cells, kind, res)
    rnos, cells = _data_rows(rows, header_row, max(found.values()) + 1, progress)
    res.rows_total = n = len(rnos)
    failed = {}  # index of a data row -> [(column header, reason)]
    values = {}
    for col in columns:
        idx = found.get(col.key)
        if idx is None:
            values[col.key] = [col.default] * n
        else:
            values[col.key] = _parse_column(col, list(map(itemgetter(idx), cells)), idx, rnos, formulas, failed)
    for key in _CELL_FIELDS:
        values.setdefault(key, [None] * n)  # a layout without the column (organizer: 举办单位)
    good = _check_rows(kind, columns, rnos, values, failed, today)
    for i in sorted(failed):
        res.errors.extend([rnos[i], column, reason] for column, reason in failed[i])
    return good


def _find_header(rows):
    """(row number, cells) of the header: the first non-blank row among the first ten."""
    for rno, cells in rows:
        if any(not is_blank(c) for c in cells):
            return rno, cells
        if rno > 10:
            break
    raise ValidationFailed(_("文件中没有数据：未找到表头行"))


def _layout(header_cells, kind, res):
    """The columns of the file (the kind's template, or for industry the national
    layout) and {column key: cell index}.  Raises ValidationFailed on missing headers."""
    columns = kind.columns
    found, missing = _headers_match(header_cells, columns)
    if kind.code == "industry":
        # The national collection layout is recognised by its unit columns.
        nfound, nmissing = _headers_match(header_cells, NATIONAL)
        if not nmissing and ("unit_name" in nfound or "unit_credit_code" in nfound):
            columns, found, missing, res.layout = NATIONAL, nfound, [], "national"
    if missing:
        raise ValidationFailed(
            _("表头不正确：缺少“%(cols)s”列。请下载并使用本系统的导入模板，不要修改表头。",
              cols="”、“".join(missing))
        )
    return columns, found


def _data_rows(rows, header_row, width, progress):
    """(Excel row numbers, cell lists at least `width` long) of the non-blank rows
    below the header.  Raises ValidationFailed above IMPORT_MAX_ROWS or without rows."""
    max_rows = cfg("IMPORT_MAX_ROWS")
    rnos, data = [], []
    for rno, cells in rows:
        if rno <= header_row or _blank_row(cells):
            continue
        if len(rnos) == max_rows:
            raise ValidationFailed(
                _("文件数据行数超过上限：最多%(max)d行，请拆分后分批导入", max=max_rows)
            )
        if len(cells) < width:
            cells = list(cells) + [None] * (width - len(cells))
        rnos.append(rno)
        data.append(cells)
        if progress and len(rnos) % 20000 == 0:
            progress(min(55, 5 + len(rnos) * 50 // max(max_rows, 1)), _("已读取%(n)d行", n=len(rnos)))
    if not rnos:
        raise ValidationFailed(_("文件中没有数据行"))
    return rnos, data


def _blank_row(cells):
    for c in cells:
        if not is_blank_cell(c):
            return False
    return True


_NUMBER_TYPES = {bool, int, float, Decimal}


def _parse_column(col, raws, idx, rnos, formulas, failed):
    """The parsed values of one column (cell index `idx`); a failing cell adds
    (header, reason) to failed[its row index]."""
    # True == 1 == 1.0 but they do not parse alike: a column mixing them keys by type.
    mixed = len(set(map(type, raws)) & _NUMBER_TYPES) > 1
    keys = [(v.__class__, v) for v in raws] if mixed else raws
    parsed = {k: _parse_cell(col, k[1] if mixed else k) for k in set(keys)}
    values = list(map(parsed.__getitem__, keys))
    in_formula = {r for r, c in formulas if c == idx}
    if in_formula or any(v.__class__ is _Invalid for v in parsed.values()):
        for i, v in enumerate(values):
            if rnos[i] in in_formula:  # never its cached result
                failed.setdefault(i, []).append((col.header, _("单元格含公式，请复制后“选择性粘贴为数值”再导入")))
            elif v.__class__ is _Invalid:
                failed.setdefault(i, []).append((col.header, v.reason))
    return values


def _parse_cell(col, raw):
    if raw.__class__ is str:
        raw = xlsx_stream.restore(raw)  # see "Formula-like text" in the module docstring
    if is_blank_cell(raw):
        return _Invalid(_("不能为空")) if col.required else col.default
    try:
        return col.parse(raw)
    except ValidationFailed as e:
        return _Invalid(str(e))


def _once(memo, check, *args):
    """check(*args), once per distinct args: (result, None) or (None, reason)."""
    hit = memo.get(args)
    if hit is None:
        try:
            hit = (check(*args), None)
        except ValidationFailed as e:
            hit = (None, str(e))
        memo[args] = hit
    return hit


def _check_rows(kind, columns, rnos, values, failed, today):
    """The checks across the cells of each row whose cells all parsed: the ID number
    for its type, category allowed by the template, the learning form and hours
    under the year's 学时认定标准, dates in the year.  Returns the valid Rows; a
    failing row's reasons go to failed[i]."""
    header = {c.key: c.header for c in columns}
    max_hours = current_app.config["MAX_HOURS_PER_RECORD"]
    categories = kind.categories
    cat_reason = _("本模板只能导入%(allowed)s", allowed="、".join(c.value for c in categories))
    checked_ids, checked_hours, checked_rules = {}, {}, {}
    good = []
    for i, (rno, name, id_type, number, year, category, form, course, organizer, start, end, hours, days, taught,
            addons, level, rank, code) in enumerate(zip(rnos, *(values[f] for f in _CELL_FIELDS))):
        if i in failed:
            continue
        errors = []
        number, reason = _once(checked_ids, validators.check_id_number, id_type, number)
        if reason:
            errors.append((header["id_number"], reason))
        if category not in categories:
            errors.append((header["category"], cat_reason))
        stated = hours_reason = None
        if hours is not None:
            # keyed by text: Decimal('sNaN') cannot be hashed
            stated, hours_reason = _once(checked_hours, validators.check_hours, str(hours), max_hours)
            if hours_reason:
                errors.append((header["hours"], hours_reason))
        if not hours_reason:
            key = (year, form, code, category, str(stated), str(days), str(taught), addons, level, rank)
            if key not in checked_rules:
                checked_rules[key] = _recognise_row(kind, header, year, form, code, category, stated, days,
                                                    taught, addons, level, rank, max_hours)
            recognised, problem = checked_rules[key]
            if problem:
                errors.append(problem)
        if end < start:
            errors.append((header["end_date"], _("结束日期不能早于开始日期")))
        elif end > today:
            errors.append((header["end_date"], _("结束日期不能晚于今天")))
        elif start.year != year or end.year != year:
            errors.append((header["start_date"], _("学习日期应在认定年度%(year)s年内", year=year)))
        if errors:
            failed[i] = errors
        else:
            national, hours, form_code, rule_id, inputs, computed = recognised
            good.append(Row(rno, name, id_type, number, year, category, national, course, organizer, start, end,
                            hours, form_code, rule_id, inputs, computed))
    return good


_RULE_FIELD_COLUMN = {"hours": "hours", "days": "days", "addons": "addons", "level": "level", "rank": "rank",
                      "learning_form": "learning_form", "category": "category"}
_ADDON_SPLIT = re.compile(r"[、,，;；/]+")


def _figure(value):
    """A stated quantity as text for the rule (3.0 read from a cell is '3'); junk stays as read."""
    try:
        return rules.fmt(value) if Decimal(value).is_finite() else str(value)
    except Exception:
        return str(value)


def _recognise_row(kind, header, year, form, code, category, stated, days, taught, addons, level, rank,
                   max_hours):
    """One row's learning form and hours under `year`'s 学时认定标准:
    ((national form, hours, form code, rule id, inputs as JSON or None, computed
    hours or None), None) or (None, (column header, Chinese reason naming the rule))."""
    def refused(exc, rule):
        column = _RULE_FIELD_COLUMN.get(exc.field, "learning_form")
        if rule is not None and rule.kind == "MULTIPLE" and exc.field == "hours":
            column = "taught_hours"
        msg = exc.message
        if rule is not None and rule.name not in str(msg):
            msg = _("%(msg)s（学时认定标准“%(rule)s”）", msg=msg, rule=rule.name)
        return None, (header.get(column, header["learning_form"]), msg)

    if not kind.rule_forms:
        # A template of one fixed national form (organizer): checked against its rule when the year has one.
        allowed = kind.column("learning_form").choices
        if form.value not in allowed:
            return None, (header["learning_form"],
                          _("本模板的学习形式只能为%(allowed)s", allowed="、".join(sorted(allowed))))
        if stated is None:
            return None, (header["hours"], _("不能为空"))
        rule = standards.rule_for(year, form.name)
        try:
            if rule is not None:
                rules.check_stated(rule, stated, category.name)
        except rules.RuleRefused as exc:
            return refused(exc, rule)
        return (form, stated, form.name, rule.rule_id if rule else None, None, None), None

    # The form: the year's form the cell names (by the stored code first, from a national-layout file).
    text = form.value if isinstance(form, LearningForm) else form
    rule = standards.rule_for(year, code) if code else None
    if rule is None:
        rule = standards.resolve_form(year, text)
    national = LearningForm.__members__.get(rule.national_form) if rule is not None else None
    if rule is None:
        national = form if isinstance(form, LearningForm) else next(
            (f for f in LearningForm if standards._key(f.value) == standards._key(text)), None)
        if national is None:
            return None, (header["learning_form"],
                          _("学习形式“%(form)s”不在%(year)s年度的学时认定标准中，请从模板的下拉列表中选择",
                            form=text, year=year))
        # A national form the year's catalogue does not list: hours as stated.
        if stated is None:
            return None, (header["hours"], _("不能为空"))
        return (national, stated, national.name, None, None, None), None
    national = national or LearningForm.OTHER
    try:
        if rule.kind == "DECLARED":
            if stated is None:
                raise rules.RuleRefused(_("请填写学时"), "hours")
            rules.check_stated(rule, stated, category.name)
            inputs = rules.Inputs(hours=str(stated))
            return (national, stated, rule.code, rule.rule_id, json.dumps(inputs.as_dict(), ensure_ascii=False),
                    stated), None
        chosen = []
        if addons:
            by_key = {}
            for a in rule.addons():
                by_key[standards._key(a.get("name"))] = str(a.get("code"))
                by_key[standards._key(a.get("code"))] = str(a.get("code"))
            for part in filter(None, (p.strip() for p in _ADDON_SPLIT.split(addons))):
                c = by_key.get(standards._key(part))
                if c is None:
                    raise rules.RuleRefused(_("“%(rule)s”没有加项“%(addon)s”", rule=rule.name, addon=part), "addons")
                chosen.append(c)
        inputs = rules.Inputs(hours=None if taught is None else _figure(taught),
                              days=None if days is None else _figure(days),
                              addons=tuple(chosen), level=level or None, rank=rank or None)
        got = rules.recognise(rule, inputs, category.name)
        if got.hours > Decimal(str(max_hours)):
            return None, (header["hours"], _("单条记录学时不能超过%(max)s", max=rules.fmt(max_hours)))
        if stated is not None and stated != got.hours:
            raise rules.RuleRefused(
                _("学时%(h)s与按“%(rule)s”计算的%(c)s学时不一致（%(how)s）", h=rules.fmt(stated), rule=rule.name,
                  c=rules.fmt(got.hours), how=got.text), "hours")
    except rules.RuleRefused as exc:
        return refused(exc, rule)
    return (national, got.hours, rule.code, rule.rule_id, json.dumps(inputs.as_dict(), ensure_ascii=False)[:500],
            got.hours), None


def _year_caps(rows, kind, res):
    """The cap per form per year of the 学时认定标准: a row whose hours, added to
    the person's hours of that form in that year (records stored, pending or
    approved, and the earlier rows of this file), pass the form's cap is an error.
    Returns the rows within their caps.  Checked against the database as it is
    now, at preview and again at confirm."""
    capped = {}
    for rid in {r.rule_id for r, _p, _u in rows if r.rule_id}:
        rule = standards.rule_by_id(rid)
        if rule is not None and rule.cap_year is not None:
            capped[rid] = rule
    if not capped:
        return rows
    used = standards.used_by_persons({(pid, r.year, r.form_code) for r, pid, _u in rows
                                      if pid and r.rule_id in capped})
    header = kind.column("hours").header if kind.column("hours") else _("学时")
    kept = []
    for s in rows:
        r, pid, _unit = s
        rule = capped.get(r.rule_id)
        if rule is not None:
            key = (pid, r.year, r.form_code) if pid else ((r.id_type, r.id_number), r.year, r.form_code)
            held = used.get(key, Decimal(0))
            try:
                rules.check_year_cap(rule, held, r.hours)
            except rules.RuleRefused as exc:
                res.errors.append([r.row, header, exc.message])
                continue
            used[key] = held + r.hours
        kept.append(s)
    return kept


def _chunks(seq, n=CHUNK):
    seq = list(seq)
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def _resolve(rows, ctx, res, today):
    """Persons (scope, unknown, name), duplicates and late flags of the valid Rows,
    against the database as it is now.  Returns the records to store as
    (Row, person id or None for a person the unit registers, the person's unit id,
    late); the other rows go to res.errors or res.duplicates."""
    kind = ctx.kind
    scoped_kind = kind.code in ("unit", "bureau")
    persons = {}  # (id_type, id_number) -> (id, name, unit_id, in scope)
    for chunk in _chunks({r.id_number for r in rows}):
        in_scope = case((scope_clause(Person, ctx.scope), True), else_=False) if scoped_kind else True
        stmt = select(Person.id, Person.id_type, Person.id_number, Person.name, Person.unit_id,
                      in_scope if scoped_kind else Person.id.isnot(None)).where(Person.id_number.in_(chunk))
        for pid, itype, number, name, unit_id, ok in db.session.execute(stmt):
            persons[(itype, number)] = (pid, name, unit_id, bool(ok))
    id_header = kind.column("id_number").header
    name_header = kind.column("name").header
    new_people = {}  # (id_type, id_number) -> name
    first = {}  # duplicate key -> row number
    unique = []  # (row, person id, unit id): the person is right, the first of its key in the file
    for r in rows:
        key = (r.id_type, r.id_number)
        p = persons.get(key)
        if p is None:
            if not kind.creates_persons:
                res.errors.append([r.row, id_header, _("该人员未在系统中登记，请先登记人员信息")])
                continue
            if new_people.setdefault(key, r.name) != r.name:
                res.errors.append([r.row, name_header, _("同一证件号码在文件中对应了不同的姓名")])
                continue
            pid = unit_id = None
        else:
            pid, name, unit_id, ok = p
            if not ok:
                if kind.code == "unit":
                    reason = _("该人员已登记在其他单位，不能由本单位导入；如已调入本单位，请先办理人员调动")
                else:
                    reason = _("该人员所在单位不在本辖区，不能导入")
                res.errors.append([r.row, id_header, reason])
                continue
            if name != r.name:
                if scoped_kind:
                    reason = _("姓名与系统登记的不一致（系统登记为：%(name)s）", name=name)
                else:
                    reason = _("姓名与证件号码不符")
                res.errors.append([r.row, name_header, reason])
                continue
        # Duplicates inside the file (against stored rows below).
        seen = first.setdefault((r.id_type, r.id_number, r.year, r.category, r.course_name, r.start_date), r.row)
        if seen != r.row:
            res.duplicates.append([r.row, _("与第%(row)d行重复（同一人员、年度、科目类别、课程名称和开始日期）", row=seen)])
            res.rows_dup_file += 1
            continue
        unique.append((r, pid, unit_id))
    res.persons_new = len(new_people)

    # Duplicates of records stored already.
    stored = set()
    for chunk in _chunks({pid for _r, pid, _u in unique if pid}):
        stmt = select(HourRecord.person_id, HourRecord.year, HourRecord.category, HourRecord.course_name,
                      HourRecord.start_date).where(HourRecord.person_id.in_(chunk))
        stored.update(tuple(row) for row in db.session.execute(stmt))
    fresh = unique
    if stored:
        fresh = []
        for s in unique:
            r, pid, _unit = s
            if pid and (pid, r.year, r.category, r.course_name, r.start_date) in stored:
                res.duplicates.append([r.row, _("系统中已存在相同记录（可能已导入过），不再重复保存")])
            else:
                fresh.append(s)
    res.rows_dup_stored = len(unique) - len(fresh)
    fresh = _year_caps(fresh, kind, res)
    res.rows_new = len(fresh)
    if not kind.flags_late:
        return [(r, pid, unit_id, False) for r, pid, unit_id in fresh]

    deadlines = {}
    n = cfg("IMPORT_LATE_WORKING_DAYS")
    records = []
    for r, pid, unit_id in fresh:
        if r.end_date not in deadlines:
            deadlines[r.end_date] = add_working_days(r.end_date, n)
        deadline, known_days = deadlines[r.end_date]
        if not known_days:
            res.holiday_data_missing = True
        late = today > deadline
        if late:
            res.late_rows.append(r.row)
        records.append((r, pid, unit_id, late))
    return records


# ============================================================ store


@_gc_paused()
def store(path, kind_code, user, *, filename="", progress=None, today=None):
    """Analyse the file again (its validated rows come from the preview's cache, the
    persons and duplicates from the database as it is now) and store it
    all-or-nothing.  Returns the ImportResult with rows_stored / batch_id.
    Raises ValidationFailed when the file has errors (stores nothing then), and
    DomainError when a duplicate appears while storing (someone stored the same
    record in between: the transaction is rolled back, nothing is stored)."""
    res = analyse(path, kind_code, user, filename=filename, progress=progress, today=today, keep_rows=True)
    if res.file_error:
        raise ValidationFailed(res.file_error)
    if res.errors:
        raise ValidationFailed(
            _("文件中有%(n)d行错误，整份文件未保存；请下载错误文件改正后重新导入", n=res.rows_error)
        )
    kind = get_kind(kind_code)
    records = res.rows
    del res.rows
    ctx_unit = db.session.get(Unit, user.unit_id) if user.unit_id else None
    if progress:
        progress(80, _("正在保存"))
    now = datetime.datetime.utcnow()
    if not records:
        audit.record("import", "ImportBatch", None, user=user, unit_id=user.unit_id,
                     region_code=ctx_unit.region_code if ctx_unit else user.region_code,
                     kind=kind.code, filename=res.filename, rows_added=0,
                     rows_duplicate=res.rows_dup_file + res.rows_dup_stored, rows_error=0, sha256=res.sha256)
        db.session.commit()
        return res
    rows, pids, unit_ids, lates = (list(c) for c in zip(*records))
    try:
        # 1. persons the unit kind registers (see the module docstring)
        new_keys = {}
        for r, pid in zip(rows, pids):
            if pid is None:
                new_keys.setdefault((r.id_type, r.id_number), r.name)
        if new_keys:
            unit = ctx_unit
            # The number is encrypted by its column type; its blind index is set here
            # and read back to pair the new ids with the keys.
            index_of = {key: Person.number_index(key[1]) for key in new_keys}
            created = db.session.execute(
                insert(Person).returning(Person.id, Person.id_type, Person.id_number_bidx),
                [{"name": name, "id_type": t, "id_number": n, "id_number_bidx": index_of[(t, n)],
                  "unit_id": unit.id, "is_freelancer": unit.kind == UnitKind.AGENCY, "unit_confirmed": True}
                 for (t, n), name in new_keys.items()],
            ).all()
            key_of = {(key[0], i): key for key, i in index_of.items()}
            pid_of = {key_of[(t, i)]: pid for pid, t, i in created}
            db.session.execute(
                insert(PersonUnitHistory),
                [{"person_id": pid, "unit_id": unit.id, "start_date": now.date(), "note": "导入登记",
                  "created_at": now} for pid in pid_of.values()],
            )
            for i, r in enumerate(rows):
                if pids[i] is None:
                    pids[i], unit_ids[i] = pid_of[(r.id_type, r.id_number)], unit.id
        # 2. the batch
        batch = ImportBatch(kind=kind.code, filename=res.filename[:200], sha256=res.sha256,
                            rows_added=len(rows), rows_duplicate=res.rows_dup_file + res.rows_dup_stored,
                            rows_error=0, unit_id=user.unit_id,
                            region_code=ctx_unit.region_code if ctx_unit else user.region_code,
                            created_by_id=user.id, created_at=now)
        db.session.add(batch)
        db.session.flush()
        # 3. the records, set-based.  unit_id / region_code are the person's current
        # unit and its region — what records.place_record sets on a single record.
        # The unique key uq_hour_record_dup refuses a duplicate stored since _resolve.
        region_of = {}
        for chunk in _chunks({u for u in unit_ids if u}):
            region_of.update(db.session.execute(select(Unit.id, Unit.region_code).where(Unit.id.in_(chunk))).all())
        field = dict(zip(Row._fields, zip(*rows)))
        _insert_records(db.session.connection(), {
            "person_id": pids, "year": field["year"], "category": field["category"],
            "learning_form": field["learning_form"], "course_name": field["course_name"],
            "form_code": field["form_code"], "rule_id": field["rule_id"], "rule_inputs": field["rule_inputs"],
            "computed_hours": field["computed_hours"],
            "organizer_name": [o or None for o in field["organizer_name"]],
            "start_date": field["start_date"], "end_date": field["end_date"], "hours": field["hours"],
            "unit_id": unit_ids, "region_code": [region_of.get(u) for u in unit_ids], "late_report": lates,
        }, {
            "source": kind.source, "status": Status.APPROVED, "reported_by_unit_id": user.unit_id,
            "import_batch_id": batch.id, "reviewer_id": user.id, "reviewed_at": now,
            "created_by_id": user.id, "created_at": now, "updated_at": now,
        })
        totals.count_import_batch(batch.id)
        audit.record("import", "ImportBatch", batch.id, user=user, unit_id=user.unit_id,
                     region_code=batch.region_code, kind=kind.code, filename=res.filename,
                     rows_added=len(rows), rows_duplicate=batch.rows_duplicate, rows_error=0,
                     persons_created=len(new_keys), sha256=res.sha256)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise DomainError(_("保存时发现重复记录（可能有人同时导入了相同数据），整份文件未保存，请重新导入"))
    res.rows_stored = len(rows)
    res.batch_id = batch.id
    return res


def _insert_records(conn, varying, common):
    """One bulk insert of HourRecord rows: `varying` maps a column to its values (one
    per record), `common` a column to the value of every record.  Each value goes
    through the column type's own bind processor (the exact form SQLAlchemy would
    store) once per distinct value (equal values give equal results), and the
    parameter rows are zipped from the columns, without per-row statement
    parameters: for 100 000 records the Python side costs ~0.1 s, SQLite ~1.2 s.
    PostgreSQL receives them by COPY."""
    table = HourRecord.__table__
    dialect = conn.dialect

    def bound(name, values):
        type_ = table.c[name].type
        process = type_.dialect_impl(dialect).bind_processor(dialect)
        if process is None:
            return values
        done = {v: (None if v is None else process(v)) for v in set(values)}
        return [done[v] for v in values]

    names = list(varying) + list(common)
    params = zip(*(bound(n, v) for n, v in varying.items()),
                 *(itertools.repeat(bound(n, [v])[0]) for n, v in common.items()))
    if dialect.name == "postgresql":
        # COPY (psycopg's copy protocol), in the session's transaction: one
        # statement, so hour_record's statement triggers (hour_tally, the yearly
        # totals) run once for the whole file, and no SQL is parsed per row.
        try:
            with conn.connection.cursor() as cur, \
                    cur.copy("COPY {} ({}) FROM STDIN".format(table.name, ", ".join(names))) as copy:
                for row in params:
                    copy.write_row(row)
        except dialect.dbapi.IntegrityError as e:  # the driver's own: say it as SQLAlchemy would
            raise IntegrityError("COPY " + table.name, None, e) from e
        return
    sql = "INSERT INTO {} ({}) VALUES ({})".format(table.name, ", ".join(names), ", ".join(["?"] * len(names)))
    while batch := list(itertools.islice(params, 10000)):
        conn.exec_driver_sql(sql, batch)


# ============================================================ error file


def error_file(path, result):
    """The failing rows of the file with their original cells and a 错误原因 and a
    原行号 column (both ignored by the import), as .xlsx bytes: fix them and import
    this file again.  Written by xlsx_stream: dates stay dates, the ID and code
    columns are formatted as text (a number typed there keeps its digits), and a
    cell that could run as a formula is text with an apostrophe in front, which
    the import drops again."""
    from app.services.excel_template import DATA_SHEET

    columns = NATIONAL if result.layout == "national" else get_kind(result.kind).columns
    headers = [c.header for c in columns] + ["错误原因", "原行号"]
    # xlsx_stream renders a column's cells once per value, and True == 1: a user's
    # column may mix them, so each cell goes in keyed by its type too.
    rows = ([(v.__class__, v) for v in row] for row in _error_rows(path, result, columns))
    buf = io.BytesIO()
    xlsx_stream.write_xlsx(buf, headers, rows, title=DATA_SHEET, converters=[itemgetter(1)] * len(headers),
                           text_columns=[i for i, c in enumerate(columns) if c.text])
    return buf.getvalue()


def _error_rows(path, result, columns):
    """The rows of the error file: each failing row's cells in `columns` order, its
    reasons and its row number; a file error is a row of its own."""
    if result.file_error:
        yield [None] * len(columns) + [result.file_error, None]
        return
    reasons = {}
    for row, column, reason in result.errors:
        reasons.setdefault(row, []).append(f"{column}：{reason}")
    _name, rows = read_rows(path)
    header_found = None
    for rno, cells in rows:
        if header_found is None:
            if any(not is_blank(c) for c in cells):
                header_found, _missing = _headers_match(cells, columns)
            continue
        if rno not in reasons:
            continue
        out = []
        for col in columns:
            idx = header_found.get(col.key)
            v = cells[idx] if idx is not None and idx < len(cells) else None
            # the value as the import read it: written again, it gets the same one apostrophe
            out.append(xlsx_stream.restore(v) if isinstance(v, str) else v)
        yield out + ["；".join(reasons[rno]), rno]


# ============================================================ jobs


def _load_user(user_id):
    user = db.session.get(CEUser, user_id)
    if user is None:
        raise DomainError(_("用户不存在"))
    return user


@jobs.handler("import_analyse")
def _job_analyse(job_id, params, progress):
    user = _load_user(params["user_id"])
    res = analyse(jobs.kept_file(params["path"]), params["kind"], user, filename=params.get("filename", ""),
                  progress=progress)
    return res.to_dict()


@jobs.handler("import_store")
def _job_store(job_id, params, progress):
    user = _load_user(params["user_id"])
    res = store(jobs.kept_file(params["path"]), params["kind"], user, filename=params.get("filename", ""),
                progress=progress)
    return res.to_dict()


def save_upload(stream, filename):
    """Keep an uploaded file under UPLOAD_DIR/imports by content hash (outside the
    web root), refusing it early when larger than the limit.  Returns the path."""
    folder = os.path.join(current_app.config["UPLOAD_DIR"], "imports")
    os.makedirs(folder, exist_ok=True)
    limit = cfg("IMPORT_MAX_BYTES")
    tmp = os.path.join(folder, f"upload-{os.getpid()}-{time.time_ns()}.part")
    size = 0
    h = hashlib.sha256()
    with open(tmp, "wb") as out:
        while True:
            block = stream.read(1 << 20)
            if not block:
                break
            size += len(block)
            if size > limit:
                out.close()
                os.remove(tmp)
                raise ValidationFailed(
                    _("文件过大，导入文件不能超过 %(max).0f MB；请拆分后分批导入", max=limit / 1048576)
                )
            h.update(block)
            out.write(block)
    path = os.path.join(folder, h.hexdigest() + ".xlsx")
    os.replace(tmp, path)
    return path
