from datetime import datetime

from sqlalchemy import Column, Date, DateTime, Enum, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import relationship, validates

from app.extensions import db
from app.models.crypto import Encrypted, blind_index, index_default
from app.models.enums import IdType


# 职称级别 (issue 20: a year's requirement may differ by level), derived from the title.
TITLE_LEVELS = ("初级", "中级", "高级")
_SENIOR = ("正高", "副高", "高级", "教授", "研究员", "主任医师", "主任药师", "主任护师", "主任技师", "编审", "译审")
_JUNIOR = ("助理", "技术员", "助教", "医士", "药士", "护士", "技士", "员级", "初级")
_JUNIOR_EXACT = ("医师", "药师", "护师", "技师")


def title_level_of(title):
    """初级 / 中级 / 高级 of a 职称 (None: no title).  高级: 正高 and 副高 (高级工程师,
    教授, 副教授, 研究员, 主任医师…); 初级: 助理…, …员, 医师 / 药师 / 护师 / 技师, 医士…;
    every other title 中级 (工程师, 讲师, 会计师, 主治医师…)."""
    t = (title or "").strip().replace(" ", "")
    if not t:
        return None
    if any(k in t for k in _SENIOR):
        return "高级"
    if any(k in t for k in _JUNIOR) or t in _JUNIOR_EXACT or t.endswith("员"):
        return "初级"
    return "中级"


class Person(db.Model):
    """专业技术人员.  `unit` is the current employer, or the HR service agency that
    holds a freelancer's file (the unit's kind tells which)."""

    __tablename__ = "person"
    id = Column(Integer, primary_key=True)
    name = Column(String(50), nullable=False)
    id_type = Column(Enum(IdType, native_enum=False, length=20), nullable=False, default=IdType.RESIDENT)
    # Stored encrypted (SM4-GCM); looked up, and unique, through its blind index
    # (HMAC-SM3): `Person.id_number == x` compares id_number_bidx (models.crypto).
    id_number = Column(Encrypted(160, "person.id_number", index="id_number_bidx"), nullable=False)
    id_number_bidx = Column(String(64), nullable=False,
                            default=index_default("id_number", "person.id_number"))
    unit_id = Column(Integer, ForeignKey("unit.id"), nullable=True)
    unit = relationship("Unit", foreign_keys=[unit_id])
    title = Column(String(50))  # 职称
    # 初级 / 中级 / 高级, set from title (title_level_of) whenever title is set.
    title_level = Column(String(4), nullable=True)
    specialty = Column(String(100))  # 专业
    phone = Column(Encrypted(160, "person.phone"))
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
        UniqueConstraint("id_type", "id_number_bidx", name="uq_person_id"),
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

    @validates("title")
    def _title_sets_level(self, _key, value):
        self.title_level = title_level_of(value)
        return value

    @staticmethod
    def number_index(number):
        """The blind index of an ID number (what id_number_bidx holds), for bulk
        writers that set it themselves."""
        return blind_index(number, "person.id_number")


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
