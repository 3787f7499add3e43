"""Yearly totals kept by triggers (migration i19a0001): the yearly requirement,
each person's approved hours of a year with 达标, and their sums per unit.

The unit tables (UnitYearTotal, UnitPersons, UnitYearSource) may hold a few rows
per key on PostgreSQL (one per writer that was open when the key was last
folded, as HourTally): a figure is the sum of the key's rows.  unit_id 0 stands
for "no unit" there (a key column is never NULL, so that rows fold)."""
from sqlalchemy import Boolean, Column, DateTime, Enum, Index, Integer, Numeric, String

from app.extensions import db
from app.models.enums import Category, Source


def _enum(cls):
    return Enum(cls, native_enum=False, length=20, validate_strings=True)


class YearRequirement(db.Model):
    """The yearly requirement (SPEC §4) the met flags are computed with: at least
    `required_total` hours, of which 专业科目 at least `required_professional`
    (= total × professional_ratio, one decimal), and 公需科目 at least
    `required_public` when set.  Year 0 applies to every year without a row of
    its own; it is seeded from REQUIRED_HOURS_TOTAL / REQUIRED_PROFESSIONAL_RATIO.
    Change it through services.requirement.set_requirement (recomputes the flags).
    Kept small on purpose: issue 20 extends it into a rules model."""

    __tablename__ = "year_requirement"
    year = Column(Integer, primary_key=True, autoincrement=False)
    required_total = Column(Numeric(6, 1), nullable=False)
    professional_ratio = Column(Numeric(5, 4), nullable=False)
    required_professional = Column(Numeric(6, 1), nullable=False)
    required_public = Column(Numeric(6, 1), nullable=True)
    updated_at = Column(DateTime, nullable=True)


class YearRequirementLevel(db.Model):
    """A year's requirement for one title level (初级 / 中级 / 高级, models.person
    .title_level_of): replaces the year's YearRequirement for persons of that
    level.  A level without a row follows the year's requirement.  The met flags
    follow it through the triggers of migration i20a0002; change it through
    services.requirement.set_requirement(level=...)."""

    __tablename__ = "year_requirement_level"
    year = Column(Integer, primary_key=True, autoincrement=False)
    level = Column(String(4), primary_key=True)
    required_total = Column(Numeric(6, 1), nullable=False)
    professional_ratio = Column(Numeric(5, 4), nullable=False)
    required_professional = Column(Numeric(6, 1), nullable=False)
    required_public = Column(Numeric(6, 1), nullable=True)
    updated_at = Column(DateTime, nullable=True)


class PersonYearTotal(db.Model):
    """A person's approved hours of a year (专业 / 公需), 达标 under the year's
    requirement, and the person's current unit (the dashboard counts a person
    where the person is now).  No row: no approved hours (not met)."""

    __tablename__ = "person_year_total"
    person_id = Column(Integer, primary_key=True, autoincrement=False)
    year = Column(Integer, primary_key=True, autoincrement=False)
    professional = Column(Numeric(12, 1), nullable=False)
    public = Column(Numeric(12, 1), nullable=False)
    met = Column(Boolean, nullable=False)
    unit_id = Column(Integer, nullable=True)
    __table_args__ = (Index("ix_pyt_year_unit", "year", "unit_id"),)


class UnitYearTotal(db.Model):
    """Per unit (0: none) and year, the sums of its persons' PersonYearTotal rows."""

    __tablename__ = "unit_year_total"
    id = Column(Integer, primary_key=True)
    unit_id = Column(Integer, nullable=False)
    year = Column(Integer, nullable=False)
    met = Column(Integer, nullable=False)
    professional = Column(Numeric(12, 1), nullable=False)
    public = Column(Numeric(12, 1), nullable=False)
    __table_args__ = (
        Index("ix_uyt_key", "unit_id", "year"),
        Index("ix_uyt_year", "year", "unit_id", "met", "professional", "public"),
    )


class UnitPersons(db.Model):
    """How many persons each unit (0: none) holds now."""

    __tablename__ = "unit_persons"
    id = Column(Integer, primary_key=True)
    unit_id = Column(Integer, nullable=False)
    persons = Column(Integer, nullable=False)
    __table_args__ = (Index("ix_unit_persons_key", "unit_id", "persons"),)


class UnitYearSource(db.Model):
    """Approved hours and records per record unit (0: none), record region ('':
    none), year, category and source: the hour_record columns the dashboard's
    hours-by-category / by-source figures filter on."""

    __tablename__ = "unit_year_source"
    id = Column(Integer, primary_key=True)
    unit_id = Column(Integer, nullable=False)
    region_code = Column(String(6), nullable=False)
    year = Column(Integer, nullable=False)
    category = Column(_enum(Category), nullable=False)
    source = Column(_enum(Source), nullable=False)
    hours = Column(Numeric(12, 1), nullable=False)
    records = Column(Integer, nullable=False)
    __table_args__ = (
        Index("ix_uys_key", "unit_id", "year", "category", "source", "region_code", "hours", "records"),
        Index("ix_uys_year_sum", "year", "category", "source", "region_code", "hours", "records"),
    )


class RegionYearSource(db.Model):
    """UnitYearSource without the unit: approved hours and records per record
    region ('' none), year, category and source (migration i19a0004).  A
    province's or a city's hours by category / source sum ~1 000 of these rows a
    year instead of every unit's (557 000 at 25 M records); a selection that
    names units still reads UnitYearSource.  Folded like the unit tables on
    PostgreSQL (a key may hold a few rows)."""

    __tablename__ = "region_year_source"
    id = Column(Integer, primary_key=True)
    region_code = Column(String(6), nullable=False)
    year = Column(Integer, nullable=False)
    category = Column(_enum(Category), nullable=False)
    source = Column(_enum(Source), nullable=False)
    hours = Column(Numeric(12, 1), nullable=False)
    records = Column(Integer, nullable=False)
    __table_args__ = (
        Index("ix_rys_key", "year", "region_code", "category", "source", "hours", "records"),
    )
