"""Make the user manual's screenshots (docs/使用手册.md) in one command:

    .venv/bin/python scripts/screenshots.py            # writes docs/images/*.png
    .venv/bin/python scripts/screenshots.py --out /tmp/shots

It builds a fresh SQLite database with the demo data in a temporary folder, serves
the app on a free local port, and walks through every task of the manual in
Chromium (Playwright, /usr/bin/chromium or $CHROMIUM_PATH): each role logs in with
its demo account and does what the manual says, and the pages are saved under the
names the manual uses.  Nothing outside the temporary folder and --out is touched.
A step whose page does not show what the manual describes stops the script with
an error, so a screenshot never shows a page that drifted from the manual.
"""
import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

WIDTH, HEIGHT = 1280, 800
DEFAULT_OUT = os.path.join(ROOT, "docs", "images")
PASSWORD = "Demo@2026"


def _environment(tmp):
    """A private database and upload folder; no Redis (jobs run in a thread), no login
    limit (the script logs in a few dozen times a minute)."""
    os.environ.update(
        DATABASE_URL="sqlite:///" + os.path.join(tmp, "demo.db"),
        CE_VAR_DIR=tmp,
        UPLOAD_DIR=os.path.join(tmp, "uploads"),
        DEMO="1",
        AUTH_RATE_LIMITED="0",
        RATELIMIT_ENABLED="0",
    )
    os.environ.pop("REDIS_URL", None)


def _start_app():
    from werkzeug.serving import make_server

    from app import create_app
    from app.services.setup import initialize

    app = create_app()
    with app.app_context():
        initialize(demo=True)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return app, server, f"http://127.0.0.1:{server.server_port}"


class Shots:
    """The browser session and the helpers each step uses."""

    def __init__(self, app, base, out, page):
        self.app, self.base, self.out, self.page = app, base, out, page
        self.saved = []

    # -- navigation ---------------------------------------------------------
    def go(self, path):
        self.page.goto(self.base + path)

    def login(self, username, password=PASSWORD):
        self.go("/logout/")
        self.go("/login/")
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", password)
        self.submit("input[type=submit], button[type=submit]")

    def submit(self, selector="button[type=submit]"):
        with self.page.expect_navigation():
            self.page.click(selector)

    def expect(self, text):
        body = self.page.inner_text("body")
        if text not in body:
            raise SystemExit(f"screenshots: expected {text!r} on {self.page.url}\n{body[:2000]}")

    # -- pictures -------------------------------------------------------------
    def mark(self, *selectors):
        """Outline the elements a step tells the reader to use."""
        for sel in selectors:
            self.page.locator(sel).first.evaluate(
                "el => { el.style.outline = '3px solid #d9534f'; el.style.outlineOffset = '2px'; }")

    def shot(self, name, height=None, element=None):
        path = os.path.join(self.out, name + ".png")
        if element:
            self.page.locator(element).first.screenshot(path=path)
        elif height:
            self.page.set_viewport_size({"width": WIDTH, "height": height})
            self.page.screenshot(path=path)
            self.page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
        else:
            self.page.screenshot(path=path)
        self.saved.append(path)
        print("  ", os.path.relpath(path, ROOT) if path.startswith(ROOT) else path)

    # -- data ---------------------------------------------------------------
    def query(self, fn):
        from app.extensions import db

        with self.app.app_context():
            try:
                return fn(db.session)
            finally:
                db.session.remove()


def _proof_pdf(path):
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(path, pagesize=landscape(A4))
    w, h = landscape(A4)
    c.setLineWidth(4)
    c.rect(30, 30, w - 60, h - 60)
    c.setFont("Helvetica-Bold", 40)
    c.drawCentredString(w / 2, h - 150, "CERTIFICATE OF COMPLETION")
    c.setFont("Helvetica", 22)
    c.drawCentredString(w / 2, h - 230, "Zhang San")
    c.drawCentredString(w / 2, h - 280, "Prefabricated building technology, 16 hours")
    c.drawCentredString(w / 2, h - 330, "Southeast University School of Continuing Education")
    c.save()


def _fill_template(src, dst, rows):
    """Write rows into the template's data sheet over its example row."""
    from openpyxl import load_workbook

    wb = load_workbook(src)
    ws = wb["学时数据"]
    for r, values in enumerate(rows, start=2):
        for c, v in enumerate(values, start=1):
            ws.cell(row=r, column=c, value=v)
    wb.save(dst)


def _sheet_page(xlsx, sheet, tmp, max_rows=40):
    """A sheet of an .xlsx file as an HTML page (cells, header fills), for a picture:
    the browser cannot show Excel, and the manual wants the template as the clerk sees it."""
    import html

    from openpyxl import load_workbook

    ws = load_workbook(xlsx)[sheet]

    def text(v):
        if v is None:
            return ""
        if isinstance(v, datetime.datetime):
            v = v.date()
        return html.escape(v.isoformat() if isinstance(v, datetime.date) else str(v))

    out = []
    for row in ws.iter_rows(min_row=1, max_row=max_rows):
        cells = []
        for c in row:
            style = ""
            fill = c.fill.fgColor.rgb if c.fill is not None and c.fill.fill_type == "solid" else None
            if isinstance(fill, str) and len(fill) >= 6:
                style = f"background:#{fill[-6:]};color:#fff;font-weight:bold;text-align:center"
            elif c.font is not None and c.font.b:
                style = "font-weight:bold"
            cells.append(f"<td style='{style}'>{text(c.value)}</td>")
        out.append(("<tr>" + "".join(cells) + "</tr>", any(c.value is not None for c in row)))
    while out and not out[-1][1]:
        out.pop()
    out = [r for r, _ in out]
    path = os.path.join(tmp, sheet + ".html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(
            "<meta charset='utf-8'><style>body{font:13px sans-serif;margin:8px;background:#fff}"
            "table{border-collapse:collapse}td{border:1px solid #c8c8c8;padding:3px 6px;max-width:60em}"
            "caption{text-align:left;padding:4px 0;color:#555}</style>"
            f"<table id='t'><caption>{html.escape(os.path.basename(xlsx))} — 工作表“{html.escape(sheet)}”</caption>"
            + "".join(out) + "</table>")
    return "file://" + path


def run(s, tmp):
    from sqlalchemy import select

    from app.models import Certificate, HourRecord, Person, Status, Unit
    from app.services.demo import credit_code, resident_id

    today = datetime.date.today()
    year = today.year
    p = s.page
    p.on("dialog", lambda d: d.accept())

    # ------------------------------------------------------------ login, registration
    print("登录与注册")
    s.go("/logout/")
    s.go("/login/")
    s.mark("input[name=username]", "input[name=password]")
    s.shot("login")

    # The same page once a province has configured its portal (docs/portal-login.md):
    # the two 政务服务网 buttons.  Settings are read per request; nothing is called.
    portal = {"PORTAL_PROVIDER": "ticket", "PORTAL_TICKET_LOGIN_URL": "https://portal.example/login",
              "PORTAL_TICKET_TOKEN_URL": "https://portal.example/token",
              "PORTAL_TICKET_USERINFO_URL": "https://portal.example/userinfo",
              "PORTAL_TICKET_SERVICE_CODE": "ce-demo", "PORTAL_TICKET_SECRET": "demo"}
    saved = {k: s.app.config.get(k) for k in portal}
    s.app.config.update(portal)
    s.go("/login/")
    s.expect("政务服务网登录（个人）")
    s.mark("#portal-login-person", "#portal-login-legal")
    s.shot("portal-login")
    s.app.config.update(saved)

    s.go("/register/person")
    new_id = resident_id("320102", datetime.date(1991, 3, 18), 777)
    p.fill("#name", "孙七")
    p.fill("#id_number", new_id)
    p.fill("#phone", "13800003333")
    p.fill("#username", "sunqi")
    p.fill("#password", "Sunqi#Hours26")
    p.fill("#confirm", "Sunqi#Hours26")
    p.select_option("#city", "320100")
    p.select_option("#region_code", "320102")
    p.wait_for_selector("#unit_id option:has-text('南京金陵科技有限公司')", state="attached")
    p.select_option("#unit_id", label="南京金陵科技有限公司")
    s.shot("register_person", height=1000)
    s.submit()
    s.expect("注册成功")

    # ------------------------------------------------------------ 个人 (zhangsan)
    print("个人")
    s.login("zhangsan")
    s.expect("未达标")
    s.shot("person_home")

    proof = os.path.join(tmp, "结业证书.pdf")
    _proof_pdf(proof)
    d1 = max(datetime.date(year, 1, 2), today - datetime.timedelta(days=10))
    d2 = d1 + datetime.timedelta(days=1)
    course = "装配式建筑技术专题培训"
    s.go("/declare/new")
    p.check("input[name=category][value=PRO]")
    p.select_option("#learning_form", "TRAIN_ONSITE")
    p.fill("#course_name", course)
    p.fill("#organizer_name", "东南大学继续教育学院")
    p.fill("#start_date", d1.isoformat())
    p.fill("#end_date", d2.isoformat())
    p.fill("#hours", "16")
    p.set_input_files("#proof", proof)
    s.mark("#btn-submit")
    s.shot("person_declare")
    s.submit("#btn-submit")
    s.expect("申报已提交，等待单位核准")
    s.mark(f"#my-records tr:has-text('{course}') form:has(button:has-text('撤回'))")
    s.shot("person_mine", height=1000)
    # 学时认定标准: the form asks for what the rule needs and shows the hours it recognises.
    s.go("/declare/new")
    p.check("input[name=category][value=PRO]")
    p.select_option("#learning_form", "CONF_NATIONAL")
    p.check("input[name=addons][value=PAPER_GE2000]")
    s.expect("认定学时：40")
    s.mark("#rule-box")
    s.shot("person_declare_rule", height=700)

    # A second declaration, withdrawn to show the withdraw step's result.
    s.go("/declare/new")
    p.check("input[name=category][value=PUB]")
    p.select_option("#learning_form", "TRAIN_ONLINE")
    p.fill("#course_name", "数字经济与创新驱动发展（网络课程）")
    p.fill("#organizer_name", "江苏省专业技术人员继续教育网")
    p.fill("#start_date", d1.isoformat())
    p.fill("#end_date", d1.isoformat())
    p.fill("#hours", "6")
    p.set_input_files("#proof", proof)
    s.submit("#btn-submit")
    row = p.locator("#my-records tr", has_text="数字经济与创新驱动发展（网络课程）")
    with p.expect_navigation():
        row.locator("button:has-text('撤回')").click()
    s.expect("申报已撤回")

    s.go("/certificates/")
    s.mark("#own-years a:has-text('打印证书')")
    s.shot("person_certificates")
    # The certificate of last year, as printed (first page of the PDF).
    href = p.locator("#own-years a:has-text('打印证书')").first.get_attribute("href")
    resp = p.request.get(s.base + href)
    assert resp.ok and resp.body()[:4] == b"%PDF", href
    pdf = os.path.join(tmp, "cert.pdf")
    with open(pdf, "wb") as f:
        f.write(resp.body())
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-singlefile", pdf, os.path.join(s.out, "certificate_pdf")], check=True)
    print("  ", "certificate_pdf.png")
    code = s.query(lambda db: db.execute(
        select(Certificate.verify_code).order_by(Certificate.id.desc()).limit(1)).scalar_one())
    s.go("/logout/")
    s.go("/verify/" + code)
    s.expect("证书有效")
    s.shot("verify")

    # ------------------------------------------------------------ 单位经办 (clerk_a)
    print("单位经办")
    s.login("clerk_a")
    s.go("/review/todo/list/")
    s.expect(course)
    s.mark("#btn-approve-filtered", f"tr:has-text('{course}') a[href*='/show/']")
    s.shot("clerk_todo")
    with p.expect_navigation():
        p.locator("tr", has_text=course).locator("a[href*='/show/']").first.click()
    p.fill("#approve-comment", "证明材料齐全")
    s.mark("#btn-approve", "#btn-return")
    s.shot("clerk_review", height=1250)
    s.submit("#btn-approve")
    s.expect("已核准")

    # Year-end review of last year, then the departure page of one person.
    s.go("/unitreview/yearend")
    with p.expect_navigation():
        p.select_option("#year", str(year - 1))
    p.locator("#year-rows tr", has_text="张三").locator("input[name=person_id]").check()
    s.mark("#btn-year-review")
    s.shot("clerk_yearend")
    s.submit("#btn-year-review")
    s.expect("年度审核")
    row = p.locator("#year-rows tr").filter(has_not_text="张三").filter(has=p.locator("a:has-text('离职审核')")).first
    with p.expect_navigation():
        row.locator("a:has-text('离职审核')").click()
    s.expect("离职审核")
    agency_code = s.query(lambda db: db.execute(
        select(Unit.credit_code).where(Unit.name == "南京市人才服务中心")).scalar_one())
    if p.locator("#credit_code").count():
        p.fill("#credit_code", agency_code)
        p.fill("#comment", "本人离职，档案转入南京市人才服务中心")
    s.shot("clerk_departure", height=600)

    # Certificates of the unit's persons: select, print as one PDF.
    s.go(f"/certificates/?year={year - 1}")
    s.expect("打印所选人员证书")
    p.locator("#persons input[name=person_id]").nth(0).check()
    p.locator("#persons input[name=person_id]").nth(1).check()
    s.mark("#print-selected")
    s.shot("clerk_certificates", height=900)

    # Import: the page, the template as filled, an error preview, a good preview, stored.
    s.go("/imports/")
    s.mark("#tpl-unit", "#form-unit input[type=file]", "#form-unit button[type=submit]")
    s.shot("import_index")
    with p.expect_download() as dl:
        p.click("#tpl-unit")
    template = os.path.join(tmp, dl.value.suggested_filename)
    dl.value.save_as(template)
    people = s.query(lambda db: [tuple(r) for r in db.execute(
        select(Person.name, Person.id_number).join(Unit, Person.unit_id == Unit.id)
        .where(Unit.name == "南京金陵科技有限公司").order_by(Person.id).limit(3)).all()])
    (n1, id1), (n2, id2), (n3, id3) = people
    m = max(1, today.month - 1)
    good = [
        [n1, "居民身份证", id1, year, "专业科目", "培训（面授）", "建筑信息模型（BIM）应用实务", "东南大学",
         datetime.date(year, m, 8), datetime.date(year, m, 9), 12],
        [n2, "居民身份证", id2, year, "专业科目", "学术会议", "江苏省智能建造学术年会", "江苏省土木建筑学会",
         datetime.date(year, m, 15), datetime.date(year, m, 16), 8],
        [n3, "居民身份证", id3, year, "专业科目", "培训（网络）", "工程项目安全管理", "南京工业大学",
         datetime.date(year, m, 3), datetime.date(year, m, 5), 16],
    ]
    bad = [list(r) for r in good]
    bad[0][2] = id1[:-1] + ("0" if id1[-1] != "0" else "1")  # wrong check digit
    bad[1][8] = f"{year}-02-30"                             # a date that does not exist
    bad[2][10] = 250                                        # above the per-record cap
    bad_path = os.path.join(tmp, "学时导入_有错误.xlsx")
    good_path = os.path.join(tmp, "学时导入.xlsx")
    _fill_template(template, bad_path, bad)
    _fill_template(template, good_path, good)
    p.goto(_sheet_page(template, "填写说明", tmp))
    s.shot("import_template_help", element="#t")
    p.goto(_sheet_page(good_path, "学时数据", tmp, max_rows=4))
    s.shot("import_template_filled", element="#t")

    s.go("/imports/")
    p.set_input_files("#form-unit input[type=file]", bad_path)
    s.submit("#form-unit button[type=submit]")
    p.wait_for_selector("#error-table")
    s.mark("#btn-errors")
    s.shot("import_errors", height=900)
    s.go("/imports/")
    p.set_input_files("#form-unit input[type=file]", good_path)
    s.submit("#form-unit button[type=submit]")
    p.wait_for_selector("#import-preview")
    if p.inner_text("#cnt-new") != "3":
        raise SystemExit("screenshots: the unit import preview did not offer 3 new rows")
    s.mark("#btn-confirm")
    s.shot("import_preview")
    s.submit("#btn-confirm")
    s.expect("导入成功：已保存3条记录")
    s.shot("import_stored")

    # The grid filtered to this year's professional hours, and its export button.
    s.go(f"/hourrecordview/list/?_flt_0_year={year}&_flt_0_category=PRO")
    s.expect("建筑信息模型（BIM）应用实务")
    s.mark("#btn-export", "button:has-text('添加过滤条件'), a:has-text('添加过滤条件')")
    s.shot("grid_filtered", height=1000)
    with p.expect_download() as dl:
        p.click("#btn-export")
    export = os.path.join(tmp, "export.xlsx")
    dl.value.save_as(export)
    from openpyxl import load_workbook

    exported = list(load_workbook(export).worksheets[0].iter_rows(values_only=True))
    if not any("建筑信息模型（BIM）应用实务" in (r or ()) for r in exported):
        raise SystemExit("screenshots: the export does not hold the imported rows")

    # ------------------------------------------------------------ 单位管理员 (unitadmin_a)
    print("单位管理员")
    s.login("unitadmin_a")
    s.go("/accounts/users/")
    s.mark("#add-account")
    s.shot("unitadmin_accounts")
    with p.expect_navigation():
        p.click("#add-account")
    p.fill("#first_name", "周敏")
    p.fill("#username", "clerk_a2")
    p.fill("#password", "Clerk#Start26")
    p.check("label:has-text('单位经办') input[name=roles]")
    s.mark("label:has-text('单位经办')", "#account-add button[type=submit]")
    s.shot("unitadmin_account_add")
    s.submit("#account-add button[type=submit]")
    s.expect("账号clerk_a2已创建")
    if p.locator("#roles tr", has_text="单位经办").locator("text=已授予").count() != 1:
        raise SystemExit("screenshots: the new account did not get 单位经办")
    s.mark("#roles")
    s.shot("unitadmin_account_grant")
    s.go("/accounts/attachments/")
    s.expect("孙七")
    s.mark("button[value=confirm]")
    s.shot("unitadmin_attachments")
    s.submit("button[value=confirm]")
    s.expect("已确认孙七为本单位人员")

    # ------------------------------------------------------------ 人社局经办 (bureau_nj)
    print("人社局经办")
    s.login("bureau_nj")
    s.shot("bureau_home")
    s.go(f"/hourrecordview/list/?_flt_0_year={year - 1}&_flt_0_category=PUB")
    s.mark("#btn-export")
    s.shot("bureau_grid", height=1000)
    s.go(f"/dashboard/?year={year - 1}")
    s.expect("未达标人员")
    s.shot("bureau_dashboard", height=1300)
    s.go("/review/approved/list/")
    s.shot("bureau_revoke_list")
    rid = s.query(lambda db: db.execute(
        select(HourRecord.id).where(HourRecord.course_name == "建筑信息模型（BIM）应用实务")).scalar_one())
    s.go(f"/review/{rid}")
    p.fill("#revoke-comment", "经核查，该培训未实际举办")
    s.mark("#revoke-form button[type=submit]")
    s.shot("bureau_revoke")
    s.submit("#revoke-form button[type=submit]")
    status = s.query(lambda db: db.execute(select(HourRecord.status).where(HourRecord.id == rid)).scalar_one())
    if status != Status.REVOKED:
        raise SystemExit(f"screenshots: revoking left the record {status}")
    s.go("/national/")
    s.shot("bureau_national")

    # ------------------------------------------------------------ 行业主管部门: register, approve
    print("行业主管部门")
    s.go("/logout/")
    s.go("/register/unit")
    ind_code = credit_code(901, "320102")
    p.fill("#name", "南京市建筑行业协会")
    p.fill("#credit_code", ind_code)
    p.select_option("#city", "320100")
    p.select_option("#region_code", "320102")
    p.select_option("#kind", "INDUSTRY")
    p.fill("#contact_name", "吴十")
    p.fill("#contact_phone", "025-86661234")
    p.fill("#admin_name", "吴十")
    p.fill("#username", "industry_nj")
    p.fill("#password", "Hangye#Admin26")
    p.fill("#confirm", "Hangye#Admin26")
    s.shot("register_unit", height=1050)
    s.submit()
    s.expect("注册成功")
    s.login("bureau_nj")
    s.go("/unitapprovalview/list/")
    s.expect("南京市建筑行业协会")
    p.locator("tr", has_text="南京市建筑行业协会").locator("input.action_check").check()
    p.click(".dropdown-toggle:has-text('操作')")
    s.mark("a:has-text('审核通过')")
    s.shot("bureau_unit_approval")
    p.click("a:has-text('审核通过')")
    p.wait_for_selector("#modal-confirm-ok", state="visible")
    p.click("#modal-confirm-ok")
    p.wait_for_selector("text=已审核通过1家单位")

    s.login("industry_nj", "Hangye#Admin26")
    s.go("/accounts/users/")
    with p.expect_navigation():
        p.locator("#accounts tr", has_text="industry_nj").locator("a").first.click()
    s.mark("#grant-Industry")
    s.shot("industry_grant")
    s.submit("#grant-Industry")
    # A change of one's own roles ends the session (issue 25): sign in again.
    s.expect("账号的角色已变更")
    s.login("industry_nj", "Hangye#Admin26")
    s.go("/imports/")
    s.mark("#tpl-industry")
    s.shot("industry_import")

    # ------------------------------------------------------------ 研修承办单位 (organizer)
    print("研修承办单位")
    s.login("organizer")
    s.go("/imports/")
    with p.expect_download() as dl:
        p.click("#tpl-organizer")
    org_tpl = os.path.join(tmp, dl.value.suggested_filename)
    dl.value.save_as(org_tpl)
    org_people = s.query(lambda db: [tuple(r) for r in db.execute(
        select(Person.name, Person.id_number).order_by(Person.id).offset(10).limit(4)).all()])
    end_late = today - datetime.timedelta(days=60)
    end_ok = today - datetime.timedelta(days=3)
    rows = []
    for i, (name, idn) in enumerate(org_people):
        end = end_late if i == 0 else end_ok
        rows.append([name, "居民身份证", idn, end.year, "专业科目", "研修", "人工智能与智能制造高级研修班",
                     end - datetime.timedelta(days=4), end, 40])
    org_file = os.path.join(tmp, "高级研修上报.xlsx")
    _fill_template(org_tpl, org_file, rows)
    p.set_input_files("#form-organizer input[type=file]", org_file)
    s.submit("#form-organizer button[type=submit]")
    p.wait_for_selector("#import-preview")
    s.shot("organizer_preview", height=900)
    s.submit("#btn-confirm")
    s.expect("导入成功")

    # ------------------------------------------------------------ 系统管理员 (admin)
    print("系统管理员")
    s.login("admin")
    s.shot("admin_home")
    s.go("/accounts/users/?q=clerk")
    s.shot("admin_accounts")
    s.go("/auditlogview/list/")
    s.shot("admin_audit")
    s.go("/regionview/list/")
    s.shot("admin_regions")
    s.go(f"/standards/?year={datetime.date.today().year}")
    s.expect("学时认定标准")
    s.mark("#rules tr[data-code=CONF_NATIONAL]")
    s.shot("admin_standards", height=1500)
    s.go(f"/standards/edit/{datetime.date.today().year}/ABROAD")
    p = s.page
    p.fill("#cap_record", "40")
    s.submit("#btn-preview")
    s.expect("出国（境）培训（3天） → 24 学时")
    s.mark("#preview")
    s.shot("admin_standard_edit", height=1100)
    # The parameters as fields: the table of 发表论文 by level and rank, one row added, previewed.
    s.go(f"/standards/edit/{datetime.date.today().year}/PAPER")
    n = p.locator("input[name=table_level]").count()
    p.click("button.add-row[data-table=level-table]")
    p.locator("input[name=table_level]").nth(n).fill("国际期刊")
    p.locator("input[name=table_rank]").nth(n).fill("第一作者")
    p.locator("input[name=table_hours]").nth(n).fill("60")
    s.submit("#btn-preview")
    s.expect("发表论文（国际期刊 · 第一作者） → 60 学时")
    s.mark("#params-TABLE", "#preview")
    s.shot("admin_standard_fields", height=1500)
    # The year's requirement by title level: 高级 held to its own figure.
    s.go(f"/standards/?year={datetime.date.today().year}")
    p.fill("#level-3 input[name=total]", "100")
    p.fill("#level-3 input[name=ratio]", "0.7")
    s.submit("#level-3 button[type=submit]")
    s.expect("高级职称的学时要求")
    s.mark("#level-requirements")
    s.shot("admin_standards_levels", element="#year-requirement")
    run_security(s)


def run_security(s):
    """三员分立 and the second factor (issue 25): the demo's banner, the enrolment
    with its QR code, the recovery codes, 我的会话, the security administrator's
    account page."""
    import pyotp

    p = s.page
    print("安全管理（三员分立、动态口令）")
    s.login("admin")
    s.expect("第二重身份鉴别（动态口令）未启用")
    s.mark("#mfa-off-banner")
    s.shot("security_banner")
    before = s.app.config.get("MFA_ROLES")
    s.app.config["MFA_ROLES"] = ("Admin", "Bureau", "UnitAdmin", "SysAdmin", "SecAdmin", "Auditor")
    try:
        s.login("bureau_nj")
        s.expect("绑定动态口令")
        s.shot("security_mfa_enroll", height=900)
        secret = p.inner_text("#mfa-secret").strip()
        p.fill("#code", pyotp.TOTP(secret).now())
        s.submit("#mfa-enroll button[type=submit]")
        s.expect("只显示这一次")
        s.shot("security_mfa_recovery")
        s.submit("#mfa-recovery button[type=submit]")
        s.go("/my/sessions/")
        s.expect("我的会话")
        s.shot("security_my_sessions")
    finally:
        s.app.config["MFA_ROLES"] = before
    s.login("secadmin")
    s.go("/security/accounts/?username=bureau_nj")
    s.expect("已绑定")
    s.shot("security_account_admin")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="folder for the PNGs (default: docs/images, "
                    "whose old PNGs are removed first so that nothing stale stays)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary database folder")
    ap.add_argument("--only-security", action="store_true", help="only the security pages (issue 25)")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    if out == DEFAULT_OUT and not args.only_security:  # a renamed or dropped screenshot leaves nothing stale behind
        for name in os.listdir(out):
            if name.endswith(".png"):
                os.remove(os.path.join(out, name))
    tmp = tempfile.mkdtemp(prefix="ce-shots-")
    _environment(tmp)
    app, server, base = _start_app()
    print("app on", base, "data in", tmp)
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"), headless=True,
                args=["--no-sandbox", "--disable-gpu", "--lang=zh-CN", "--no-first-run", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync"],
            )
            ctx = browser.new_context(locale="zh-CN", viewport={"width": WIDTH, "height": HEIGHT},
                                      accept_downloads=True)
            page = ctx.new_page()
            page.set_default_timeout(120000)
            s = Shots(app, base, out, page)
            try:
                run_security(s) if args.only_security else run(s, tmp)
            except Exception:
                failed = os.path.join(tempfile.gettempdir(), "ce-screenshots-failed.png")
                page.screenshot(path=failed)
                print("the page when it failed:", page.url, "->", failed, file=sys.stderr)
                raise
            browser.close()
        total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out) if f.endswith(".png"))
        print(f"{len(os.listdir(out))} files in {out}, {total / 1e6:.1f} MB")
    finally:
        server.shutdown()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
