"""The audit chain check as a recorded job (issue 26): `flask ce audit verify
--record` (what cron / a systemd timer runs nightly) and the 安全审计员's button
on the audit log page run the job `audit_verify`; a failed run is shown to the
auditors on their home page and the audit log page, in Chinese, naming the row,
until one of them acknowledges it.  SQLite and, with TEST_DATABASE_URL, PostgreSQL."""
import re
import time

from sqlalchemy import select, text

from app.extensions import db
from app.models import AuditCheck, AuditLog, Job
from tests.conftest import post
from tests.test_audit_chain import drop_triggers, write


def record_cli(app):
    result = app.test_cli_runner().invoke(args=["ce", "audit", "verify", "--record"])
    return result.exit_code, result.output


def tamper(app):
    """A row changed behind the app's back (the owner dropped the triggers)."""
    with app.app_context():
        rid = write(3)[1]
        drop_triggers()
        db.session.execute(text("UPDATE audit_log SET detail = '{\"n\": 99}' WHERE id = :i"), {"i": rid})
        db.session.commit()
        db.session.remove()
    return rid


def text_of(resp):
    return re.sub(r"\s+", " ", resp.get_data(as_text=True))


def test_nightly_run_is_a_recorded_job(app):
    with app.app_context():
        write(2)
        db.session.remove()
    code, out = record_cli(app)
    assert code == 0, out
    assert "audit log ok" in out
    with app.app_context():
        check = db.session.execute(select(AuditCheck).order_by(AuditCheck.id.desc())).scalars().first()
        assert check.ok and check.trigger == "nightly" and check.rows_checked >= 2
        job = db.session.get(Job, check.job_id)
        assert job.kind == "audit_verify" and job.state == "done"
        entry = db.session.execute(select(AuditLog).where(AuditLog.action == "audit_verify")
                                   .order_by(AuditLog.id.desc())).scalars().first()
        assert entry.object_id == str(check.id) and '"outcome": "ok"' in entry.detail
        db.session.remove()


def test_failed_nightly_run_is_shown_to_auditors_until_acknowledged(app, login_as):
    rid = tamper(app)
    code, out = record_cli(app)
    assert code == 1
    assert f"row {rid}" in out
    auditor = login_as("auditor")
    home = text_of(auditor.get("/"))
    assert "审计日志校验未通过" in home and "夜间定时校验" in home
    assert f"第{rid}号日志记录" in home and "被修改" in home
    page = text_of(auditor.get("/auditlogview/list/"))
    assert "审计日志校验未通过" in page and f"第{rid}号日志记录" in page
    # Bureau staff read their part of the log, but the check is the auditors' duty.
    bureau = login_as("bureau_js")
    assert "审计日志校验未通过" not in text_of(bureau.get("/"))
    assert "审计日志校验未通过" not in text_of(bureau.get("/auditlogview/list/"))
    assert "btn-audit-verify" not in text_of(bureau.get("/auditlogview/list/"))
    with app.app_context():
        check_id = db.session.execute(select(AuditCheck.id).where(AuditCheck.ok.is_(False))).scalar()
        db.session.remove()
    assert bureau.post(f"/auditlogview/acknowledge/{check_id}",
                       data={"csrf_token": re.search(r'name="csrf-token" content="([^"]+)"',
                                                     bureau.get("/").get_data(as_text=True)).group(1)}
                       ).status_code in (302, 403)
    assert "审计日志校验未通过" in text_of(auditor.get("/"))  # bureau could not acknowledge it
    resp = post(auditor, f"/auditlogview/acknowledge/{check_id}", follow_redirects=True)
    assert "已确认该次校验结果" in text_of(resp)
    assert "审计日志校验未通过" not in text_of(auditor.get("/"))
    page = text_of(auditor.get("/auditlogview/list/"))
    assert "已由auditor确认" in page
    with app.app_context():
        check = db.session.get(AuditCheck, check_id)
        assert check.acknowledged_by == "auditor" and check.acknowledged_at is not None
        ack = db.session.execute(select(AuditLog).where(AuditLog.action == "audit_verify_acknowledge")).scalars().one()
        assert ack.username == "auditor" and ack.object_id == str(check_id)
        db.session.remove()


def _wait_for_check(client, url, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        page = text_of(client.get(url))
        if "正在校验审计日志" not in page or time.monotonic() > deadline:
            return page
        time.sleep(0.3)


def test_auditor_runs_the_check_from_the_console(app, login_as):
    auditor = login_as("auditor")
    page = text_of(auditor.get("/auditlogview/list/"))
    assert "校验审计日志完整性" in page
    resp = post(auditor, "/auditlogview/verify")
    assert resp.status_code == 302
    url = resp.headers["Location"]
    assert "/auditlogview/check/" in url
    page = _wait_for_check(auditor, url)
    assert "审计日志校验通过：共校验" in page and "未发现篡改" in page
    with app.app_context():
        check = db.session.execute(select(AuditCheck).order_by(AuditCheck.id.desc())).scalars().first()
        assert check.ok and check.trigger == "console" and check.username == "auditor"
        db.session.remove()
    # the run is listed on the audit log page, with who ran it
    page = text_of(auditor.get("/auditlogview/list/"))
    assert re.search(r"人工校验</td> <td>auditor</td> <td><span class=\"text-success\">通过", page)


def test_console_check_names_the_changed_row(app, login_as):
    rid = tamper(app)
    admin = login_as("admin")  # the demo's all-powerful admin may run it too
    resp = post(admin, "/auditlogview/verify")
    page = _wait_for_check(admin, resp.headers["Location"])
    assert "审计日志校验未通过：发现1处问题" in page
    assert f"第{rid}号日志记录" in page
    # the failure stays on the auditor's pages
    assert f"第{rid}号日志记录" in text_of(login_as("auditor").get("/"))


def test_others_cannot_run_the_check(app, login_as):
    bureau = login_as("bureau_js")
    resp = post(bureau, "/auditlogview/verify")
    assert resp.status_code in (302, 403)
    assert "/auditlogview/check/" not in resp.headers.get("Location", "")
    with app.app_context():
        assert db.session.execute(select(AuditCheck)).first() is None
        db.session.remove()
