"""audit_check: the runs of the audit chain check and their acknowledgement

Revision ID: i26a0002
Revises: i26a0001
Create Date: 2026-12-06 05:40:00

`ce audit verify --record` (nightly, from cron or a systemd timer) and the
auditor's button on the audit log page record each run here; a failed run stays
on the auditors' pages until one of them acknowledges it.
"""
import sqlalchemy as sa
from alembic import op

revision = "i26a0002"
down_revision = "i26a0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "audit_check",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=100), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("rows_checked", sa.Integer(), nullable=False),
        sa.Column("findings", sa.Text(), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_check_open", "audit_check", ["ok", "acknowledged_at"])
    op.create_index("ix_audit_check_job", "audit_check", ["job_id"])


def downgrade():
    op.drop_index("ix_audit_check_job", table_name="audit_check")
    op.drop_index("ix_audit_check_open", table_name="audit_check")
    op.drop_table("audit_check")
