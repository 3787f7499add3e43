"""portal_ticket: login tickets of the provincial portal already presented (single use)

Revision ID: i23a0001
Revises: i19a0001
Create Date: 2026-12-06 02:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = "i23a0001"
down_revision = "i19a0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "portal_ticket",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_hash", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("ticket_hash", name="uq_portal_ticket_hash"),
    )
    op.create_index("ix_portal_ticket_used_at", "portal_ticket", ["used_at"])


def downgrade():
    op.drop_index("ix_portal_ticket_used_at", table_name="portal_ticket")
    op.drop_table("portal_ticket")
