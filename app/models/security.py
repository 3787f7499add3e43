"""Server-side sessions and each account's second factor (issue 25, 等保 2.0 三级).

`UserSession` is one browser (or API) session: the cookie carries only a random
id, the table keeps its SHA-256, so a copy of the table opens no session.
`AccountSecurity` is a one-to-one side table of ab_user (kept apart from FAB's
user table): the API token version, the encrypted TOTP secret, the hashed
recovery codes, the last accepted TOTP step (replay guard), the hashes of the
last passwords and the previous successful login.
"""
from datetime import datetime

from sqlalchemy import Column, DateTime, ForeignKey, Index, Integer, String, Text

from app.extensions import db


class UserSession(db.Model):
    __tablename__ = "ce_session"
    id = Column(Integer, primary_key=True)
    sid_hash = Column(String(64), nullable=False, unique=True)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=True)
    kind = Column(String(8), nullable=False, default="web")  # web / api
    data = Column(Text, nullable=True)  # the Flask session (tagged JSON)
    created_at = Column(DateTime, nullable=False, default=datetime.utcnow)
    authenticated_at = Column(DateTime, nullable=True)  # login time: the absolute lifetime counts from it
    last_seen = Column(DateTime, nullable=False, default=datetime.utcnow)
    ip = Column(String(64), nullable=True)
    user_agent = Column(String(300), nullable=True)
    ended_at = Column(DateTime, nullable=True)
    end_reason = Column(String(20), nullable=True)

    __table_args__ = (
        Index("ix_ce_session_user", "user_id", "ended_at"),
        Index("ix_ce_session_last_seen", "last_seen"),
    )


class AccountSecurity(db.Model):
    __tablename__ = "ce_account_security"
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), primary_key=True)
    token_version = Column(Integer, nullable=False, default=1)
    mfa_secret = Column(Text, nullable=True)  # encrypted (app/security/mfa.py)
    mfa_enabled_at = Column(DateTime, nullable=True)
    mfa_last_step = Column(Integer, nullable=True)
    recovery_codes = Column(Text, nullable=True)  # JSON list of hashes
    password_history = Column(Text, nullable=True)  # JSON list of the last password hashes
    last_login_at = Column(DateTime, nullable=True)
    last_login_ip = Column(String(64), nullable=True)
