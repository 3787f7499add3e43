"""Certificates in a real browser (Chromium via Playwright): zhangsan opens the
certificate page from the menu, downloads the certificate PDF, and the public
verification page for its code (signed out, as a stranger scanning the QR code
would arrive) shows it valid."""
import re

from sqlalchemy import select

from app.extensions import db
from app.models import Person
from app.models.certificate import Certificate, CertificateStatus
from app.services.certificates import format_code
from tests.conftest import browser_login, screenshot
from tests.test_certificates import _squash, pdf_fonts, pdf_text


def test_zhangsan_downloads_certificate_and_verifies_it(app, live_server, page, _browser):
    base = live_server
    browser_login(page, base, "zhangsan")
    page.click("text=学时证书")
    page.click("text=打印学时证书")
    page.wait_for_load_state("networkidle")
    assert "打印学时登记证书" in page.content()
    row = page.locator("#own-years tbody tr").first
    year = int(row.get_attribute("data-year"))
    screenshot(page, "certificate_print_page")

    with page.expect_download() as info:
        row.locator("a.print-own").click()
    download = info.value
    assert download.suggested_filename.endswith(".pdf") and str(year) in download.suggested_filename
    data = open(download.path(), "rb").read()
    assert data.startswith(b"%PDF")
    flat = _squash(pdf_text(data))
    assert "张三" in flat and f"{year}年度" in flat and "WenQuanYi" in pdf_fonts(data)

    with app.app_context():
        person = db.session.execute(select(Person).where(Person.name == "张三")).scalar_one()
        cert = db.session.execute(
            select(Certificate).where(Certificate.person_id == person.id, Certificate.year == year)
        ).scalar_one()
        assert cert.status == CertificateStatus.VALID
        code, serial = cert.verify_code, cert.serial
    assert serial in flat and format_code(code) in flat
    # The printed address is the one the QR code carries.
    url = re.search(r"核验网址：([A-Za-z0-9:/._-]+)", flat).group(1)
    assert url == f"{base}/verify/{code}"

    # A stranger (no session) follows the QR code.
    stranger = _browser.new_context(locale="zh-CN", viewport={"width": 1200, "height": 800})
    try:
        visitor = stranger.new_page()
        visitor.goto(url)
        visitor.wait_for_load_state("networkidle")
        state = visitor.locator("#verify-state")
        assert state.get_attribute("data-state") == "valid"
        assert "证书有效" in state.inner_text()
        detail = visitor.locator("#verify-detail").inner_text()
        assert "张*" in detail and str(year) in detail and "张三" not in visitor.content()
        screenshot(visitor, "certificate_verify_valid")

        # Typing the code by hand (grouped, lower case) gives the same answer.
        visitor.goto(base + "/verify/")
        visitor.fill("#code", format_code(code).lower())
        visitor.click("button[type=submit]")
        visitor.wait_for_load_state("networkidle")
        assert visitor.locator("#verify-state").get_attribute("data-state") == "valid"
    finally:
        stranger.close()
