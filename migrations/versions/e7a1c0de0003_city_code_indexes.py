"""city code indexes: ([year, category,] substr(region_code, 1, 4), id, region_code)

Revision ID: e7a1c0de0003
Revises: e7a1c0de0002
Create Date: 2026-11-27 05:30:00

A city bureau's scope adds to the region range substr(region_code, 1, 4) = its
4-digit prefix (app/models/regions.py, city_code); these indexes hold that very
expression, so that a newest-first page of one city, with or without a year +
category filter, reads that city's ids in order instead of walking the primary key
past the other cities' records (issue 7).  region_code is carried for the range.
The expression is written out as the models' DDL renders it on SQLite and
PostgreSQL alike.

The planner statistics of the new indexes are gathered at once where the database
keeps statistics: without them SQLite (when the other indexes have theirs) and
PostgreSQL take a city for a handful of rows and read a whole city where the
(status, region_code) index or the (updated_at, id) walk is far cheaper.
"""
import sqlalchemy as sa
from alembic import op

revision = "e7a1c0de0003"
down_revision = "e7a1c0de0002"
branch_labels = None
depends_on = None

CITY = sa.text("substr(region_code, 1, 4)")


def upgrade():
    with op.batch_alter_table("hour_record", schema=None) as batch_op:
        batch_op.create_index("ix_hr_city", [CITY, "id", "region_code"], unique=False)
        batch_op.create_index("ix_hr_year_cat_city", ["year", "category", CITY, "id", "region_code"], unique=False)
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("ANALYZE hour_record")
    elif sa.inspect(bind).has_table("sqlite_stat1"):
        op.execute("ANALYZE ix_hr_city")
        op.execute("ANALYZE ix_hr_year_cat_city")


def downgrade():
    with op.batch_alter_table("hour_record", schema=None) as batch_op:
        batch_op.drop_index("ix_hr_year_cat_city")
        batch_op.drop_index("ix_hr_city")
