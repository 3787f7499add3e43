"""学时登记证书: gather, issue, supersede, render and verify (SPEC §3 flow 6).

* `gather(person, year)` collects the person's approved records of the year,
  grouped 专业科目 / 公需科目, with totals and 达标 from services.requirement, and
  the hash of everything the certificate states (`content_hash`).
* `issue(person, year)` returns the person's valid certificate for that content,
  or supersedes the old one and issues a new edition with a new serial.
* `refresh_certificates(person_id, year)` marks superseded what no longer matches
  the approved records.  It runs lazily at print and at verification time, so a
  certificate is judged against the records as they are, whatever changed them
  (approval, revocation, import, a move to another unit).
* `certificate_pdf` / `batch_pdf` render through xhtml2pdf from a Jinja template
  (autoescaped) under a ResourceAccessPolicy that lets the renderer read only the
  app's certificate asset folder and fetch nothing remote; the CJK font is parsed
  once per process (see services.certificate_render).  Any pisa warning is an
  error: xhtml2pdf reports a missing or blocked font only as a warning, and the
  certificate would print boxes.
* `verify(code)` answers the public verification page.

Callers commit (issue / refresh / verify add rows and audit entries to the
session); `batch_pdf` commits per chunk because it may run for a minute.
"""
import base64
import datetime
import functools
import hashlib
import io
import json
import logging
import os
import secrets
import struct
from dataclasses import dataclass, field
from decimal import Decimal

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import and_, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models import Category, HourRecord, Person, PersonYearTotal
from app.models.certificate import Certificate, CertificateStatus
from app.models.enums import label
from app.services import audit, certificate_render, jobs, requirement
from app.services.errors import DomainError
from app.services.sqlplan import walk_by_key
from app.services.validators import mask_id_number, mask_name

log = logging.getLogger(__name__)

DEFAULT_FONT_PATH = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
TEMPLATE = "certificates/certificate_pdf.html"

# Verification codes: 20 symbols from 31 (digits and capitals without the
# look-alikes 0/O, 1/I/L) = 99 bits from `secrets`, shown in groups of four.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 20

VALID = "valid"
SUPERSEDED = "superseded"
UNKNOWN = "unknown"


class CertificateFontMissing(DomainError):
    """No usable CJK TrueType font: the certificate would print boxes."""


class CertificateRenderError(DomainError):
    """xhtml2pdf reported an error or a warning (treated as an error)."""


# ---------------------------------------------------------------- the font


def font_path():
    return current_app.config.get("CERT_FONT_PATH") or DEFAULT_FONT_PATH


def _font_problem(path):
    """Why `path` cannot serve as the embedded CJK font, or None.  Reads only the
    sfnt table directory: reportlab embeds TrueType outlines ('glyf') only; a CFF
    (PostScript-outline) OpenType font fails with "postscript outlines are not
    supported", and a missing file would fall back to Helvetica boxes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if head[:4] == b"ttcf":
                # A collection: check its first face, the one reportlab embeds.
                (first,) = struct.unpack(">I", fh.read(4))
                fh.seek(first)
                head = fh.read(12)
            if len(head) < 12 or head[:4] not in (b"\x00\x01\x00\x00", b"true"):
                return _("不是TrueType字体（需要TrueType轮廓的.ttf或.ttc文件）")
            (num_tables,) = struct.unpack(">H", head[4:6])
            tags = {fh.read(16)[:4] for _ in range(num_tables)}
    except FileNotFoundError:
        return _("文件不存在")
    except OSError as e:
        return _("无法读取：%(err)s", err=e.strerror or str(e))
    if b"glyf" not in tags:
        return _("字体为PostScript（CFF）轮廓，reportlab无法嵌入，请使用TrueType轮廓的字体")
    return None


@functools.lru_cache(maxsize=8)
def _checked_font(path, mtime, size):
    # Keyed on the file's version: a replaced font is checked again.
    return _font_problem(path)


def checked_font_path():
    """The configured CJK font, checked once per file version.  Raises
    CertificateFontMissing with a message that says how to fix it."""
    path = os.path.abspath(font_path())
    try:
        st = os.stat(path)
        problem = _checked_font(path, st.st_mtime_ns, st.st_size)
    except OSError:
        problem = _("文件不存在")
    if problem:
        message = _(
            "证书中文字体不可用（%(path)s：%(problem)s）。请安装 fonts-wqy-microhei"
            "（apt-get install fonts-wqy-microhei），或将配置项 CERT_FONT_PATH 指向一个"
            "TrueType轮廓的中文字体文件。",
            path=path, problem=problem,
        )
        log.error("certificate font unusable: %s: %s", path, problem)
        raise CertificateFontMissing(message)
    return path


def asset_dir():
    """The only folder the renderer may read (the font is registered by the app)."""
    return os.path.join(current_app.root_path, "assets", "certificates")


def resource_policy():
    return certificate_render.policy_for(asset_dir())


# ---------------------------------------------------------------- content


@dataclass
class Line:
    record_id: int
    category: Category
    form: object
    course: str
    organizer: str
    start: datetime.date
    end: datetime.date
    hours: Decimal


@dataclass
class Content:
    """What a certificate of `person` for `year` states."""

    person: Person
    year: int
    unit_name: str
    lines: list = field(default_factory=list)
    totals: requirement.YearTotals = None
    digest: str = ""

    @property
    def professional_lines(self):
        return [x for x in self.lines if x.category == Category.PRO]

    @property
    def public_lines(self):
        return [x for x in self.lines if x.category == Category.PUB]


def _lines_query(person_ids, year):
    H = HourRecord
    return (
        select(H.id, H.person_id, H.category, H.learning_form, H.course_name, H.organizer_name,
               H.start_date, H.end_date, H.hours)
        .where(H.person_id.in_(person_ids), H.year == year, H.status.in_(requirement.COUNTING_STATUSES))
        .order_by(H.person_id, H.category, H.start_date, H.id)
    )


def _build(person, year, rows, totals):
    """The certificate's lines are the approved records; its totals are the
    person's yearly totals (person_year_total, kept with the same records)."""
    lines = [Line(r.id, r.category, r.learning_form, r.course_name, r.organizer_name or "",
                  r.start_date, r.end_date, Decimal(r.hours)) for r in rows]
    content = Content(
        person=person, year=int(year), unit_name=person.unit.name if person.unit is not None else "",
        lines=lines, totals=totals,
    )
    content.digest = content_hash(content)
    return content


def content_hash(content):
    """sha256 of everything the certificate states (not who printed it or when)."""
    p = content.person
    t = content.totals
    doc = {
        "person": [p.name, p.id_type.name if p.id_type else None, p.id_number],
        "unit": content.unit_name,
        "year": content.year,
        "records": [
            [x.record_id, x.category.name, x.form.name if x.form else None, x.course, x.organizer,
             x.start.isoformat(), x.end.isoformat(), str(x.hours.quantize(Decimal("0.1")))]
            for x in sorted(content.lines, key=lambda x: x.record_id)
        ],
        "required": [str(t.required_total), str(t.required_professional)],
    }
    if t.required_public is not None:  # a public floor (issue 19); digests without one are unchanged
        doc["required"].append(str(t.required_public))
    raw = json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def gather(person, year):
    """Content of `person`'s certificate for `year` (approved records only)."""
    rows = db.session.execute(_lines_query([person.id], int(year))).all()
    return _build(person, year, rows, requirement.year_totals(person.id, year))


def gather_many(persons, year):
    """{person_id: Content} for several persons in one query."""
    by_person = {p.id: [] for p in persons}
    if by_person:
        for r in db.session.execute(_lines_query(list(by_person), int(year))):
            by_person[r.person_id].append(r)
    totals = requirement.totals_of(list(by_person), year)
    return {p.id: _build(p, year, by_person[p.id], totals[p.id]) for p in persons}


# ---------------------------------------------------------------- registry


def new_verify_code():
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(raw):
    """User input -> canonical code, or None when it cannot be one."""
    code = "".join(ch for ch in str(raw or "").upper() if ch.isalnum())
    if len(code) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in code):
        return None
    return code


def format_code(code):
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))


def _audit_scope(person):
    unit = person.unit
    return {"unit_id": person.unit_id, "region_code": unit.region_code if unit is not None else None}


def _supersede(person, year, keep_digest):
    """Mark superseded every valid certificate of (person, year) whose content is
    not `keep_digest` (all of them when it is None).  One conditional UPDATE, so
    two workers refreshing at once supersede each certificate once."""
    C = Certificate
    now = datetime.datetime.utcnow()
    cond = [C.person_id == person.id, C.year == int(year), C.status == CertificateStatus.VALID]
    if keep_digest is not None:
        cond.append(C.content_sha256 != keep_digest)
    ids = db.session.execute(
        update(C).where(*cond).values(status=CertificateStatus.SUPERSEDED, superseded_at=now)
        .returning(C.id, C.serial).execution_options(synchronize_session=False)
    ).all()
    for cid, serial in ids:
        audit.record(
            "certificate_supersede", "Certificate", cid,
            old={"status": CertificateStatus.VALID.name},
            new={"status": CertificateStatus.SUPERSEDED.name, "serial": serial},
            **_audit_scope(person),
        )
    if ids:
        db.session.expire_all()
    return [cid for cid, _s in ids]


def _valid_with(person_id, year, digest):
    C = Certificate
    return db.session.execute(
        select(C).where(C.person_id == person_id, C.year == int(year),
                        C.status == CertificateStatus.VALID, C.content_sha256 == digest)
        .order_by(C.edition.desc()).limit(1)
    ).scalar_one_or_none()


def refresh_certificates(person_id, year, content=None):
    """Supersede the person's certificates of `year` that no longer match the
    approved records.  Returns the valid certificate that still matches, or None.
    The caller commits."""
    person = content.person if content is not None else db.session.get(Person, person_id)
    if person is None:
        return None
    content = content or gather(person, year)
    keep = content.digest if content.lines else None
    C = Certificate
    valid = db.session.execute(
        select(C.content_sha256).where(C.person_id == person.id, C.year == int(year),
                                       C.status == CertificateStatus.VALID)
    ).scalars().all()
    if any(d != keep for d in valid):
        # Only then a write: reprinting unchanged certificates stays read-only.
        _supersede(person, year, keep)
    if keep is None or keep not in valid:
        return None
    return _valid_with(person.id, year, keep)


def issue(person, year, *, user=None, content=None):
    """The person's valid certificate for `year`: the existing one when the approved
    records are unchanged, else a new edition (the old one superseded).  Raises
    DomainError when the year has no approved hours.  The caller commits."""
    content = content or gather(person, year)
    if not content.lines:
        raise DomainError(_("%(name)s %(year)d年度没有已核准的学时，无法打印证书", name=person.name, year=int(year)))
    current = refresh_certificates(person.id, year, content=content)
    if current is not None:
        return current
    for _attempt in range(3):
        edition = (db.session.execute(
            select(func.max(Certificate.edition)).where(
                Certificate.person_id == person.id, Certificate.year == int(year))
        ).scalar() or 0) + 1
        t = content.totals
        cert = Certificate(
            serial=f"{int(year)}{person.id:08d}{edition:02d}", person_id=person.id, year=int(year),
            edition=edition, content_sha256=content.digest, verify_code=new_verify_code(),
            status=CertificateStatus.VALID, issued_at=datetime.datetime.utcnow(),
            issued_by_id=getattr(user, "id", None), person_name=person.name,
            professional_hours=t.professional, public_hours=t.public, met=t.met,
        )
        try:
            with db.session.begin_nested():
                db.session.add(cert)
                db.session.flush()
        except IntegrityError:
            # Another print of the same person and year won the race: take its
            # certificate when it certifies the same content.
            db.session.expire_all()
            current = _valid_with(person.id, year, content.digest)
            if current is not None:
                return current
            continue
        audit.record(
            "certificate_issue", "Certificate", cert.id, user=user,
            new={"serial": cert.serial, "person_id": person.id, "year": int(year),
                 "sha256": content.digest, "total_hours": str(t.total)},
            **_audit_scope(person),
        )
        return cert
    raise DomainError(_("证书编号冲突，请稍后重试"))


# ---------------------------------------------------------------- verification


@dataclass(frozen=True)
class Verification:
    state: str  # VALID / SUPERSEDED / UNKNOWN
    masked_name: str = ""
    year: int = None
    professional: Decimal = None
    public: Decimal = None
    total: Decimal = None
    issued_on: datetime.date = None


def verify(raw_code):
    """What the public page may say about a code: its state and, when it names a
    certificate, the masked name, year, hours per category, total and issue
    date -- nothing else.  The certificate is refreshed first (the caller commits)."""
    code = normalize_code(raw_code)
    if code is None:
        return Verification(UNKNOWN)
    cert = db.session.execute(select(Certificate).where(Certificate.verify_code == code)).scalar_one_or_none()
    if cert is None:
        return Verification(UNKNOWN)
    if cert.status == CertificateStatus.VALID:
        refresh_certificates(cert.person_id, cert.year)
        db.session.refresh(cert)
    return Verification(
        state=VALID if cert.status == CertificateStatus.VALID else SUPERSEDED,
        masked_name=mask_name(cert.person_name), year=cert.year,
        professional=cert.professional_hours, public=cert.public_hours,
        total=cert.total_hours, issued_on=cert.issued_at.date(),
    )


# ---------------------------------------------------------------- rendering


@functools.lru_cache(maxsize=2048)
def qr_data_uri(value, scale=6, border=2):
    """A QR code of `value` as a PNG data: URI, from reportlab's QR encoder.

    An image rather than <pdf:barcode type="qr">: the barcode tag draws every
    module as a separate reportlab shape (~30 ms a certificate, half the budget);
    a 1-bit PNG is encoded once and drawn as one image, sharp at any zoom
    because PDF images are not interpolated.  data: URIs pass the resource policy
    without touching the disk or the network."""
    from PIL import Image
    from reportlab.graphics.barcode import qrencoder

    qr = qrencoder.QRCode(None, qrencoder.QRErrorCorrectLevel.M)
    qr.addData(value)
    qr.make()
    n = qr.getModuleCount()
    size = n + 2 * border
    img = Image.new("1", (size, size), 1)
    px = img.load()
    for r, row in enumerate(qr.modules):
        for c, dark in enumerate(row):
            if dark:
                px[c + border, r + border] = 0
    img = img.resize((size * scale, size * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def verify_url(code, base_url):
    return base_url.rstrip("/") + "/verify/" + code


def _period(start, end):
    """2025.03.01 / 2025.03.01–03.05 / 2025.12.30–2026.01.02"""
    if start == end:
        return f"{start:%Y.%m.%d}"
    if start.year == end.year:
        return f"{start:%Y.%m.%d}–{end:%m.%d}"
    return f"{start:%Y.%m.%d}–{end:%Y.%m.%d}"


def _hours(value):
    return f"{float(value):g}"


def _view_model(content, cert, *, full_id, base_url):
    p = content.person
    t = content.totals
    url = verify_url(cert.verify_code, base_url)

    def group(title, lines, subtotal):
        return {
            "title": title,
            "subtotal": _hours(subtotal),
            "lines": [
                {"course": x.course, "form": label(x.form), "organizer": x.organizer,
                 "dates": _period(x.start, x.end),
                 "hours": _hours(x.hours)}
                for x in lines
            ],
        }

    return {
        "name": p.name,
        "id_type": label(p.id_type),
        "id_number": p.id_number if full_id else mask_id_number(p.id_number),
        "unit": content.unit_name,
        "year": content.year,
        "groups": [
            group(label(Category.PRO), content.professional_lines, t.professional),
            group(label(Category.PUB), content.public_lines, t.public),
        ],
        "professional": _hours(t.professional),
        "public": _hours(t.public),
        "total": _hours(t.total),
        "required_total": _hours(t.required_total),
        "required_professional": _hours(t.required_professional),
        "required_level": t.level,  # the title level whose own requirement applies (None: the year's)
        "met": t.met,
        "serial": cert.serial,
        "code": format_code(cert.verify_code),
        "verify_url": url,
        "qr": qr_data_uri(url),
        "issued_on": cert.issued_at.date(),
    }


def render_html(entries, *, full_id, base_url):
    """HTML of one or more certificates (a page break before each after the first).
    `entries`: [(Content, Certificate)].  The template is compiled once per process
    by Jinja's cache; user text reaches it only through autoescaping."""
    env = current_app.jinja_env
    assert env.autoescape is True or env.autoescape(TEMPLATE), "certificate template must autoescape"
    template = env.get_template(TEMPLATE)
    checked_font_path()
    return template.render(
        font_path=certificate_render.stand_in_path(asset_dir()), font_family=certificate_render.FONT_FAMILY,
        issuer=current_app.config.get("CERT_ISSUER") or _("江苏省人力资源和社会保障厅"),
        certs=[_view_model(c, cert, full_id=full_id, base_url=base_url) for c, cert in entries],
    )


def html_to_pdf(html, dest):
    """Render `html` into the binary file `dest` under the resource policy.
    Raises CertificateRenderError on any pisa error or warning."""
    data, problems = certificate_render.render(html, asset_dir(), checked_font_path())
    _raise_if(problems)
    dest.write(data)
    return dest


def _raise_if(problems):
    if problems:
        log.error("certificate render failed: %s", problems)
        # The details (paths, URLs) go to the log, not to the user.
        raise CertificateRenderError(_("证书生成失败，请联系系统管理员（详细原因已记入日志）"), problems=problems)


def certificate_pdf(person, year, *, user=None, full_id=False, base_url):
    """(Certificate, PDF bytes) of one person's certificate; issues or reuses the
    certificate (the caller commits)."""
    checked_font_path()
    content = gather(person, year)
    cert = issue(person, year, user=user, content=content)
    buf = io.BytesIO()
    html_to_pdf(render_html([(content, cert)], full_id=full_id, base_url=base_url), buf)
    return cert, buf.getvalue()


def render_processes(n_chunks):
    """How many render processes a batch of `n_chunks` chunks uses (1: in this
    process).  CERT_RENDER_PROCESSES, 0 = one per CPU (at most 4)."""
    if n_chunks < 3:
        return 1  # starting render processes (~1 s) would cost what they save
    wanted = int(current_app.config.get("CERT_RENDER_PROCESSES", 0)) or min(os.cpu_count() or 1, 4)
    return max(1, min(wanted, n_chunks))


def batch_pdf(person_ids, year, dest, *, user=None, full_id=False, base_url, chunk_size=None,
              processes=None, progress=None):
    """All listed persons' certificates for `year` in ONE PDF written to `dest`,
    a page break before each person.  Persons without approved hours that year are
    skipped.  Returns (printed, skipped).  The caller has already restricted
    `person_ids` to its scope.

    Memory stays bounded: persons are read, issued (committed per chunk) and
    rendered CERT_BATCH_CHUNK at a time, and at most two chunks per render process
    are in flight.  xhtml2pdf renders one document at a time per process (a global
    lock), so chunks render in parallel in separate processes (`processes`,
    default render_processes()); this process only queries, issues and merges."""
    from pypdf import PdfReader, PdfWriter

    font = checked_font_path()
    chunk_size = chunk_size or int(current_app.config.get("CERT_BATCH_CHUNK", 50))
    ids = sorted({int(i) for i in person_ids})
    chunks = [ids[i:i + chunk_size] for i in range(0, len(ids), chunk_size)]
    processes = processes or render_processes(len(chunks))
    writer = PdfWriter()
    counts = {"printed": 0, "skipped": 0, "done": 0}

    def prepare(chunk):
        persons = db.session.execute(
            select(Person).options(joinedload(Person.unit)).where(Person.id.in_(chunk)).order_by(Person.id)
        ).scalars().all()
        counts["skipped"] += len(chunk) - len(persons)
        contents = gather_many(persons, year)
        entries = []
        for p in persons:
            content = contents[p.id]
            if not content.lines:
                counts["skipped"] += 1
                continue
            entries.append((content, issue(p, year, user=user, content=content)))
        db.session.commit()
        counts["printed"] += len(entries)
        return render_html(entries, full_id=full_id, base_url=base_url) if entries else None

    def append(data, problems):
        _raise_if(problems)
        writer.append(PdfReader(io.BytesIO(data)))
        counts["done"] += 1
        if progress is not None:
            progress(int(100 * counts["done"] / len(chunks)))

    if processes <= 1:
        for chunk in chunks:
            html = prepare(chunk)
            if html is None:
                counts["done"] += 1
                continue
            append(*certificate_render.render(html, asset_dir(), font))
    else:
        import multiprocessing
        from collections import deque
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: this process holds database connections and threads.
        with ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn")) as pool:
            pending = deque()
            for chunk in chunks:
                html = prepare(chunk)
                if html is None:
                    counts["done"] += 1
                    continue
                pending.append(pool.submit(certificate_render.render, html, asset_dir(), font))
                while len(pending) >= 2 * processes:
                    append(*pending.popleft().result())
            while pending:
                append(*pending.popleft().result())

    if not counts["printed"]:
        raise DomainError(_("所选人员在%(year)d年度都没有已核准的学时", year=int(year)))
    writer.write(dest)
    writer.close()
    return counts["printed"], counts["skipped"]


# ---------------------------------------------------------------- batch job

JOB_KIND = "certificate_batch"


def job_output_path(job_id):
    folder = os.path.join(current_app.config["VAR_DIR"], "certificates")
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"batch-{int(job_id)}.pdf")


@jobs.handler(JOB_KIND)
def _job_batch(job_id, params, progress):
    """A large batch, run by the job runner (an RQ worker or a thread).  The ids
    were scoped by the request; the submitter's scope is applied again here."""
    from app.models import CEUser
    from app.security.scope import filter_ids_in_scope, scope_of, sees_full_id

    user = db.session.get(CEUser, params["user_id"])
    scope = scope_of(user)
    ids = filter_ids_in_scope(Person, params["person_ids"], scope)
    path = job_output_path(job_id)
    with open(path, "wb") as out:
        printed, skipped = batch_pdf(
            ids, params["year"], out, user=user, full_id=sees_full_id(scope),
            base_url=params["base_url"], progress=progress,
        )
    return {"_path": path, "printed": printed, "skipped": skipped, "filename": params.get("filename"),
            "_message": _("已生成%(n)d份证书", n=printed)}


def persons_with_hours(year, scope_clause_person, *, query=None, offset=0, limit=50):
    """Persons (restricted by `scope_clause_person`) with approved hours in `year`,
    by id, with their YearTotals: [(Person, YearTotals)], has_more."""
    T = PersonYearTotal
    has_hours = select(T.person_id).where(T.person_id == Person.id, T.year == int(year), requirement.has_hours()).exists()
    # By id, the first persons of a region are found walking the key (sqlplan).
    where = walk_by_key(and_(scope_clause_person, has_hours), Person.__table__, db.engine.dialect.name)
    stmt = select(Person).options(joinedload(Person.unit)).where(where)
    if query:
        q = query.strip()
        stmt = stmt.where((Person.name.contains(q, autoescape=True)) | (Person.id_number == q.upper()))
    persons = db.session.execute(stmt.order_by(Person.id).offset(offset).limit(limit + 1)).scalars().all()
    has_more = len(persons) > limit
    persons = persons[:limit]
    totals = requirement.totals_of([p.id for p in persons], year)
    return [(p, totals[p.id]) for p in persons], has_more
