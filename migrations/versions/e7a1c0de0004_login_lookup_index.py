"""login lookup index: lower(username) on ab_user

Revision ID: e7a1c0de0004
Revises: e7a1c0de0003
Create Date: 2026-11-27 07:40:00

FAB finds the account to sign in with `lower(username) = lower(:typed)`
(AUTH_USERNAME_CI, on by default), which the unique index on username cannot
serve: every login read the whole account table.  A province has an account per
registered applicant (issue 7's generator makes 353 359 at scale 1.0).
"""
import sqlalchemy as sa
from alembic import op

revision = "e7a1c0de0004"
down_revision = "e7a1c0de0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("ab_user", schema=None) as batch_op:
        batch_op.create_index("ix_ab_user_username_lower", [sa.text("lower(username)")], unique=False)


def downgrade():
    with op.batch_alter_table("ab_user", schema=None) as batch_op:
        batch_op.drop_index("ix_ab_user_username_lower")
