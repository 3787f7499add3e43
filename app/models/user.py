from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, String, func
from sqlalchemy.orm import relationship
from flask_appbuilder.security.sqla.models import User


class CEUser(User):
    """FAB's user with the binding that decides its row scope: a region (bureau),
    a unit (unit roles, organizer, industry) or a person (applicant)."""

    __tablename__ = "ab_user"
    region_code = Column(String(6), ForeignKey("region.code"), nullable=True)
    region = relationship("Region", foreign_keys=[region_code])
    unit_id = Column(Integer, ForeignKey("unit.id"), nullable=True)
    unit = relationship("Unit", foreign_keys=[unit_id])
    person_id = Column(Integer, ForeignKey("person.id"), nullable=True)
    person = relationship("Person", foreign_keys=[person_id])
    must_change_password = Column(Boolean, nullable=True, default=False)

    def get_full_name(self):
        """FAB writes "first last"; Chinese names have no space (张 + 三 -> 张三)."""
        first, last = self.first_name or "", self.last_name or ""
        if any("\u4e00" <= ch <= "\u9fff" for ch in first + last):
            return first + last
        return f"{first} {last}".strip()


# FAB finds the account to sign in by lower(username) = lower(typed name)
# (AUTH_USERNAME_CI, its default): without an index on that very expression, every
# login reads the whole account table, one row per registered person.
Index("ix_ab_user_username_lower", func.lower(CEUser.__table__.c.username))
