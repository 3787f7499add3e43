"""server-side sessions and the second factor (issue 25)

Revision ID: i25a0001
Revises: i26s0001
Create Date: 2026-12-06 03:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "i25a0001"
down_revision = "i26s0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "ce_session",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sid_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=True),
        sa.Column("kind", sa.String(8), nullable=False, server_default="web"),
        sa.Column("data", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("authenticated_at", sa.DateTime(), nullable=True),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(300), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("end_reason", sa.String(20), nullable=True),
    )
    op.create_index("ix_ce_session_user", "ce_session", ["user_id", "ended_at"])
    op.create_index("ix_ce_session_last_seen", "ce_session", ["last_seen"])
    op.create_table(
        "ce_account_security",
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("ab_user.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("token_version", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("mfa_secret", sa.Text(), nullable=True),
        sa.Column("mfa_enabled_at", sa.DateTime(), nullable=True),
        sa.Column("mfa_last_step", sa.Integer(), nullable=True),
        sa.Column("recovery_codes", sa.Text(), nullable=True),
        sa.Column("password_history", sa.Text(), nullable=True),
        sa.Column("last_login_at", sa.DateTime(), nullable=True),
        sa.Column("last_login_ip", sa.String(64), nullable=True),
    )


def downgrade():
    op.drop_table("ce_account_security")
    op.drop_index("ix_ce_session_last_seen", table_name="ce_session")
    op.drop_index("ix_ce_session_user", table_name="ce_session")
    op.drop_table("ce_session")
