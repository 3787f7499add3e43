"""region_year_source: hours by record region, year, category and source, kept by triggers

At 25 M records a province's "hours by category / by source" summed a year's
unit_year_source rows: 557 000 rows (100 000 units x regions x categories x
sources), 79 ms on PostgreSQL, the largest part of the province summary.  The
figure does not need the unit: region_year_source keeps the same sums per record
region (~1 000 rows a year).  A selection that names units (a unit's dashboard, a
unit clerk's scope) still reads unit_year_source.

Kept as unit_year_source is (i19a0001), from the same hour_record changes:
PostgreSQL statement triggers fold a key's rows (FOR UPDATE SKIP LOCKED: a writer
never waits for another writer of the same region); SQLite row triggers update one
row a key, and an import batch's rows are counted by services.totals
.count_import_batch as the other totals are (i19a0002).  Backfilled from
unit_year_source.

Revision ID: i19a0004
Revises: i20a0002
"""
import importlib.util
import os

import sqlalchemy as sa
from alembic import op

revision = "i19a0004"
down_revision = "i20a0002"
branch_labels = None
depends_on = None


def _migration(name):
    path = os.path.join(os.path.dirname(__file__), name + ".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


T = _migration("i19a0001_person_year_totals")
APPROVED = T.APPROVED
KEY = {"region_code": "COALESCE(region_code, '')", "year": "year", "category": "category", "source": "source"}
VALUES, EXPRS = ["hours", "records"], ["hours", "1"]


def _pg_fold(op_name):
    moved = T._signed(T.SIDES[op_name], KEY, VALUES, EXPRS, f"WHERE status = {APPROVED}")
    return T._fold("region_year_source", list(KEY), VALUES, moved)


PG_FUNCTIONS = [
    f"""CREATE FUNCTION ce_region_sources() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN {_pg_fold("INSERT")}
    ELSIF TG_OP = 'DELETE' THEN {_pg_fold("DELETE")}
    ELSE {_pg_fold("UPDATE")}
    END IF;
    RETURN NULL;
END
$$""",
    """CREATE FUNCTION ce_region_sources_empty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM region_year_source;
    RETURN NULL;
END
$$""",
]
PG_TRIGGERS = T._pg_triggers("hour_record", "ce_region_sources", "ce_region_src") + [
    "CREATE TRIGGER ce_region_src_truncate AFTER TRUNCATE ON hour_record "
    "FOR EACH STATEMENT EXECUTE FUNCTION ce_region_sources_empty()",
]
PG_TRIGGER_NAMES = ["ce_region_src_insert", "ce_region_src_delete", "ce_region_src_update", "ce_region_src_truncate"]


def _sqlite_change(r, sign):
    same = (f"region_code = COALESCE({r}.region_code, '') AND year = {r}.year "
            f"AND category = {r}.category AND source = {r}.source")
    op_ = "-" if sign < 0 else "+"
    sql = (f"UPDATE region_year_source SET hours = hours {op_} {r}.hours, records = records {op_} 1 "
           f"WHERE {same} AND {r}.status = {APPROVED};")
    if sign > 0:
        sql += (
            " INSERT INTO region_year_source (region_code, year, category, source, hours, records) "
            f"SELECT COALESCE({r}.region_code, ''), {r}.year, {r}.category, {r}.source, {r}.hours, 1 "
            f"WHERE {r}.status = {APPROVED} AND NOT EXISTS (SELECT 1 FROM region_year_source WHERE {same});"
        )
    return sql


_COLS = ("status", "hours", "category", "year", "region_code", "source")
SQLITE_TRIGGERS = [
    # An import batch's rows are counted set-based by the importer (i19a0002).
    f"CREATE TRIGGER ce_region_src_insert AFTER INSERT ON hour_record "
    f"WHEN NEW.status = {APPROVED} AND NEW.import_batch_id IS NULL BEGIN {_sqlite_change('NEW', 1)} END",
    f"CREATE TRIGGER ce_region_src_delete AFTER DELETE ON hour_record WHEN OLD.status = {APPROVED} "
    f"BEGIN {_sqlite_change('OLD', -1)} END",
    f"CREATE TRIGGER ce_region_src_update AFTER UPDATE OF {', '.join(_COLS)} ON hour_record "
    f"WHEN (OLD.status = {APPROVED} OR NEW.status = {APPROVED}) AND ({T._changed(_COLS)}) "
    f"BEGIN {_sqlite_change('OLD', -1)} {_sqlite_change('NEW', 1)} END",
]
SQLITE_TRIGGER_NAMES = ["ce_region_src_insert", "ce_region_src_delete", "ce_region_src_update"]

BACKFILL = (
    "INSERT INTO region_year_source (region_code, year, category, source, hours, records) "
    "SELECT region_code, year, category, source, sum(hours), sum(records) FROM unit_year_source "
    "GROUP BY region_code, year, category, source "
    "HAVING sum(hours) <> 0 OR sum(records) <> 0 ORDER BY 1, 2, 3, 4"
)


def create_triggers(bind):
    if bind.dialect.name == "postgresql":
        for ddl in (*PG_FUNCTIONS, *PG_TRIGGERS):
            op.execute(ddl)
    else:
        for ddl in SQLITE_TRIGGERS:
            op.execute(ddl)


def upgrade():
    bind = op.get_bind()
    op.create_table(
        "region_year_source",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("region_code", sa.String(6), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("category", sa.Enum("PRO", "PUB", name="category", native_enum=False, length=20),
                  nullable=False),
        sa.Column("source", sa.Enum("DECLARED", "UNIT_IMPORT", "ORGANIZER_REPORT", "BUREAU_IMPORT",
                                    "INDUSTRY_IMPORT", name="source", native_enum=False, length=20),
                  nullable=False),
        sa.Column("hours", sa.Numeric(12, 1), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rys_key", "region_year_source",
                    ["year", "region_code", "category", "source", "hours", "records"])
    if bind.dialect.name == "postgresql":
        # No writer may change unit_year_source between the backfill and the triggers.
        op.execute("LOCK TABLE hour_record IN SHARE MODE")
    op.execute(BACKFILL)
    create_triggers(bind)
    if bind.dialect.name == "postgresql":
        op.execute("ANALYZE region_year_source")


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for name in PG_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON hour_record")
        op.execute("DROP FUNCTION IF EXISTS ce_region_sources()")
        op.execute("DROP FUNCTION IF EXISTS ce_region_sources_empty()")
    else:
        for name in SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("region_year_source")
