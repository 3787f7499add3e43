"""The declaration → review workflow in a real browser (Chromium via Playwright):
zhangsan declares with a proof file; clerk_a returns it with a reason after seeing
zhangsan's earlier hours; zhangsan edits and resubmits; clerk_a approves; wangwu's
declaration reaches the agency's clerk, not a unit."""
import datetime
from types import SimpleNamespace

from sqlalchemy import select

from app.extensions import db
from app.models import HourRecord, Status
from app.services import declarations, requirement
from tests.conftest import browser_login, screenshot
from tests.test_workflow import D1, D2, YEAR, pdf_bytes, user


def logout(page, base):
    page.goto(base + "/logout/")
    page.wait_for_load_state("networkidle")


def click_and_wait(page, selector):
    """Click a submit button and wait for the page it leads to."""
    with page.expect_navigation():
        page.click(selector)
    page.wait_for_load_state("networkidle")


def fill_declaration(page, course, hours, proof_path):
    page.check("input[name=category][value=PRO]")
    page.select_option("#learning_form", "TRAIN_ONSITE")
    page.fill("#course_name", course)
    page.fill("#organizer_name", "东南大学继续教育学院")
    page.fill("#start_date", D1.isoformat())
    page.fill("#end_date", D2.isoformat())
    page.fill("#hours", hours)
    page.set_input_files("#proof", proof_path)


def record(app, course):
    """A snapshot of the record as stored now."""
    with app.app_context():
        r = db.session.execute(select(HourRecord).where(HourRecord.course_name == course)).scalar_one()
        return SimpleNamespace(id=r.id, status=r.status, hours=r.hours, attachments=list(r.attachments),
                               unit_id=r.unit_id, reviewer=SimpleNamespace(username=getattr(r.reviewer, "username", None)))


def test_declare_return_resubmit_approve_in_browser(app, live_server, page, tmp_path):
    base = live_server
    proof = tmp_path / "结业证书.pdf"
    proof.write_bytes(pdf_bytes("certificate"))
    course = "浏览器申报：装配式建筑技术"

    # --- zhangsan declares with a proof file and submits -----------------------
    browser_login(page, base, "zhangsan")
    page.click("text=申报审核")
    page.click("text=学时申报")
    page.wait_for_load_state("networkidle")
    assert "本年度已核准学时" in page.content()
    # Client-side checks: end before start and a hours value off the half-hour grid.
    fill_declaration(page, course, "2.3", str(proof))
    page.fill("#end_date", (D1 - datetime.timedelta(days=1)).isoformat() if D1.day > 1 or D1.month > 1 else D1.isoformat())
    page.click("#btn-submit")
    errors = page.locator(".field-error").all_inner_texts()
    assert "学时应以0.5为单位" in errors
    assert page.url.endswith("/declare/new")
    page.fill("#end_date", D2.isoformat())
    page.fill("#hours", "8")
    click_and_wait(page, "#btn-submit")
    assert "申报已提交，等待单位核准" in page.content()
    row = page.locator("#my-records tr", has_text=course)
    assert row.locator(".status").inner_text() == "待核准"
    screenshot(page, "workflow_1_zhangsan_submitted")
    rec = record(app, course)
    assert rec.status == Status.SUBMITTED and len(rec.attachments) == 1
    rid = rec.id
    with app.app_context():
        earlier = requirement.totals_by_year(user("zhangsan").person_id)
        same_year = declarations.approved_in_year_of(rid)
    logout(page, base)

    # --- clerk_a sees it with zhangsan's earlier hours, returns it -------------
    browser_login(page, base, "clerk_a")
    page.click("text=申报审核")
    page.click("text=待核准申报")
    page.wait_for_load_state("networkidle")
    grid_row = page.locator("tr", has_text=course)
    assert grid_row.count() == 1
    assert f"{float(same_year):g}" in grid_row.inner_text()  # 本年已核准学时 column
    screenshot(page, "workflow_2_clerk_todo")
    grid_row.locator("a[href*='/show/']").first.click()
    page.wait_for_load_state("networkidle")
    assert f"/review/{rid}" in page.url
    earlier_table = page.locator("#earlier-hours").inner_text()
    for y, t in earlier.items():
        assert str(y) in earlier_table and f"{float(t.total):g}" in earlier_table
    assert page.locator("#proofs a", has_text="结业证书.pdf").count() >= 1
    # The PDF's first page is previewed as an image (rendered by pdftoppm).
    preview = page.locator("#proofs img.proof-preview")
    assert preview.count() == 1 and preview.evaluate("el => el.naturalWidth") > 100
    assert "提交" in page.locator("#history").inner_text()
    # The reason is required (the browser refuses an empty textarea).
    page.click("#btn-return")
    assert f"/review/{rid}" in page.url and record(app, course).status == Status.SUBMITTED
    page.fill("#return-comment", "证书照片不清晰，请上传清晰的扫描件")
    screenshot(page, "workflow_3_clerk_review_page")
    click_and_wait(page, "#btn-return")
    assert "已退回申报人" in page.content()
    assert record(app, course).status == Status.RETURNED
    logout(page, base)

    # --- zhangsan edits and resubmits -----------------------------------------
    browser_login(page, base, "zhangsan")
    page.goto(base + f"/declare/mine?year={YEAR}")
    row = page.locator("#my-records tr", has_text=course)
    assert row.locator(".status").inner_text() == "已退回"
    assert "证书照片不清晰" in row.inner_text()
    row.locator("text=修改").click()
    page.wait_for_load_state("networkidle")
    assert "证书照片不清晰" in page.locator("#return-reason").inner_text()
    page.fill("#hours", "10")
    page.set_input_files("#proof", str(proof))
    click_and_wait(page, "#btn-submit")
    assert "申报已提交，等待单位核准" in page.content()
    rec = record(app, course)
    assert rec.status == Status.SUBMITTED and float(rec.hours) == 10
    logout(page, base)

    # --- clerk_a approves ------------------------------------------------------
    browser_login(page, base, "clerk_a")
    page.goto(base + f"/review/{rid}")
    assert "上次退回原因" in page.content()
    click_and_wait(page, "#btn-approve")
    assert "已核准" in page.content()
    assert page.locator("tr", has_text=course).count() == 0  # left the to-do grid
    rec = record(app, course)
    assert rec.status == Status.APPROVED and rec.reviewer.username == "clerk_a"
    screenshot(page, "workflow_4_clerk_approved")
    logout(page, base)


def test_freelancer_declaration_reaches_agency_in_browser(app, live_server, page, tmp_path):
    base = live_server
    proof = tmp_path / "会议证明.png"
    from tests.test_workflow import png_bytes

    proof.write_bytes(png_bytes())
    course = "自由职业者申报：数字经济"
    browser_login(page, base, "wangwu")
    page.goto(base + "/declare/new")
    assert "南京市人才服务中心" in page.content()
    fill_declaration(page, course, "6", str(proof))
    click_and_wait(page, "#btn-submit")
    assert "申报已提交，等待单位核准" in page.content()
    logout(page, base)
    rec = record(app, course)
    with app.app_context():
        assert rec.unit_id == user("agency_clerk").unit_id
    # The agency's clerk has it, with the proof image previewed on the review page.
    browser_login(page, base, "agency_clerk")
    page.goto(base + "/review/todo/list/")
    assert page.locator("tr", has_text=course).count() == 1
    screenshot(page, "workflow_5_agency_todo")
    page.locator("tr", has_text=course).locator("a[href*='/show/']").first.click()
    page.wait_for_load_state("networkidle")
    img = page.locator("#proofs img.proof-preview")
    assert img.count() == 1 and img.evaluate("el => el.naturalWidth") == 40
    screenshot(page, "workflow_6_agency_review")
    logout(page, base)
    # An employer's clerk does not.
    browser_login(page, base, "clerk_a")
    page.goto(base + "/review/todo/list/")
    assert page.locator("tr", has_text=course).count() == 0
    page.goto(base + f"/review/{rec.id}")
    assert course not in page.content()


def test_year_end_review_in_browser(app, live_server, page):
    base = live_server
    year = YEAR - 1
    with app.app_context():
        expected = requirement.year_totals(user("zhangsan").person_id, year)
    browser_login(page, base, "clerk_a")
    page.click("text=申报审核")
    page.click("text=年度审核")
    page.wait_for_load_state("networkidle")
    with page.expect_navigation():
        page.select_option("#year", str(year))
    row = page.locator("#year-rows tr", has_text="张三")
    assert f"{float(expected.total):g}" in row.inner_text()
    assert ("已达标" if expected.met else "未达标") in row.inner_text()
    row.locator("input[name=person_id]").check()
    click_and_wait(page, "#btn-year-review")
    assert "已完成 1 人的年度审核" in page.content()
    assert page.locator("#year-rows tr", has_text="张三").locator(".reviewer").inner_text() == "clerk_a"
    screenshot(page, "workflow_7_year_end")
