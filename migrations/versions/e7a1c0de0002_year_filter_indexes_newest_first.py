"""year filter indexes, newest first: (year, [category,] id, region_code)

Revision ID: e7a1c0de0002
Revises: e7a1c0de0001
Create Date: 2026-11-27 02:50:00

A year (+ category) filter on the hour-record grid with newest-first order
reads these in id order; region_code is carried so that the region-subtree
check needs no row lookup (SPEC §6: a year filter wants an index leading on year).
"""
from alembic import op

revision = "e7a1c0de0002"
down_revision = "e7a1c0de0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("hour_record", schema=None) as batch_op:
        batch_op.create_index("ix_hr_year_cat_id", ["year", "category", "id", "region_code"], unique=False)
        batch_op.create_index("ix_hr_year_id", ["year", "id", "region_code"], unique=False)


def downgrade():
    with op.batch_alter_table("hour_record", schema=None) as batch_op:
        batch_op.drop_index("ix_hr_year_id")
        batch_op.drop_index("ix_hr_year_cat_id")
