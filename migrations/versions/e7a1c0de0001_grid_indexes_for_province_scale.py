"""grid indexes for province scale: unit scope in id order, unit + year + category

Revision ID: e7a1c0de0001
Revises: 57ac5b304c4e
Create Date: 2026-11-27 02:30:00

The hour-record grid orders newest first (id desc).  A unit user's grid reads
(unit_id, id) in order, with no sort; a unit's year + category filter reads
(unit_id, year, category, id).  Region-subtree grids scan the primary key
newest first (app/views/datamodel.py decides, see SPEC §6).
"""
from alembic import op

revision = "e7a1c0de0001"
down_revision = "57ac5b304c4e"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("hour_record", schema=None) as batch_op:
        batch_op.create_index("ix_hr_unit_id", ["unit_id", "id"], unique=False)
        batch_op.create_index("ix_hr_unit_year_cat", ["unit_id", "year", "category", "id"], unique=False)


def downgrade():
    with op.batch_alter_table("hour_record", schema=None) as batch_op:
        batch_op.drop_index("ix_hr_unit_year_cat")
        batch_op.drop_index("ix_hr_unit_id")
