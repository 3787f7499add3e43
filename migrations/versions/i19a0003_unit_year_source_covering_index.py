"""unit_year_source: a covering index for the province's hours by category and source

The dashboard's "hours by category / by source" of a province or a city sums one
year's unit_year_source rows (~110 000 at 1 M persons).  Through ix_uys_year
(year, region_code) SQLite read each row from the table and sorted them: 157 ms of
CPU at 5 M records, most of the province summary.  ix_uys_year_sum holds every
column the sum reads, in GROUP BY order: 15 ms.  It replaces ix_uys_year (its
leading column serves the same lookups).

Revision ID: i19a0003
Revises: i25a0001
"""
from alembic import op

revision = "i19a0003"
down_revision = "i25a0001"
branch_labels = None
depends_on = None

COLUMNS = ["year", "category", "source", "region_code", "hours", "records"]


def upgrade():
    op.create_index("ix_uys_year_sum", "unit_year_source", COLUMNS)
    op.drop_index("ix_uys_year", table_name="unit_year_source")


def downgrade():
    op.create_index("ix_uys_year", "unit_year_source", ["year", "region_code"])
    op.drop_index("ix_uys_year_sum", table_name="unit_year_source")
