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
* Organizer reports more than 20 working days after the programme end are flagged late
  (chinesecalendar; past its data: weekends only, flagged "节假日数据缺失"; config
  HOLIDAYS_EXTRA adds a year's holidays and make-up working days).
"""
import datetime
import hashlib
import io
import json
import os
import re
import time
import zipfile
from dataclasses import asdict, dataclass, field

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import case, insert, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import (
    CEUser, HourRecord, ImportBatch, Person, PersonUnitHistory, Status, Unit, UnitKind,
)
from app.models.enums import IdType
from app.security.scope import scope_clause, scope_of
from app.services import audit, jobs, validators
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

    def gen():
        pad = [None] * col0
        tops = set(merged.values())
        cache = {}
        for i, cells in enumerate(sheet.iter_rows()):
            r = row0 + i
            if col0 or merged:
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


def analyse(path, kind_code, user, *, filename="", progress=None, today=None, keep_rows=False):
    """Validate every row of the file at `path` for import kind `kind_code` by `user`.

    Returns an ImportResult (with `rows` attached when keep_rows, for store()).
    File-level problems (not an xlsx, bomb, wrong headers, too many rows) land in
    `result.file_error`; row problems in `result.errors` as [row, column, reason]."""
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
        good = _load_validated(path, res, today)
        if good is None:
            sheet_name, rows = read_rows(path)
            formulas = scan_sheet(path, sheet_name)
            good = _validate_rows(rows, kind, res, formulas, progress, today)
            if not res.errors:
                _save_validated(path, res, today, good)
    except ValidationFailed as e:
        res.file_error = str(e)
        res.seconds = time.perf_counter() - t0
        return res
    if progress:
        progress(60, _("正在核对人员和重复记录"))
    _resolve(good, ctx, res, today)
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
        res.rows = good
    return res


# ---- the validated rows of a file, kept next to it between preview and confirm.
# Parsing depends only on the file's bytes, the kind, the day and the hour cap, so
# confirm reuses them and re-checks only what depends on the database (persons,
# scope, duplicates).  JSON, not pickle: the file is data, never code.

def _validated_path(path, res, today):
    folder = os.path.join(current_app.config["UPLOAD_DIR"], "imports", "validated")
    os.makedirs(folder, exist_ok=True)
    cap = current_app.config["MAX_HOURS_PER_RECORD"]
    return os.path.join(folder, f"{res.sha256}.{res.kind}.{today.isoformat()}.{cap}.json")


def _save_validated(path, res, today, good):
    def enc(r):
        return [r["_row"], r["name"], r["id_type"].name, r["id_number"], r["year"], r["category"].name,
                r["learning_form"].name, r["course_name"], r.get("organizer_name") or "",
                r["start_date"].isoformat(), r["end_date"].isoformat(), str(r["hours"])]

    try:
        target = _validated_path(path, res, today)
        tmp = target + ".part"
        with open(tmp, "w", encoding="utf-8") as fh:
            # dumps (C encoder), not dump (pure-Python iterencode): ~10x faster here.
            fh.write(json.dumps({"rows_total": res.rows_total, "layout": res.layout,
                                 "rows": [enc(r) for r in good]}, ensure_ascii=False))
        os.replace(tmp, target)
    except OSError:
        pass  # only a cache


def _load_validated(path, res, today):
    from decimal import Decimal

    from app.models.enums import Category, LearningForm

    target = _validated_path(path, res, today)
    if not os.path.exists(target):
        return None
    try:
        with open(target, encoding="utf-8") as fh:
            data = json.load(fh)
        d = datetime.date.fromisoformat
        rows = [
            {"_row": r[0], "name": r[1], "id_type": IdType[r[2]], "id_number": r[3], "year": r[4],
             "category": Category[r[5]], "learning_form": LearningForm[r[6]], "course_name": r[7],
             "organizer_name": r[8], "start_date": d(r[9]), "end_date": d(r[10]), "hours": Decimal(r[11])}
            for r in data["rows"]
        ]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
    res.rows_total, res.layout = data["rows_total"], data["layout"]
    return rows


def _validate_rows(rows, kind, res, formulas, progress, today):
    """Parse and check each row on its own; return the rows without errors as dicts."""
    max_rows = cfg("IMPORT_MAX_ROWS")
    max_hours = current_app.config["MAX_HOURS_PER_RECORD"]
    header = None
    columns = kind.columns
    errors = res.errors
    good = []
    # Header: the first non-blank row among the first ten.
    for rno, cells in rows:
        if any(not is_blank(c) for c in cells):
            header = (rno, cells)
            break
        if rno > 10:
            break
    if header is None:
        raise ValidationFailed(_("文件中没有数据：未找到表头行"))
    found, missing = _headers_match(header[1], columns)
    if kind.code == "industry":
        # The national collection layout is recognised by its unit columns.
        nfound, nmissing = _headers_match(header[1], NATIONAL)
        if not nmissing and ("unit_name" in nfound or "unit_credit_code" in nfound):
            columns, found, missing, res.layout = NATIONAL, nfound, [], "national"
    if missing:
        raise ValidationFailed(
            _("表头不正确：缺少“%(cols)s”列。请下载并使用本系统的导入模板，不要修改表头。",
              cols="”、“".join(missing))
        )
    plan = [(c, found[c.key]) for c in columns if c.key in found]
    absent = [c for c in columns if c.key not in found]
    col_of = {c.key: c for c in columns}
    cat_choices = {c for c in kind.categories}
    form_col = kind.column("learning_form")
    form_choices = set(form_col.choices) if form_col is not None else None
    header_row = header[0]
    count = 0
    id_cache = {}
    for rno, cells in rows:
        if rno <= header_row:
            continue
        n = len(cells)
        for c in cells:
            if not is_blank_cell(c):
                break
        else:
            continue
        count += 1
        if count > max_rows:
            raise ValidationFailed(
                _("文件数据行数超过上限：最多%(max)d行，请拆分后分批导入", max=max_rows)
            )
        if progress and count % 20000 == 0:
            progress(min(55, 5 + count * 50 // max(max_rows, 1)), _("已读取%(n)d行", n=count))
        rec = {"_row": rno}
        row_errors = []
        for col, idx in plan:
            raw = cells[idx] if idx < n else None
            if formulas and (rno, idx) in formulas:
                row_errors.append((col.header, _("单元格含公式，请复制后“选择性粘贴为数值”再导入")))
                continue
            if is_blank_cell(raw):
                if col.required:
                    row_errors.append((col.header, _("不能为空")))
                rec[col.key] = col.default
                continue
            try:
                rec[col.key] = col.parse(raw)
            except ValidationFailed as e:
                row_errors.append((col.header, str(e)))
        for col in absent:
            rec[col.key] = col.default
        if not row_errors:
            _check_row(rec, kind, col_of, cat_choices, form_choices, max_hours, today, row_errors, id_cache)
        if row_errors:
            for column, reason in row_errors:
                errors.append([rno, column, reason])
        else:
            good.append(rec)
    res.rows_total = count
    if count == 0:
        raise ValidationFailed(_("文件中没有数据行"))
    return good


def _check_id(id_type, number, cache):
    """validators.check_id_number, once per distinct number of a file (a person
    usually has many rows): (normalised number, None) or (None, reason)."""
    key = (id_type, number)
    hit = cache.get(key)
    if hit is None:
        try:
            hit = (validators.check_id_number(id_type, number), None)
        except ValidationFailed as e:
            hit = (None, str(e))
        cache[key] = hit
    return hit


def _check_row(rec, kind, col_of, cat_choices, form_choices, max_hours, today, row_errors, id_cache):
    id_col = col_of["id_number"].header
    number, reason = _check_id(rec.get("id_type") or IdType.RESIDENT, rec["id_number"], id_cache)
    if reason:
        row_errors.append((id_col, reason))
    else:
        rec["id_number"] = number
    if rec.get("id_type") is None:
        rec["id_type"] = IdType.RESIDENT
    cat = rec.get("category")
    if cat is not None and cat not in cat_choices:
        row_errors.append((col_of["category"].header,
                           _("本模板只能导入%(allowed)s", allowed="、".join(c.value for c in kind.categories))))
    form = rec.get("learning_form")
    if form is not None and form_choices is not None and form.value not in form_choices:
        row_errors.append((col_of["learning_form"].header,
                           _("本模板的学习形式只能为%(allowed)s", allowed="、".join(sorted(form_choices)))))
    try:
        rec["hours"] = validators.check_hours(str(rec["hours"]), max_hours)
    except ValidationFailed as e:
        row_errors.append((col_of["hours"].header, str(e)))
    start, end, year = rec.get("start_date"), rec.get("end_date"), rec.get("year")
    if end < start:
        row_errors.append((col_of["end_date"].header, _("结束日期不能早于开始日期")))
    elif end > today:
        row_errors.append((col_of["end_date"].header, _("结束日期不能晚于今天")))
    elif start.year != year or end.year != year:
        row_errors.append((col_of["start_date"].header, _("学习日期应在认定年度%(year)s年内", year=year)))


def _chunks(seq, n=CHUNK):
    seq = list(seq)
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def _resolve(good, ctx, res, today):
    """Persons (scope, unknown, name), duplicates, late flags.  Rows that fail move
    from `good` to res.errors; duplicates to res.duplicates; survivors stay in `good`."""
    kind = ctx.kind
    scoped_kind = kind.code in ("unit", "bureau")
    ids = {(r["id_type"], r["id_number"]) for r in good}
    by_number = {}  # (id_type, id_number) -> (id, name, unit_id, in scope)
    for chunk in _chunks({n for _t, n in ids}):
        in_scope = case((scope_clause(Person, ctx.scope), True), else_=False) if scoped_kind else True
        stmt = select(Person.id, Person.id_type, Person.id_number, Person.name, Person.unit_id,
                      in_scope if scoped_kind else Person.id.isnot(None)).where(Person.id_number.in_(chunk))
        for pid, itype, number, name, unit_id, ok in db.session.execute(stmt):
            by_number[(itype, number)] = (pid, name, unit_id, bool(ok))
    persons = by_number
    id_header = kind.column("id_number").header
    name_header = kind.column("name").header
    survivors = []
    new_people = {}  # key -> name
    for r in good:
        key = (r["id_type"], r["id_number"])
        p = persons.get(key)
        if p is None:
            if kind.creates_persons:
                prev_name = new_people.setdefault(key, r["name"])
                if prev_name != r["name"]:
                    res.errors.append([r["_row"], name_header, _("同一证件号码在文件中对应了不同的姓名")])
                    continue
                r["_person"] = None
                survivors.append(r)
            else:
                res.errors.append([r["_row"], id_header, _("该人员未在系统中登记，请先登记人员信息")])
            continue
        pid, name, unit_id, ok = p
        if not ok:
            if kind.code == "unit":
                reason = _("该人员已登记在其他单位，不能由本单位导入；如已调入本单位，请先办理人员调动")
            else:
                reason = _("该人员所在单位不在本辖区，不能导入")
            res.errors.append([r["_row"], id_header, reason])
            continue
        if name != r["name"]:
            if scoped_kind:
                reason = _("姓名与系统登记的不一致（系统登记为：%(name)s）", name=name)
            else:
                reason = _("姓名与证件号码不符")
            res.errors.append([r["_row"], name_header, reason])
            continue
        r["_person"] = pid
        r["_unit"] = unit_id
        survivors.append(r)
    res.persons_new = len(new_people)

    # Duplicates inside the file, then against stored rows.
    first = {}
    unique = []
    for r in survivors:
        k = (r["id_type"], r["id_number"], r["year"], r["category"], r["course_name"], r["start_date"])
        if k in first:
            res.duplicates.append([r["_row"], _("与第%(row)d行重复（同一人员、年度、科目类别、课程名称和开始日期）", row=first[k])])
            continue
        first[k] = r["_row"]
        unique.append(r)
    res.rows_dup_file = len(survivors) - len(unique)
    known = {r["_person"] for r in unique if r.get("_person")}
    stored = set()
    for chunk in _chunks(known):
        stmt = select(HourRecord.person_id, HourRecord.year, HourRecord.category, HourRecord.course_name,
                      HourRecord.start_date).where(HourRecord.person_id.in_(chunk))
        stored.update(tuple(row) for row in db.session.execute(stmt))
    fresh = []
    for r in unique:
        if r.get("_person") and (r["_person"], r["year"], r["category"], r["course_name"], r["start_date"]) in stored:
            res.duplicates.append([r["_row"], _("系统中已存在相同记录（可能已导入过），不再重复保存")])
            continue
        fresh.append(r)
    res.rows_dup_stored = len(unique) - len(fresh)

    if kind.flags_late:
        deadlines = {}
        n = cfg("IMPORT_LATE_WORKING_DAYS")
        for r in fresh:
            end = r["end_date"]
            if end not in deadlines:
                deadlines[end] = add_working_days(end, n)
            deadline, known_days = deadlines[end]
            if not known_days:
                res.holiday_data_missing = True
            r["late_report"] = today > deadline
            if r["late_report"]:
                res.late_rows.append(r["_row"])
    res.rows_new = len(fresh)
    good[:] = fresh


# ============================================================ store


def store(path, kind_code, user, *, filename="", progress=None, today=None):
    """Analyse the file again (the database may have changed since the preview) and
    store it all-or-nothing.  Returns the ImportResult with rows_stored / batch_id.
    Raises ValidationFailed when the file has errors; stores nothing then."""
    res = analyse(path, kind_code, user, filename=filename, progress=progress, today=today, keep_rows=True)
    if res.file_error:
        raise ValidationFailed(res.file_error)
    if res.errors:
        raise ValidationFailed(
            _("文件中有%(n)d行错误，整份文件未保存；请下载错误文件改正后重新导入", n=res.rows_error)
        )
    kind = get_kind(kind_code)
    rows = res.rows
    del res.rows
    ctx_unit = db.session.get(Unit, user.unit_id) if user.unit_id else None
    if progress:
        progress(80, _("正在保存"))
    now = datetime.datetime.utcnow()
    if not rows:
        audit.record("import", "ImportBatch", None, user=user, unit_id=user.unit_id,
                     region_code=ctx_unit.region_code if ctx_unit else user.region_code,
                     kind=kind.code, filename=res.filename, rows_added=0,
                     rows_duplicate=res.rows_dup_file + res.rows_dup_stored, rows_error=0, sha256=res.sha256)
        db.session.commit()
        return res
    try:
        # 1. persons the unit kind registers (see the module docstring)
        new_keys = {}
        for r in rows:
            if r.get("_person") is None:
                new_keys.setdefault((r["id_type"], r["id_number"]), r["name"])
        if new_keys:
            unit = ctx_unit
            created = db.session.execute(
                insert(Person).returning(Person.id, Person.id_type, Person.id_number),
                [{"name": name, "id_type": t, "id_number": n, "unit_id": unit.id,
                  "is_freelancer": unit.kind == UnitKind.AGENCY, "unit_confirmed": True}
                 for (t, n), name in new_keys.items()],
            ).all()
            pid_of = {(t, n): pid for pid, t, n in created}
            db.session.execute(
                insert(PersonUnitHistory),
                [{"person_id": pid, "unit_id": unit.id, "start_date": now.date(), "note": "导入登记",
                  "created_at": now} for pid in pid_of.values()],
            )
            for r in rows:
                if r.get("_person") is None:
                    r["_person"] = pid_of[(r["id_type"], r["id_number"])]
                    r["_unit"] = unit.id
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
        unit_ids = {r["_unit"] for r in rows if r.get("_unit")}
        region_of = {}
        for chunk in _chunks(unit_ids):
            region_of.update(db.session.execute(select(Unit.id, Unit.region_code).where(Unit.id.in_(chunk))).all())
        common = {
            "source": kind.source, "status": Status.APPROVED, "reported_by_unit_id": user.unit_id,
            "import_batch_id": batch.id, "reviewer_id": user.id, "reviewed_at": now,
            "created_by_id": user.id, "created_at": now, "updated_at": now,
        }
        varying = ("person_id", "year", "category", "learning_form", "course_name", "organizer_name",
                   "start_date", "end_date", "hours", "unit_id", "region_code", "late_report")
        _insert_records(db.session.connection(), common, varying, (
            (r["_person"], r["year"], r["category"], r["learning_form"], r["course_name"],
             r.get("organizer_name") or None, r["start_date"], r["end_date"], r["hours"],
             r.get("_unit"), region_of.get(r.get("_unit")), bool(r.get("late_report")))
            for r in rows
        ))
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


def _insert_records(conn, common, varying, rows):
    """One executemany of HourRecord rows.  Each value goes through the column type's
    own bind processor (the exact form SQLAlchemy would store), but the columns shared
    by every row are processed once and no per-row statement parameters are built:
    this halves the insert time of a large file on SQLite."""
    table = HourRecord.__table__
    dialect = conn.dialect
    names = list(varying) + list(common)
    procs = [table.c[n].type._cached_bind_processor(dialect) for n in varying]
    fixed = tuple(
        (p(v) if (p := table.c[n].type._cached_bind_processor(dialect)) and v is not None else v)
        for n, v in common.items()
    )
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        table.name, ", ".join(names), ", ".join([mark] * len(names)))
    active = [(i, p) for i, p in enumerate(procs) if p is not None]
    batch = []
    for row in rows:
        if active:
            row = list(row)
            for i, p in active:
                v = row[i]
                if v is not None:
                    row[i] = p(v)
        batch.append(tuple(row) + fixed)
        if len(batch) == 10000:
            conn.exec_driver_sql(sql, batch)
            batch = []
    if batch:
        conn.exec_driver_sql(sql, batch)


# ============================================================ error file


def error_file(path, result):
    """The failing rows of the file with their original cells and a 错误原因 column,
    as .xlsx bytes: fix them and import this file again."""
    from openpyxl import Workbook

    from app.services.excel_template import DATA_SHEET

    kind = get_kind(result.kind)
    columns = NATIONAL if result.layout == "national" else kind.columns
    reasons = {}
    for row, column, reason in result.errors:
        reasons.setdefault(row, []).append(f"{column}：{reason}")
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(DATA_SHEET)
    headers = [c.header for c in columns]
    ws.append(headers + ["错误原因", "原行号"])
    if result.file_error:
        ws.append([""] * len(headers) + [result.file_error, ""])
    else:
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
                if isinstance(v, float) and col.text:
                    v = repr(v)
                out.append(_safe(v))
            ws.append(out + ["；".join(reasons[rno]), rno])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _safe(v):
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@"):
        return "'" + v
    return v


# ============================================================ jobs


def _load_user(user_id):
    user = db.session.get(CEUser, user_id)
    if user is None:
        raise DomainError(_("用户不存在"))
    return user


@jobs.handler("import_analyse")
def _job_analyse(job_id, params, progress):
    user = _load_user(params["user_id"])
    res = analyse(params["path"], params["kind"], user, filename=params.get("filename", ""), progress=progress)
    return res.to_dict()


@jobs.handler("import_store")
def _job_store(job_id, params, progress):
    user = _load_user(params["user_id"])
    res = store(params["path"], params["kind"], user, filename=params.get("filename", ""), progress=progress)
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
