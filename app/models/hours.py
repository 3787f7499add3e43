from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import relationship

from app.extensions import db
from app.models.enums import Category, LearningForm, ReviewKind, Source, Status
from app.models.regions import city_code


def _enum(cls):
    return Enum(cls, native_enum=False, length=20, validate_strings=True)


class HourRecord(db.Model):
    """学时记录.  `unit_id` / `region_code` copy the person's current unit and its
    region so that the row scope and the grid filters hit one indexed table; they
    follow the person when the person moves (see services.persons.move_person)."""

    __tablename__ = "hour_record"
    id = Column(Integer, primary_key=True)
    person_id = Column(Integer, ForeignKey("person.id"), nullable=False)
    person = relationship("Person", lazy="joined", innerjoin=True)
    year = Column(Integer, nullable=False)
    category = Column(_enum(Category), nullable=False)
    learning_form = Column(_enum(LearningForm), nullable=False)
    course_name = Column(String(200), nullable=False)
    organizer_name = Column(String(200), nullable=True)
    start_date = Column(Date, nullable=False)
    end_date = Column(Date, nullable=False)
    hours = Column(Numeric(6, 1), nullable=False)
    source = Column(_enum(Source), nullable=False, default=Source.DECLARED)
    status = Column(_enum(Status), nullable=False, default=Status.DRAFT)

    unit_id = Column(Integer, ForeignKey("unit.id"), nullable=True)
    unit = relationship("Unit", foreign_keys=[unit_id], lazy="joined")
    region_code = Column(String(6), nullable=True)
    # The unit whose import or report created the record (organizer, industry, bureau, unit).
    reported_by_unit_id = Column(Integer, ForeignKey("unit.id"), nullable=True)
    reported_by_unit = relationship("Unit", foreign_keys=[reported_by_unit_id])
    import_batch_id = Column(Integer, ForeignKey("import_batch.id"), nullable=True)
    late_report = Column(db.Boolean, nullable=False, default=False)

    submitted_at = Column(DateTime, nullable=True)
    reviewer_id = Column(Integer, ForeignKey("ab_user.id"), nullable=True)
    reviewer = relationship("CEUser", foreign_keys=[reviewer_id])
    reviewed_at = Column(DateTime, nullable=True)
    review_comment = Column(String(500), nullable=True)
    revoke_reason = Column(String(500), nullable=True)

    created_by_id = Column(Integer, ForeignKey("ab_user.id"), nullable=True)
    created_at = Column(DateTime, nullable=False, default=datetime.utcnow)
    updated_at = Column(DateTime, nullable=False, default=datetime.utcnow, onupdate=datetime.utcnow)

    attachments = relationship("Attachment", back_populates="record", cascade="all, delete-orphan")

    __table_args__ = (
        UniqueConstraint(
            "person_id", "year", "category", "course_name", "start_date", name="uq_hour_record_dup"
        ),
        CheckConstraint("hours > 0", name="ck_hour_record_hours_positive"),
        CheckConstraint("end_date >= start_date", name="ck_hour_record_dates"),
        Index("ix_hr_person_year", "person_id", "year"),
        Index("ix_hr_unit_status", "unit_id", "status", "id"),
        Index("ix_hr_region", "region_code", "id"),
        Index("ix_hr_year_cat_region", "year", "category", "region_code", "id"),
        Index("ix_hr_status_region", "status", "region_code", "id"),
        Index("ix_hr_source", "source"),
        Index("ix_hr_reported_by", "reported_by_unit_id"),
        Index("ix_hr_updated", "updated_at", "id"),
        # Unit-scope grids in id order, and their year + category filter (issue 7).
        Index("ix_hr_unit_id", "unit_id", "id"),
        Index("ix_hr_unit_year_cat", "unit_id", "year", "category", "id"),
        Index("ix_hr_year_cat_id", "year", "category", "id", "region_code"),
        Index("ix_hr_year_id", "year", "id", "region_code"),
        # A city bureau's grids in id order, and their year + category filter: the
        # scope compares city_code(region_code), this very expression (issue 7);
        # region_code is carried for the scope's range, checked without a row lookup.
        Index("ix_hr_city", city_code(region_code), "id", "region_code"),
        Index("ix_hr_year_cat_city", "year", "category", city_code(region_code), "id", "region_code"),
    )

    def __repr__(self):
        return f"{self.course_name} ({self.year})"


class HourTally(db.Model):
    """How many hour records each unit holds, per year, category and status:
    kept by triggers on hour_record (migration e7a1c0de0006), in the same
    transaction as the change, whatever wrote it (ORM, bulk SQL, COPY).  A grid
    whose conditions are equalities on these columns, the unit among them, reads
    its exact count here instead of counting index entries (issue 7: a unit's
    4 000 records took 0.3 ms of the page's 3.5 ms on PostgreSQL).

    A key may have a few rows: the count is their sum.  On PostgreSQL a writer
    adds its change and folds in the key's rows that no open transaction holds
    (SKIP LOCKED), so writers of one unit never wait for each other.  Records
    without a unit are not tallied: a unit condition never matches them."""

    __tablename__ = "hour_tally"
    id = Column(Integer, primary_key=True)
    unit_id = Column(Integer, nullable=False)
    year = Column(Integer, nullable=False)
    category = Column(_enum(Category), nullable=False)
    status = Column(_enum(Status), nullable=False)
    n = Column(Integer, nullable=False)

    __table_args__ = (Index("ix_hour_tally_key", "unit_id", "year", "category", "status", "n"),)

    # The columns counted by, and those a tallied count needs a condition on
    # (records without a unit are not tallied).
    tally_key = ("unit_id", "year", "category", "status")
    tally_required = ("unit_id",)


# The columns a grid's conditions may use for the tallied count (CEInterface).
HourRecord.__tally__ = HourTally


class Attachment(db.Model):
    """证明材料, stored under UPLOAD_DIR (outside the web root) by content hash."""

    __tablename__ = "attachment"
    id = Column(Integer, primary_key=True)
    record_id = Column(Integer, ForeignKey("hour_record.id"), nullable=False, index=True)
    record = relationship("HourRecord", back_populates="attachments")
    filename = Column(String(200), nullable=False)
    content_type = Column(String(50), nullable=False)
    size = Column(Integer, nullable=False)
    sha256 = Column(String(64), nullable=False)
    storage_path = Column(String(300), nullable=False)
    uploaded_at = Column(DateTime, nullable=False, default=datetime.utcnow)
    uploaded_by_id = Column(Integer, ForeignKey("ab_user.id"), nullable=True)


class ImportBatch(db.Model):
    """One confirmed import file (issue 4)."""

    __tablename__ = "import_batch"
    id = Column(Integer, primary_key=True)
    kind = Column(String(20), nullable=False)
    filename = Column(String(200), nullable=False)
    sha256 = Column(String(64), nullable=False, index=True)
    rows_added = Column(Integer, nullable=False, default=0)
    rows_duplicate = Column(Integer, nullable=False, default=0)
    rows_error = Column(Integer, nullable=False, default=0)
    unit_id = Column(Integer, ForeignKey("unit.id"), nullable=True)
    region_code = Column(String(6), nullable=True)
    created_by_id = Column(Integer, ForeignKey("ab_user.id"), nullable=True)
    created_at = Column(DateTime, nullable=False, default=datetime.utcnow)


class PersonReview(db.Model):
    """年度审核 (a person's year) or 离职审核 (before the person leaves the unit)."""

    __tablename__ = "person_review"
    id = Column(Integer, primary_key=True)
    kind = Column(_enum(ReviewKind), nullable=False)
    person_id = Column(Integer, ForeignKey("person.id"), nullable=False, index=True)
    person = relationship("Person")
    unit_id = Column(Integer, ForeignKey("unit.id"), nullable=False, index=True)
    unit = relationship("Unit")
    year = Column(Integer, nullable=True)
    professional_hours = Column(Numeric(7, 1), nullable=False, default=0)
    public_hours = Column(Numeric(7, 1), nullable=False, default=0)
    met = Column(db.Boolean, nullable=False, default=False)
    reviewer_id = Column(Integer, ForeignKey("ab_user.id"), nullable=False)
    reviewer = relationship("CEUser")
    reviewed_at = Column(DateTime, nullable=False, default=datetime.utcnow)
    comment = Column(String(500))

    __table_args__ = (Index("ix_person_review_unit_year", "unit_id", "year"),)
