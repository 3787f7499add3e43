"""学时认定标准: each year's catalogue of learning forms (issue 20).

A row is one *version* of one form's rule in one year: editing a rule in the
console adds a new version and retires the old one (is_current = false), so a
record keeps the exact rule it was recognised under (HourRecord.rule_id) and an
edit never changes approved history.  The year's requirement (total, floors)
is models.YearRequirement.  The engine that applies a rule is services.rules;
services.standards loads, edits and copies catalogues."""
from datetime import datetime

from sqlalchemy import Boolean, Column, DateTime, Enum, Index, Integer, Numeric, String, Text

from app.extensions import db
from app.models.enums import LearningForm


class LearningFormRule(db.Model):
    __tablename__ = "learning_form_rule"
    id = Column(Integer, primary_key=True)
    year = Column(Integer, nullable=False)
    code = Column(String(40), nullable=False)
    version = Column(Integer, nullable=False, default=1)
    is_current = Column(Boolean, nullable=False, default=True)
    name = Column(String(100), nullable=False)
    # The national layout's 学习形式 the form reports as (the fixed national list).
    national_form = Column(Enum(LearningForm, native_enum=False, length=20, validate_strings=True), nullable=False)
    categories = Column(String(20), nullable=False)  # "PRO,PUB"
    kind = Column(String(12), nullable=False)  # services.rules.KINDS
    params = Column(Text, nullable=False, default="{}")  # JSON, see services.rules
    cap_record = Column(Numeric(6, 1), nullable=True)
    cap_year = Column(Numeric(7, 1), nullable=True)
    proof_text = Column(String(300), nullable=True)
    active = Column(Boolean, nullable=False, default=True)
    sort = Column(Integer, nullable=False, default=0)
    note = Column(String(200), nullable=True)  # e.g. "示例，请按本省标准修改"
    updated_at = Column(DateTime, nullable=False, default=datetime.utcnow)
    updated_by_id = Column(Integer, nullable=True)

    __table_args__ = (
        Index("ux_lfr_year_code_version", "year", "code", "version", unique=True),
        Index("ix_lfr_year_current", "year", "is_current", "sort"),
    )

    def __repr__(self):
        return f"{self.name} ({self.year} v{self.version})"
