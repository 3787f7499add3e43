from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, String, func, text
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
    # 大字版 (issue 27): every page in larger text for this account, wherever it signs in.
    large_text = Column(Boolean, nullable=False, default=False, server_default=text("false"))

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


def _bound(column):
    """An index on the accounts bound to a unit / region / person.  Partial: most
    accounts have no unit (applicants) or no region (all but bureau staff), and
    SQLite's statistics count the NULLs as one value (a full index would look
    useless once ANALYZE ran)."""
    where = text(f"{column} IS NOT NULL")
    return Index(f"ix_ab_user_{column}", CEUser.__table__.c[column], sqlite_where=where, postgresql_where=where)


# A unit's accounts (unit administrators), a region's (bureau staff), a person's.
_bound("unit_id")
_bound("region_code")
_bound("person_id")
