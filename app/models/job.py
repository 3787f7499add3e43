from datetime import datetime

from sqlalchemy import Column, DateTime, Index, Integer, String, Text

from app.extensions import db


class Job(db.Model):
    """A long job (large import or export, issue 4): its state and progress live here,
    in the database, so any worker or web process can report on it (SPEC §7)."""

    __tablename__ = "ce_job"
    id = Column(Integer, primary_key=True)
    kind = Column(String(30), nullable=False)
    state = Column(String(12), nullable=False, default="queued")  # queued/running/done/failed
    progress = Column(Integer, nullable=False, default=0)  # 0..100
    message = Column(String(500), nullable=True)
    params = Column(Text, nullable=True)  # JSON
    result = Column(Text, nullable=True)  # JSON
    result_path = Column(String(300), nullable=True)
    user_id = Column(Integer, nullable=True)
    created_at = Column(DateTime, nullable=False, default=datetime.utcnow)
    started_at = Column(DateTime, nullable=True)
    finished_at = Column(DateTime, nullable=True)

    __table_args__ = (Index("ix_ce_job_user", "user_id", "id"),)
