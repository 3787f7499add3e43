from datetime import datetime

from sqlalchemy import Column, DateTime, Index, Integer, String, UniqueConstraint

from app.extensions import db


class PortalTicket(db.Model):
    """A portal login ticket already presented (issue 23): a ticket is accepted
    once, by whichever worker or host receives it.  Only a hash of the ticket is
    kept; rows older than a day are purged as new ones arrive."""

    __tablename__ = "portal_ticket"
    id = Column(Integer, primary_key=True)
    ticket_hash = Column(String(64), nullable=False)
    provider = Column(String(20), nullable=False)
    used_at = Column(DateTime, nullable=False, default=datetime.utcnow)

    __table_args__ = (
        UniqueConstraint("ticket_hash", name="uq_portal_ticket_hash"),
        Index("ix_portal_ticket_used_at", "used_at"),
    )
