"""学时登记证书: the registry of issued yearly certificates (SPEC §3 flow 6).

A certificate certifies one person's approved hours of one year.  `content_sha256`
is the hash of everything it certified (see services.certificates.content_hash);
printing again with the same content returns the same certificate, a change of the
content supersedes it and the next print issues a new edition with a new serial.
"""
import enum
from datetime import datetime

from sqlalchemy import (
    Boolean, Column, DateTime, Enum, ForeignKey, Index, Integer, Numeric, String, UniqueConstraint,
)
from sqlalchemy.orm import relationship

from app.extensions import db
from app.i18n import N_


class CertificateStatus(enum.Enum):
    VALID = N_("有效")
    SUPERSEDED = N_("已作废（已被新证书替代）")


class Certificate(db.Model):
    __tablename__ = "certificate"
    id = Column(Integer, primary_key=True)
    # 证书编号: year + person id + edition, e.g. 2025 00000001 01.
    serial = Column(String(32), nullable=False, unique=True)
    person_id = Column(Integer, ForeignKey("person.id"), nullable=False)
    person = relationship("Person")
    year = Column(Integer, nullable=False)
    edition = Column(Integer, nullable=False, default=1)
    content_sha256 = Column(String(64), nullable=False)
    # 核验码: random, unguessable (services.certificates.new_verify_code).
    verify_code = Column(String(32), nullable=False, unique=True)
    status = Column(
        Enum(CertificateStatus, native_enum=False, length=20, validate_strings=True),
        nullable=False, default=CertificateStatus.VALID,
    )
    issued_at = Column(DateTime, nullable=False, default=datetime.utcnow)
    issued_by_id = Column(Integer, ForeignKey("ab_user.id"), nullable=True)
    issued_by = relationship("CEUser", foreign_keys=[issued_by_id])
    superseded_at = Column(DateTime, nullable=True)
    # What the public verification page shows, as certified (a superseded
    # certificate keeps showing what it said, not today's figures).
    person_name = Column(String(50), nullable=False)
    professional_hours = Column(Numeric(7, 1), nullable=False, default=0)
    public_hours = Column(Numeric(7, 1), nullable=False, default=0)
    met = Column(Boolean, nullable=False, default=False)

    __table_args__ = (
        UniqueConstraint("person_id", "year", "edition", name="uq_certificate_edition"),
        Index("ix_certificate_person_year", "person_id", "year", "status"),
    )

    @property
    def total_hours(self):
        return (self.professional_hours or 0) + (self.public_hours or 0)

    def __repr__(self):
        return self.serial
