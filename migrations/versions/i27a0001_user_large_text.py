"""大字版: a user's larger-text preference on ab_user

Revision ID: i27a0001
Revises: i23a0001
Create Date: 2026-12-06 02:40:00

The 大字版 switch in the user menu (issue 27) is remembered on the account, so it
follows the user to any browser and any worker.  A plain ADD / DROP COLUMN (SQLite
3.35+ drops columns itself): a batch copy of ab_user would lose the expression index
on lower(username) (e7a1c0de0004), which it cannot reflect.
"""
import sqlalchemy as sa
from alembic import op

revision = "i27a0001"
down_revision = "i23a0001"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("ab_user", sa.Column("large_text", sa.Boolean(), nullable=False, server_default=sa.text("false")))


def downgrade():
    op.drop_column("ab_user", "large_text")
