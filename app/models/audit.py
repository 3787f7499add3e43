from datetime import datetime

from sqlalchemy import Boolean, Column, DateTime, Index, Integer, String, Text, event

from app.extensions import db


class AuditLog(db.Model):
    """Append-only: rows are inserted, never updated or deleted (see the guard below)."""

    __tablename__ = "audit_log"
    id = Column(Integer, primary_key=True)
    at = Column(DateTime, nullable=False, default=datetime.utcnow)
    user_id = Column(Integer, nullable=True)
    username = Column(String(100), nullable=True)
    ip = Column(String(64), nullable=True)
    action = Column(String(50), nullable=False)
    object_type = Column(String(50), nullable=True)
    object_id = Column(String(50), nullable=True)
    # Scope columns, so that bureau and unit users browse only their part of the log.
    unit_id = Column(Integer, nullable=True)
    region_code = Column(String(6), nullable=True)
    detail = Column(Text, nullable=True)  # JSON: {"old": {...}, "new": {...}, ...}
    # Tamper evidence (app/services/audit_chain.py): the row's place in its chain
    # and the HMAC-SM3 over its content and the previous row's MAC.
    chain_id = Column(Integer, nullable=True)
    seq = Column(Integer, nullable=True)
    mac = Column(String(64), nullable=True)

    __table_args__ = (
        Index("ix_audit_at", "at"),
        Index("ix_audit_object", "object_type", "object_id"),
        Index("ix_audit_region", "region_code"),
        Index("ix_audit_unit", "unit_id"),
        Index("ux_audit_chain_seq", "chain_id", "seq", unique=True),
    )


class AuditChain(db.Model):
    """The head of each audit chain: its last sequence number and MAC.  A writer
    takes a head no other open transaction holds (see audit_chain.py)."""

    __tablename__ = "audit_chain"
    chain_id = Column(Integer, primary_key=True, autoincrement=False)
    seq = Column(Integer, nullable=False, default=0)
    mac = Column(String(64), nullable=False, default="")


class AuditArchive(db.Model):
    """Insert-only: one row per chain per `ce audit archive` run, the anchor the
    chain continues from once its older rows have left for a sealed file."""

    __tablename__ = "audit_archive"
    id = Column(Integer, primary_key=True)
    chain_id = Column(Integer, nullable=False)
    through_seq = Column(Integer, nullable=False)
    mac = Column(String(64), nullable=False)  # MAC of the row through_seq
    archived_at = Column(DateTime, nullable=False)
    file_name = Column(String(255), nullable=False)
    file_digest = Column(String(64), nullable=False)  # SM3 of the sealed file
    rows = Column(Integer, nullable=False)
    seal = Column(String(64), nullable=False)  # HMAC-SM3 over the fields above

    __table_args__ = (Index("ix_audit_archive_chain", "chain_id", "through_seq"),)


class AuditLogIsAppendOnly(Exception):
    pass


@event.listens_for(AuditLog, "before_update")
def _no_update(mapper, connection, target):
    raise AuditLogIsAppendOnly("audit_log rows cannot be changed")


@event.listens_for(AuditLog, "before_delete")
def _no_delete(mapper, connection, target):
    raise AuditLogIsAppendOnly("audit_log rows cannot be deleted")


class AuditCheck(db.Model):
    """One run of the audit chain check (`ce audit verify --record` from cron or a
    systemd timer, the 安全审计员's button): when, by whom or what, the outcome.
    A failed run is shown to the auditors until one of them acknowledges it.
    Each run is also an entry of the audit log itself (action audit_verify)."""

    __tablename__ = "audit_check"
    id = Column(Integer, primary_key=True)
    started_at = Column(DateTime, nullable=False, default=datetime.utcnow)
    finished_at = Column(DateTime, nullable=True)
    trigger = Column(String(20), nullable=False)  # nightly / console
    user_id = Column(Integer, nullable=True)
    username = Column(String(100), nullable=True)
    job_id = Column(Integer, nullable=True)
    ok = Column(Boolean, nullable=False)
    rows_checked = Column(Integer, nullable=False, default=0)
    findings = Column(Text, nullable=True)  # JSON: [{kind, chain_id, seq, row_id, message}]
    acknowledged_at = Column(DateTime, nullable=True)
    acknowledged_by = Column(String(100), nullable=True)

    __table_args__ = (Index("ix_audit_check_open", "ok", "acknowledged_at"),
                      Index("ix_audit_check_job", "job_id"))
