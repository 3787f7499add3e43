"""unit_year_source: a covering index for the province's hours by category and source

The dashboard's "hours by category / by source" of a province or a city sums one
year's unit_year_source rows (~110 000 at 1 M persons).  Through ix_uys_year
(year, region_code) SQLite read each row from the table and sorted them: 157 ms of
CPU at 5 M records, most of the province summary.  ix_uys_year_sum holds every
column the sum reads, in GROUP BY order: 15 ms.  It replaces ix_uys_year (its
leading column serves the same lookups).

A unit's figures (unit_id IN (...) AND year = ?) must not take that index for a
scan of the whole year: ix_uys_key gets year second and covers the sum too, so the
unit's lookup has two equality columns in a covering index and SQLite's planner
prefers it even without statistics (at 5 M records: 25 ms -> under 1 ms).  The
triggers look a key up by all five key columns: the order does not matter to them.

Revision ID: i19a0003
Revises: i25a0001
"""
from alembic import op

revision = "i19a0003"
down_revision = "i25a0001"
branch_labels = None
depends_on = None

COLUMNS = ["year", "category", "source", "region_code", "hours", "records"]


KEY_BEFORE = ["unit_id", "region_code", "year", "category", "source"]
KEY = ["unit_id", "year", "category", "source", "region_code", "hours", "records"]


def upgrade():
    op.create_index("ix_uys_year_sum", "unit_year_source", COLUMNS)
    op.drop_index("ix_uys_year", table_name="unit_year_source")
    op.drop_index("ix_uys_key", table_name="unit_year_source")
    op.create_index("ix_uys_key", "unit_year_source", KEY)


def downgrade():
    op.drop_index("ix_uys_key", table_name="unit_year_source")
    op.create_index("ix_uys_key", "unit_year_source", KEY_BEFORE)
    op.create_index("ix_uys_year", "unit_year_source", ["year", "region_code"])
    op.drop_index("ix_uys_year_sum", table_name="unit_year_source")
