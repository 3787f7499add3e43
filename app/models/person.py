from datetime import datetime

from sqlalchemy import Column, Date, DateTime, Enum, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import relationship

from app.extensions import db
from app.models.enums import IdType


class Person(db.Model):
    """专业技术人员.  `unit` is the current employer, or the HR service agency that
    holds a freelancer's file (the unit's kind tells which)."""

    __tablename__ = "person"
    id = Column(Integer, primary_key=True)
    name = Column(String(50), nullable=False)
    id_type = Column(Enum(IdType, native_enum=False, length=20), nullable=False, default=IdType.RESIDENT)
    id_number = Column(String(32), nullable=False)
    unit_id = Column(Integer, ForeignKey("unit.id"), nullable=True)
    unit = relationship("Unit", foreign_keys=[unit_id])
    title = Column(String(50))  # 职称
    specialty = Column(String(100))  # 专业
    phone = Column(String(30))
    is_freelancer = Column(db.Boolean, nullable=False, default=False)
    # The unit has confirmed this person belongs to it (issue 6).
    unit_confirmed = Column(db.Boolean, nullable=False, default=True)
    # The unit (or agency) a self-registered person asked to be attached to; the
    # person moves there only when that unit confirms (services.accounts).
    pending_unit_id = Column(Integer, ForeignKey("unit.id"), nullable=True)
    pending_unit = relationship("Unit", foreign_keys=[pending_unit_id])

    history = relationship(
        "PersonUnitHistory", back_populates="person", order_by="PersonUnitHistory.start_date"
    )

    __table_args__ = (
        UniqueConstraint("id_type", "id_number", name="uq_person_id"),
        Index("ix_person_unit", "unit_id"),
        # The persons not meeting the requirement, listed by unit and name (issue 19).
        Index("ix_person_unit_name", "unit_id", "name", "id"),
        Index("ix_person_name", "name"),
        # Partial: nearly every person has no pending unit, and SQLite's statistics
        # (ANALYZE) count the NULLs as one value, so a full index looked useless and
        # a unit's pending persons were found by reading every person.
        Index("ix_person_pending_unit", "pending_unit_id", sqlite_where=text("pending_unit_id IS NOT NULL"),
              postgresql_where=text("pending_unit_id IS NOT NULL")),
    )

    def __repr__(self):
        return self.name


class PersonUnitHistory(db.Model):
    """One period of a person at a unit (or with an agency)."""

    __tablename__ = "person_unit_history"
    id = Column(Integer, primary_key=True)
    person_id = Column(Integer, ForeignKey("person.id"), nullable=False, index=True)
    person = relationship("Person", back_populates="history")
    unit_id = Column(Integer, ForeignKey("unit.id"), nullable=False)
    unit = relationship("Unit")
    start_date = Column(Date, nullable=False)
    end_date = Column(Date, nullable=True)
    note = Column(String(200))
    created_at = Column(DateTime, nullable=False, default=datetime.utcnow)
