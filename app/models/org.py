from sqlalchemy import Column, Enum, ForeignKey, Index, Integer, String
from sqlalchemy.orm import relationship

from app.extensions import db
from app.models.enums import UnitKind


class Region(db.Model):
    """行政区划: a 6-digit GB/T 2260 code.  Scope prefix: 32 / 3201 / 320102."""

    __tablename__ = "region"
    code = Column(String(6), primary_key=True)
    name = Column(String(50), nullable=False)
    parent_code = Column(String(6), ForeignKey("region.code"), nullable=True, index=True)
    parent = relationship("Region", remote_side=[code])

    @property
    def level(self):
        if self.code.endswith("0000"):
            return "province"
        if self.code.endswith("00"):
            return "city"
        return "district"

    @property
    def full_name(self):
        if self.parent is not None and self.level == "district":
            return f"{self.parent.name}{self.name}"
        return self.name

    def __repr__(self):
        return self.full_name


class Unit(db.Model):
    """单位: employer, HR service agency, programme organizer, industry authority, bureau."""

    __tablename__ = "unit"
    id = Column(Integer, primary_key=True)
    name = Column(String(200), nullable=False)
    credit_code = Column(String(18), nullable=False, unique=True)
    kind = Column(Enum(UnitKind, native_enum=False, length=20), nullable=False, default=UnitKind.EMPLOYER)
    region_code = Column(String(6), ForeignKey("region.code"), nullable=False)
    region = relationship("Region")
    contact_name = Column(String(50))
    contact_phone = Column(String(30))
    # Registration approval (issue 6): a unit acts only once approved.
    approved = Column(db.Boolean, nullable=False, default=True)

    __table_args__ = (
        Index("ix_unit_region_code", "region_code"), Index("ix_unit_name", "name"),
        # The dashboard lists units by region and name (issue 19).
        Index("ix_unit_region_name", "region_code", "name", "id"),
    )

    def __repr__(self):
        return self.name
