"""Runs of the audit chain check, kept for the 安全审计员.

`run_check` verifies every chain (audit_chain.verify), stores the outcome as an
AuditCheck row and writes an `audit_verify` entry into the audit log itself.  It
runs as the job kind ``audit_verify`` (app/services/jobs.py), so the same job
interface runs it from the auditor's button on the audit log page (RQ on the
production stack, a thread or inline when embedded) and from the nightly
`flask ce audit verify --record` that cron or a systemd timer starts (inline,
docs/deploy-security.md).  A failed run -- a row changed, removed or inserted,
or a check that could not finish -- is shown to the auditors on their home page
and the audit log page until one of them acknowledges it.
"""
import datetime
import json
import logging

from flask_babel import gettext as _
from sqlalchemy import select, update

from app.extensions import db
from app.models import AuditCheck, CEUser
from app.services import audit, jobs
from app.services.audit_chain import verify

log = logging.getLogger(__name__)

JOB_KIND = "audit_verify"
NIGHTLY, CONSOLE = "nightly", "console"


def run_check(trigger, user=None, job_id=None):
    """Verify the chains and record the run; returns the AuditCheck (committed)."""
    started = datetime.datetime.utcnow()
    try:
        checked, found = verify()
        findings = [{"kind": f.kind, "chain_id": f.chain_id, "seq": f.seq, "row_id": f.row_id,
                     "message": f.message} for f in found]
    except Exception as exc:  # the check itself failed: that is a failed run too
        log.exception("audit chain check failed")
        db.session.rollback()
        checked, findings = 0, [{"kind": "error", "chain_id": None, "seq": None, "row_id": None,
                                 "message": f"{type(exc).__name__}: {exc}"[:500]}]
    db.session.rollback()  # verify only read; start the record on a fresh transaction
    row = AuditCheck(started_at=started, finished_at=datetime.datetime.utcnow(), trigger=trigger,
                     user_id=getattr(user, "id", None), username=getattr(user, "username", None),
                     job_id=job_id, ok=not findings, rows_checked=checked,
                     findings=json.dumps(findings, ensure_ascii=False) if findings else None)
    db.session.add(row)
    db.session.flush()
    audit.record("audit_verify", "AuditCheck", row.id, user=user, trigger=trigger,
                 outcome="ok" if not findings else "failed", rows=checked,
                 findings=[f["message"] for f in findings[:20]])
    db.session.commit()
    return row


@jobs.handler(JOB_KIND)
def _job(job_id, params, progress):
    user = db.session.get(CEUser, params["user_id"]) if params.get("user_id") else None
    row = run_check(params.get("trigger") or CONSOLE, user=user, job_id=job_id)
    return {"check_id": row.id, "ok": row.ok, "rows": row.rows_checked,
            "_message": summary(row)}


def submit(trigger, user=None, inline=False):
    """Start the check through the job interface; returns the Job."""
    return jobs.submit(JOB_KIND, {"trigger": trigger, "user_id": getattr(user, "id", None)},
                       user=user, inline=inline)


def findings_of(check):
    return json.loads(check.findings) if check is not None and check.findings else []


def finding_text(f):
    """One finding in Chinese, for the auditor's pages."""
    kind, chain, seq, row = f.get("kind"), f.get("chain_id"), f.get("seq"), f.get("row_id")
    if kind == "changed":
        return _("第%(row)s号日志记录（链%(chain)s，序号%(seq)s）被修改，或是在系统之外插入的",
                 row=row, chain=chain, seq=seq)
    if kind == "removed":
        return _("链%(chain)s从序号%(seq)s起有日志记录被删除", chain=chain, seq=seq)
    if kind == "head":
        return _("链%(chain)s的链头与其最后一条日志记录不符（记录被删除或链头被改动）", chain=chain)
    if kind == "inserted" and row is not None:
        return _("第%(row)s号日志记录不属于任何链（在系统之外插入）", row=row)
    if kind == "inserted":
        return _("链%(chain)s没有链头（在系统之外插入）", chain=chain)
    if kind == "anchor":
        return _("链%(chain)s的归档锚点被修改或伪造", chain=chain)
    return _("校验未能完成：%(error)s", error=f.get("message"))


def summary(check):
    if check.ok:
        return _("审计日志校验通过：共校验%(n)d条记录，未发现篡改。", n=check.rows_checked)
    return _("审计日志校验未通过：发现%(n)d处问题。", n=len(findings_of(check)))


def open_failures(limit=5):
    """The failed runs no auditor has acknowledged yet, newest first."""
    return db.session.execute(
        select(AuditCheck).where(AuditCheck.ok.is_(False), AuditCheck.acknowledged_at.is_(None))
        .order_by(AuditCheck.id.desc()).limit(limit)).scalars().all()


def latest(limit=10):
    return db.session.execute(select(AuditCheck).order_by(AuditCheck.id.desc()).limit(limit)).scalars().all()


def check_of_job(job_id):
    return db.session.execute(select(AuditCheck).where(AuditCheck.job_id == job_id)).scalars().first()


def acknowledge(check_id, user):
    """Mark a failed run as seen; recorded in the audit log.  True when it was open."""
    now = datetime.datetime.utcnow()
    done = db.session.execute(
        update(AuditCheck).where(AuditCheck.id == check_id, AuditCheck.ok.is_(False),
                                 AuditCheck.acknowledged_at.is_(None))
        .values(acknowledged_at=now, acknowledged_by=getattr(user, "username", None))).rowcount
    if done:
        audit.record("audit_verify_acknowledge", "AuditCheck", check_id, user=user, outcome="ok")
    db.session.commit()
    return bool(done)
