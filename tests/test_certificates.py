"""学时登记证书: real PDFs checked with poppler (pdftotext, pdffonts, pdftoppm),
the registry (same serial while unchanged, superseded after a change), the
public verification page, scope refusals for every role, and renderer safety."""
import datetime
import io
import os
import re
import subprocess
import tempfile
from decimal import Decimal

import pytest
from PIL import Image
from sqlalchemy import select, update

from app.extensions import db
from app.models import AuditLog, Category, HourRecord, LearningForm, Person, Source, Status
from app.models.certificate import Certificate, CertificateStatus
from app.security.scope import Scope
from app.services import certificates as certs
from app.services.records import place_record
from app.services.requirement import totals_by_year
from tests.conftest import ARTIFACTS, _config, post

PDF = "application/pdf"


# ------------------------------------------------------------------ helpers


def _poppler(tool, data, *args):
    with tempfile.NamedTemporaryFile(suffix=".pdf") as f:
        f.write(data)
        f.flush()
        return subprocess.run([tool, *args, f.name, *(["-"] if tool == "pdftotext" else [])],
                              check=True, capture_output=True).stdout.decode("utf-8")


def pdf_text(data, layout=True):
    """The text; layout=False keeps each table cell's wrapped lines together."""
    return _poppler("pdftotext", data, *(["-layout"] if layout else []))


def pdf_fonts(data):
    return _poppler("pdffonts", data)


def pdf_pages(data):
    info = _poppler("pdfinfo", data)
    return int(re.search(r"Pages:\s+(\d+)", info).group(1))


def _squash(text):
    return re.sub(r"\s+", "", text)


def _person(name):
    return db.session.execute(select(Person).where(Person.name == name)).scalars().first()


def _year_with_hours(person):
    """The most recent year with approved hours, and its totals."""
    years = totals_by_year(person.id)
    assert years, person.name
    year = next(iter(years))
    return year, years[year]


def _hours(value):
    return f"{float(value):g}"


def _certs_of(person_id, year):
    return db.session.execute(
        select(Certificate).where(Certificate.person_id == person_id, Certificate.year == year)
        .order_by(Certificate.edition)
    ).scalars().all()


def _get_pdf(client, url):
    resp = client.get(url)
    assert resp.status_code == 200, resp.status_code
    assert resp.mimetype == PDF, resp.get_data(as_text=True)[:500]
    return resp.data


def _refused(client, url):
    """A refused print: no PDF, the user is told why."""
    resp = client.get(url, follow_redirects=True)
    assert resp.mimetype != PDF
    html = resp.get_data(as_text=True)
    assert resp.status_code in (200, 403, 404)
    return html


# ------------------------------------------------------------------ the PDF


def test_applicant_prints_own_certificate_real_pdf(app, login_as):
    with app.app_context():
        p = _person("张三")
        pid, id_number, unit = p.id, p.id_number, p.unit.name
        year, totals = _year_with_hours(p)
    c = login_as("zhangsan")
    page = c.get("/certificates/").get_data(as_text=True)
    assert "打印学时登记证书" in page and f"/certificates/pdf/{pid}/{year}" in page

    data = _get_pdf(c, f"/certificates/pdf/{pid}/{year}")
    with app.app_context():
        (cert,) = _certs_of(pid, year)
        serial, code = cert.serial, cert.verify_code
        assert cert.status == CertificateStatus.VALID and cert.issued_by.username == "zhangsan"
    text = pdf_text(data)
    flat = _squash(text)
    assert "继续教育学时登记证书" in flat
    assert "张三" in flat and unit in flat
    assert id_number in flat  # the applicant sees the whole ID number
    assert f"{year}年度" in flat
    assert serial in flat
    assert certs.format_code(code) in flat
    assert f"合计{_hours(totals.total)}学时" in flat
    assert f"专业科目{_hours(totals.professional)}学时" in flat
    assert f"公需科目{_hours(totals.public)}学时" in flat
    assert ("本年度已达标" if totals.met else "本年度未达标") in flat
    assert f"/verify/{code}" in flat

    # The CJK font is embedded (TrueType, emb = yes); nothing CJK is left to a
    # viewer's fonts.
    fonts = pdf_fonts(data)
    cjk = [line for line in fonts.splitlines() if "WenQuanYi" in line]
    assert cjk, fonts
    assert all(" TrueType " in line and re.search(r"\byes\s+yes\s+yes\b", line) for line in cjk), fonts

    # A page rendered to PNG has ink where the title is (real glyphs, not blank).
    os.makedirs(ARTIFACTS, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "c.pdf")
        with open(src, "wb") as f:
            f.write(data)
        subprocess.run(["pdftoppm", "-r", "100", "-png", "-f", "1", "-l", "1", "-singlefile", src,
                        os.path.join(ARTIFACTS, "certificate_page")], check=True)
    img = Image.open(os.path.join(ARTIFACTS, "certificate_page.png")).convert("L")
    w, h = img.size
    title = img.crop((int(w * 0.25), int(h * 0.03), int(w * 0.75), int(h * 0.09)))
    dark = sum(1 for v in title.get_flattened_data() if v < 128)
    assert dark > 500, dark


def test_printing_again_keeps_the_serial_and_a_change_supersedes(app, login_as):
    with app.app_context():
        p = _person("张三")
        pid = p.id
        year, _t = _year_with_hours(p)
    c = login_as("zhangsan")
    first = pdf_text(_get_pdf(c, f"/certificates/pdf/{pid}/{year}"))
    second = pdf_text(_get_pdf(c, f"/certificates/pdf/{pid}/{year}"))
    with app.app_context():
        (cert,) = _certs_of(pid, year)
        old_serial, old_code = cert.serial, cert.verify_code
    assert old_serial in _squash(first) and old_serial in _squash(second)

    public = app.test_client()
    page = public.get(f"/verify/{old_code}").get_data(as_text=True)
    assert 'data-state="valid"' in page and "证书有效" in page

    # An approved record of that year changes (directly in the database, as any
    # path could): the certificate no longer states the truth.
    with app.app_context():
        rec = db.session.execute(
            select(HourRecord).where(HourRecord.person_id == pid, HourRecord.year == year,
                                     HourRecord.status == Status.APPROVED)
        ).scalars().first()
        db.session.execute(update(HourRecord).where(HourRecord.id == rec.id).values(hours=rec.hours + 2))
        db.session.commit()
    page = public.get(f"/verify/{old_code}").get_data(as_text=True)
    assert 'data-state="superseded"' in page and "证书已作废" in page
    with app.app_context():
        (cert,) = _certs_of(pid, year)
        assert cert.status == CertificateStatus.SUPERSEDED and cert.superseded_at is not None

    third = _squash(pdf_text(_get_pdf(c, f"/certificates/pdf/{pid}/{year}")))
    with app.app_context():
        old, new = _certs_of(pid, year)
        assert old.serial == old_serial and old.status == CertificateStatus.SUPERSEDED
        assert new.serial != old_serial and new.status == CertificateStatus.VALID and new.edition == 2
        new_serial, new_code = new.serial, new.verify_code
        actions = list(db.session.execute(
            select(AuditLog.action).where(AuditLog.object_type == "Certificate")).scalars())
        assert actions.count("certificate_issue") == 2 and actions.count("certificate_supersede") == 1
    assert new_serial in third and old_serial not in third
    assert 'data-state="valid"' in public.get(f"/verify/{new_code}").get_data(as_text=True)
    assert 'data-state="superseded"' in public.get(f"/verify/{old_code}").get_data(as_text=True)


def test_revocation_through_approval_supersedes(app, login_as):
    """Revoking (撤销认定) a counted record supersedes the certificate (SPEC §3.8)."""
    from app.services import approval

    with app.app_context():
        p = _person("张三")
        pid = p.id
        year, _t = _year_with_hours(p)
    c = login_as("zhangsan")
    _get_pdf(c, f"/certificates/pdf/{pid}/{year}")
    with app.app_context():
        (cert,) = _certs_of(pid, year)
        code = cert.verify_code
        rec_id = db.session.execute(
            select(HourRecord.id).where(HourRecord.person_id == pid, HourRecord.year == year,
                                        HourRecord.status == Status.APPROVED)
        ).scalars().first()
        result = approval.transition([rec_id], "revoke", scope=Scope(everything=True), comment="证明材料不实")
        assert result.done == 1
    page = app.test_client().get(f"/verify/?code={code}").get_data(as_text=True)
    assert 'data-state="superseded"' in page


def test_verification_page_shows_only_what_it_may(app, login_as):
    with app.app_context():
        p = _person("张三")
        pid, id_number, unit = p.id, p.id_number, p.unit.name
        year, totals = _year_with_hours(p)
    _get_pdf(login_as("zhangsan"), f"/certificates/pdf/{pid}/{year}")
    with app.app_context():
        (cert,) = _certs_of(pid, year)
        code, serial = cert.verify_code, cert.serial
    public = app.test_client()  # not signed in
    # As typed from the paper: lower case, with the dashes.
    resp = public.get("/verify/?code=" + certs.format_code(code).lower())
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "证书有效" in html
    detail = re.search(r'<table class="table table-bordered" id="verify-detail">(.*?)</table>', html, re.S).group(1)
    cells = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td>(.*?)</td>", detail, re.S)]
    assert cells == [
        "张*", str(year), f"{_hours(totals.professional)} 学时", f"{_hours(totals.public)} 学时",
        f"{_hours(totals.total)} 学时", cert_issue_date(app, code),
    ]
    for secret in ("张三", id_number, unit, serial):
        assert secret not in html
    assert resp.headers["Cache-Control"] == "no-store"

    unknown = public.get("/verify/ABCDEFGHJKMNPQRSTUVW").get_data(as_text=True)
    assert 'data-state="unknown"' in unknown and "未找到该证书" in unknown
    garbage = public.get("/verify/?code=%3Cscript%3E").get_data(as_text=True)
    assert 'data-state="unknown"' in garbage and "<script>" not in garbage
    form = public.get("/verify/").get_data(as_text=True)
    assert "核验码" in form and "verify-state" not in form


def cert_issue_date(app, code):
    with app.app_context():
        cert = db.session.execute(select(Certificate).where(Certificate.verify_code == code)).scalar_one()
        return cert.issued_at.date().isoformat()


def test_verification_codes_are_long_and_random():
    codes = {certs.new_verify_code() for _ in range(2000)}
    assert len(codes) == 2000
    assert all(len(c) == certs.CODE_LENGTH >= 16 and set(c) <= set(certs.CODE_ALPHABET) for c in codes)
    assert not set("01OIL") & set(certs.CODE_ALPHABET)
    assert certs.normalize_code(" " + certs.format_code("ABCDEFGHJKMNPQRSTUVW").lower() + " ") == "ABCDEFGHJKMNPQRSTUVW"
    assert certs.normalize_code("ABCDEFGHJKMNPQRSTUV0") is None


def test_verification_is_rate_limited(app, backend):
    """FAB's limiter (storage shared across workers through RATELIMIT_STORAGE_URI)."""
    from app import create_app

    class Limited(_config(backend.work_url)):
        RATELIMIT_ENABLED = True
        RATELIMIT_STORAGE_URI = "memory://"
        CERT_VERIFY_RATE_LIMIT = "3 per minute"

    limited = create_app(Limited)
    c = limited.test_client()
    codes = [c.get("/verify/ABCDEFGHJKMNPQRSTUVW").status_code for _ in range(4)]
    assert codes[:3] == [200, 200, 200] and codes[3] == 429
    resp = c.get("/verify/?code=ABCDEFGHJKMNPQRSTUVW")
    assert resp.status_code == 429 and "核验请求过于频繁，请稍后再试" in resp.get_data(as_text=True)
    with limited.app_context():
        db.session.remove()
        db.engine.dispose()


# ------------------------------------------------------------------ safety


def _add_record(person, year, course, organizer="东南大学", hours=8):
    rec = HourRecord(
        person=person, year=year, category=Category.PRO, learning_form=LearningForm.TRAIN_ONSITE,
        course_name=course, organizer_name=organizer, start_date=datetime.date(year, 3, 2),
        end_date=datetime.date(year, 3, 3), hours=Decimal(hours), source=Source.UNIT_IMPORT,
        status=Status.APPROVED,
    )
    place_record(rec, person)
    db.session.add(rec)
    db.session.commit()
    return rec.id


def test_malicious_text_prints_as_text(app, login_as):
    with app.app_context():
        p = _person("张三")
        pid = p.id
        year, _t = _year_with_hours(p)
        _add_record(p, year, '<img src="/etc/passwd">', organizer="file:///etc/passwd")
        _add_record(p, year, '<pdf:barcode value="x"></pdf:barcode>&amp;<b>粗</b>', organizer='"><link href="http://169.254.169.254/">')
    data = _get_pdf(login_as("zhangsan"), f"/certificates/pdf/{pid}/{year}")
    # Cells wrap over lines; drop the row numbers and dates that pdftotext puts
    # between a cell's lines, then read the cells' text whole.
    lines = [x for x in pdf_text(data, layout=False).splitlines()
             if not re.fullmatch(r"\s*(\d+|[\d.–]+)\s*", x)]
    flat = _squash("".join(lines))
    assert _squash('<img src="/etc/passwd">') in flat
    assert "file:///etc/passwd" in flat
    assert _squash('<pdf:barcode value="x"></pdf:barcode>&amp;<b>粗</b>') in flat
    assert _squash('"><link href="http://169.254.169.254/">') in flat
    assert "root:x:0:0" not in flat


def test_renderer_reads_only_its_assets_and_fetches_nothing(app):
    """Defence in depth: even markup that escaped the template is refused by the
    resource policy, and a refused resource is an error, not a silent gap."""
    from app.services import certificate_render as render

    with app.app_context():
        font = certs.checked_font_path()
        stand_in = render.stand_in_path(certs.asset_dir())
        face = "<style>@font-face {{ font-family: cecjk; src: url(\"{}\"); }} body {{ font-family: cecjk; }}</style>"
        head = "<html><head>" + face.format(stand_in) + "</head><body>"
        for evil in ('<img src="/etc/passwd">', '<img src="file:///etc/hostname">',
                     '<img src="http://127.0.0.1:9/x.png">', '<img src="https://example.com/x.png">',
                     '<img src="../../config.py">', '<link rel="stylesheet" href="/etc/passwd">'):
            with pytest.raises(certs.CertificateRenderError):
                certs.html_to_pdf(head + "证书" + evil + "</body></html>", io.BytesIO())
        # Not even the system's font folder: the font is registered by the app, the
        # renderer itself reads only the asset folder.
        with pytest.raises(certs.CertificateRenderError):
            certs.html_to_pdf("<html><head>" + face.format(font) + "</head><body>证书</body></html>", io.BytesIO())
        # The same document without them renders, with the CJK font embedded.
        out = io.BytesIO()
        certs.html_to_pdf(head + "证书</body></html>", out)
        assert out.getvalue().startswith(b"%PDF")
        assert "证书" in pdf_text(out.getvalue()) and "WenQuanYi" in pdf_fonts(out.getvalue())


def test_missing_or_unusable_font_fails_loudly(app, login_as, tmp_path):
    with app.app_context():
        p = _person("张三")
        pid = p.id
        year, _t = _year_with_hours(p)
    otf = tmp_path / "cff.otf"
    otf.write_bytes(b"OTTO" + b"\x00" * 64)
    original = app.config["CERT_FONT_PATH"]
    try:
        for path, why in ((str(tmp_path / "missing.ttc"), "文件不存在"), (str(otf), "不是TrueType字体")):
            app.config["CERT_FONT_PATH"] = path
            with app.app_context():
                with pytest.raises(certs.CertificateFontMissing) as err:
                    certs.certificate_pdf(_person("张三"), year, base_url="http://x/")
                assert why in str(err.value) and "fonts-wqy-microhei" in str(err.value)
                assert "CERT_FONT_PATH" in str(err.value)
                db.session.rollback()
            html = _refused(login_as("zhangsan"), f"/certificates/pdf/{pid}/{year}")
            assert "证书中文字体不可用" in html
        with app.app_context():
            assert _certs_of(pid, year) == []  # nothing issued for a PDF never made
    finally:
        app.config["CERT_FONT_PATH"] = original


# ------------------------------------------------------------------ scope


def _pid(app, name):
    with app.app_context():
        p = _person(name)
        return p.id, _year_with_hours(p)[0]


@pytest.mark.parametrize("username,foreign", [
    ("zhangsan", "李四"), ("zhangsan", "王五"), ("lisi", "张三"), ("wangwu", "张三"),
    ("clerk_a", "李四"), ("clerk_a", "王五"), ("unitadmin_a", "李四"), ("clerk_b", "张三"),
    ("agency_clerk", "张三"), ("bureau_sz", "张三"), ("bureau_nj", "李四"),
])
def test_foreign_certificate_refused(app, login_as, username, foreign):
    pid, year = _pid(app, foreign)
    c = login_as(username)
    html = _refused(c, f"/certificates/pdf/{pid}/{year}")
    assert "不在您的权限范围内" in html or "权限" in html
    if username not in ("zhangsan", "lisi", "wangwu"):
        resp = post(c, "/certificates/batch", {"year": year, "person_id": [pid]}, follow_redirects=True)
        assert resp.mimetype != PDF and "不在您的权限范围内" in resp.get_data(as_text=True)
    # A certificate printed by its owner's unit is not visible in the registry either.
    with app.app_context():
        person = db.session.get(Person, pid)
        cert = certs.issue(person, year)
        db.session.commit()
        cert_id, serial = cert.id, cert.serial
    assert serial not in c.get("/certificateregistry/list/").get_data(as_text=True)
    resp = c.get(f"/certificateregistry/show/{cert_id}", follow_redirects=True)
    assert serial not in resp.get_data(as_text=True)
    with app.app_context():
        assert len(_certs_of(pid, year)) == 1  # the refused prints issued nothing


def test_roles_without_print_permission_are_refused(app, login_as):
    pid, year = _pid(app, "张三")
    for username in ("organizer",):
        c = login_as(username)
        _refused(c, f"/certificates/pdf/{pid}/{year}")
        _refused(c, "/certificates/")
        resp = post(c, "/certificates/batch", {"year": year, "person_id": [pid]}, follow_redirects=True)
        assert resp.mimetype != PDF
    # An applicant may print one certificate, never a batch.
    resp = post(login_as("zhangsan"), "/certificates/batch", {"year": year, "person_id": [pid]}, follow_redirects=True)
    assert resp.mimetype != PDF
    # Not signed in: to the login page.
    resp = app.test_client().get(f"/certificates/pdf/{pid}/{year}")
    assert resp.status_code in (302, 401, 403) and resp.mimetype != PDF


def test_mixed_selection_with_a_foreign_person_is_refused_whole(app, login_as):
    own, year = _pid(app, "张三")
    foreign, _y = _pid(app, "李四")
    c = login_as("clerk_a")
    resp = post(c, "/certificates/batch", {"year": year, "person_id": [own, foreign]}, follow_redirects=True)
    assert resp.mimetype != PDF
    assert "1 名人员不存在或不在您的权限范围内" in resp.get_data(as_text=True)
    with app.app_context():
        assert _certs_of(own, year) == [] and _certs_of(foreign, year) == []


def test_bureau_prints_within_region_with_masked_id(app, login_as):
    pid, year = _pid(app, "张三")
    with app.app_context():
        id_number = db.session.get(Person, pid).id_number
    data = _get_pdf(login_as("bureau_nj"), f"/certificates/pdf/{pid}/{year}")
    flat = _squash(pdf_text(data))
    assert "张三" in flat and id_number not in flat
    assert id_number[:6] + "*" * 8 + id_number[-4:] in flat
    # The unit clerk sees the whole number (it works with it).
    flat = _squash(pdf_text(_get_pdf(login_as("clerk_a"), f"/certificates/pdf/{pid}/{year}")))
    assert id_number in flat


# ------------------------------------------------------------------ batch


def test_unit_clerk_prints_selected_persons_in_one_pdf(app, login_as):
    c = login_as("clerk_a")
    with app.app_context():
        zs = _person("张三")
        year = _year_with_hours(zs)[0]
        unit_id = zs.unit_id
        persons = db.session.execute(select(Person).where(Person.unit_id == unit_id).order_by(Person.id)).scalars().all()
        with_hours = [(p.id, p.name) for p in persons if year in totals_by_year(p.id)]
    assert len(with_hours) >= 3
    page = c.get(f"/certificates/?year={year}").get_data(as_text=True)
    for pid, _name in with_hours:
        assert f'value="{pid}"' in page
    chosen = with_hours[:3]
    resp = post(c, "/certificates/batch", {"year": year, "person_id": [pid for pid, _n in chosen]})
    assert resp.status_code == 200 and resp.mimetype == PDF
    data = resp.data
    assert pdf_pages(data) >= len(chosen)
    with app.app_context():
        issued = {pid: _certs_of(pid, year) for pid, _n in chosen}
        assert all(len(v) == 1 and v[0].status == CertificateStatus.VALID for v in issued.values())
        serials = {pid: v[0].serial for pid, v in issued.items()}
    # A page (or more) per person, each with that person's name and serial, in order.
    pages = pdf_text(data).split("\f")
    starts = [i for i, pg in enumerate(pages) if "继续教育学时登记证书" in _squash(pg)]
    assert len(starts) == len(chosen)
    for (pid, name), i in zip(chosen, starts):
        assert name in _squash(pages[i]) and serials[pid] in _squash("".join(pages[i:i + 2]))
    assert len(pdf_fonts(data).splitlines()) > 2 and "WenQuanYi" in pdf_fonts(data)
    # The registry shows the unit's issued certificates.
    registry = c.get("/certificateregistry/list/").get_data(as_text=True)
    assert all(serial in registry for serial in serials.values())

    # "All in the list": every person of the unit with hours that year.
    resp = post(c, "/certificates/batch", {"year": year, "all": "1"})
    assert resp.mimetype == PDF
    starts = [pg for pg in pdf_text(resp.data).split("\f") if "继续教育学时登记证书" in _squash(pg)]
    assert len(starts) == len(with_hours)
    with app.app_context():
        # Printing again changed nothing: still one certificate each.
        assert all(len(_certs_of(pid, year)) == 1 for pid, _n in with_hours)


@pytest.mark.parametrize("processes", [1, 2])
def test_batch_service_chunks_and_skips_persons_without_hours(app, processes):
    """In this process, or with chunks rendered by two render processes: the same
    document, persons in id order, each once."""
    with app.app_context():
        zs = _person("张三")
        year = _year_with_hours(zs)[0]
        persons = db.session.execute(select(Person).order_by(Person.id)).scalars().all()[:12]
        with_hours = [p for p in persons if year in totals_by_year(p.id)]
        out = io.BytesIO()
        printed, skipped = certs.batch_pdf([p.id for p in persons] + [999999], year, out,
                                           base_url="https://ce.example.gov.cn/", chunk_size=3,
                                           processes=processes)
        assert printed == len(with_hours) and printed + skipped == len(persons) + 1
        serials = [_certs_of(p.id, year)[0].serial for p in with_hours]
        names = [p.name for p in with_hours]
        data = out.getvalue()
    pages = [_squash(pg) for pg in pdf_text(data).split("\f") if "继续教育学时登记证书" in _squash(pg)]
    assert len(pages) == printed
    for page, name, serial in zip(pages, names, serials):
        assert name in page and serial in page
    assert "https://ce.example.gov.cn/verify/" in pages[0]
    assert "WenQuanYi" in pdf_fonts(data)


def test_large_batch_runs_as_a_job(app, login_as):
    c = login_as("clerk_a")
    with app.app_context():
        zs = _person("张三")
        year = _year_with_hours(zs)[0]
        ids = [p.id for p in db.session.execute(select(Person).where(Person.unit_id == zs.unit_id)).scalars()
               if year in totals_by_year(p.id)][:3]
    app.config["CERT_BATCH_INLINE_MAX"] = 2
    try:
        resp = post(c, "/certificates/batch", {"year": year, "person_id": ids})
    finally:
        app.config["CERT_BATCH_INLINE_MAX"] = 100
    assert resp.status_code == 302 and "/certificates/job/" in resp.location
    job_url = resp.location
    import time

    for _ in range(120):
        html = c.get(job_url).get_data(as_text=True)
        if 'data-state="done"' in html or 'data-state="failed"' in html:
            break
        time.sleep(0.5)
    assert 'data-state="done"' in html and "已生成3份证书" in html
    data = _get_pdf(c, job_url + "/download")
    assert len([pg for pg in pdf_text(data).split("\f") if "继续教育学时登记证书" in _squash(pg)]) == 3
    # The job and its file belong to whoever submitted it.
    other = login_as("unitadmin_a")
    assert other.get(job_url + "/download").status_code == 404


def test_year_without_approved_hours_is_refused(app, login_as):
    pid, _year = _pid(app, "张三")
    html = _refused(login_as("zhangsan"), f"/certificates/pdf/{pid}/2001")
    assert "没有已核准的学时" in html


def test_certificate_scope_is_exactly_the_persons_in_scope(app, ctx):
    """Every role sees the certificates of exactly the persons it sees (the
    registry's rule asks a region's part per certificate, the rest as a list)."""
    from app.models import CEUser
    from app.security.scope import scope_clause, scope_of

    for person in db.session.execute(select(Person)).scalars():
        years = [y for y, t in totals_by_year(person.id).items() if t.total > 0][:1]
        for year in years:
            certs.issue(person, year)
    db.session.commit()
    issued = {c.id: c.person_id for c in db.session.execute(select(Certificate)).scalars()}
    assert len(set(issued.values())) >= 3
    partial = []
    for user in db.session.execute(select(CEUser)).scalars():
        scope = scope_of(user)
        persons = set(db.session.execute(select(Person.id).where(scope_clause(Person, scope))).scalars())
        seen = set(db.session.execute(select(Certificate.id).where(scope_clause(Certificate, scope))).scalars())
        assert seen == {cid for cid, pid in issued.items() if pid in persons}, user.username
        if 0 < len(seen) < len(issued):
            partial.append(user.username)
    # Bureaus of a city, units and applicants each see some certificates, not all.
    assert {"bureau_nj", "bureau_sz", "clerk_a", "zhangsan"} <= set(partial), partial


@pytest.mark.parametrize("username", ["bureau_js", "bureau_nj", "clerk_a", "agency_clerk"])
def test_print_list_pages_are_the_persons_with_hours_in_scope_by_id(app, ctx, username):
    """The print page's persons, page by page, are those of a plain query (in
    scope, approved hours in the year, by id); for a region SQLite reads them
    walking the person key (services.sqlplan), not sorting the whole region."""
    from sqlalchemy import event

    from app.models import CEUser
    from app.security.scope import scope_clause, scope_of

    scope = scope_of(db.session.execute(select(CEUser).where(CEUser.username == username)).scalar_one())
    year = max(y for p in db.session.execute(select(Person)).scalars() for y in totals_by_year(p.id))
    want = [p.id for p in db.session.execute(
        select(Person).where(scope_clause(Person, scope)).order_by(Person.id)).scalars()
        if totals_by_year(p.id).get(year) is not None and totals_by_year(p.id)[year].total > 0]
    assert want, username
    statements = []
    grab = lambda conn, cursor, statement, *rest: statements.append(statement)  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", grab)
    try:
        got, offset = [], 0
        while True:
            rows, more = certs.persons_with_hours(year, scope_clause(Person, scope), offset=offset, limit=2)
            got += [p.id for p, _totals in rows]
            offset += 2
            if not more:
                break
    finally:
        event.remove(db.engine, "before_cursor_execute", grab)
    assert got == want
    if db.engine.dialect.name == "sqlite" and scope.region_prefixes:
        listing = next(s for s in statements if s.startswith("SELECT person.id"))
        assert "(person.unit_id + 0) IN" in listing, listing
        plan = [r[3] for r in db.session.connection().exec_driver_sql(
            "EXPLAIN QUERY PLAN " + listing.replace("?", "NULL"))]
        assert not any("TEMP B-TREE FOR ORDER BY" in line for line in plan), plan
