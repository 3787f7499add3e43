from datetime import datetime

from sqlalchemy import Column, DateTime, Index, Integer, String, Text, event

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

    __table_args__ = (
        Index("ix_audit_at", "at"),
        Index("ix_audit_object", "object_type", "object_id"),
        Index("ix_audit_region", "region_code"),
        Index("ix_audit_unit", "unit_id"),
    )


class AuditLogIsAppendOnly(Exception):
    pass


@event.listens_for(AuditLog, "before_update")
def _no_update(mapper, connection, target):
    raise AuditLogIsAppendOnly("audit_log rows cannot be changed")


@event.listens_for(AuditLog, "before_delete")
def _no_delete(mapper, connection, target):
    raise AuditLogIsAppendOnly("audit_log rows cannot be deleted")
