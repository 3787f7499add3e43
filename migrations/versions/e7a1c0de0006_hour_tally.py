"""hour tally: each unit's record count per year, category and status, kept by triggers

Revision ID: e7a1c0de0006
Revises: e7a1c0de0005
Create Date: 2026-11-27 12:00:00

A unit's grid counted its records on every page: 4 124 index entries for the
bench's largest unit, 0.3 ms of a 3.5 ms page on PostgreSQL.  hour_tally holds
the count per (unit, year, category, status), so the count of a grid whose
conditions are equalities on those columns is a sum of a few rows, and exact
(CEInterface._tally_count).

The triggers keep it in the transaction that changes hour_record, whatever
wrote the change: the ORM, bulk UPDATE statements, imports, COPY.

- PostgreSQL: a statement trigger (transition tables) computes the statement's
  change per key and, in the same statement, deletes the key's rows that no
  other open transaction holds (FOR UPDATE SKIP LOCKED) and inserts their sum
  with the change.  A writer never waits on another writer of the same unit
  (an import that runs for a minute does not hold up the unit's approvals; a
  counter row updated in place would), and no deadlock can arise from it.  A
  key has one row plus one per transaction that was open at the time; the next
  writer folds them.  An UPDATE that changes no key (a course name) writes
  nothing here.  TRUNCATE empties the tally.
- SQLite: row triggers (it has no statement triggers, and one writer at a
  time): add to the key's row, or insert it.

Records without a unit (unit_id NULL) are not tallied: a condition on the unit
never matches them.

Note for later migrations: SQLite's batch mode rebuilds hour_record by copying
it into a new table, which drops these triggers.  A migration that alters
hour_record in batch mode must create them again (create_triggers below).
"""
import sqlalchemy as sa
from alembic import op

revision = "e7a1c0de0006"
down_revision = "e7a1c0de0005"
branch_labels = None
depends_on = None

KEY = "unit_id, year, category, status"

_MOVED = {
    "INSERT": f"SELECT {KEY}, count(*) AS n FROM new_rows WHERE unit_id IS NOT NULL GROUP BY {KEY}",
    "DELETE": f"SELECT {KEY}, -count(*) AS n FROM old_rows WHERE unit_id IS NOT NULL GROUP BY {KEY}",
    "UPDATE": (
        f"SELECT {KEY}, sum(k) AS n FROM ("
        f"SELECT {KEY}, 1 AS k FROM new_rows WHERE unit_id IS NOT NULL UNION ALL "
        f"SELECT {KEY}, -1 AS k FROM old_rows WHERE unit_id IS NOT NULL) AS both_sides "
        f"GROUP BY {KEY} HAVING sum(k) <> 0"
    ),
}


def _fold(moved):
    """One statement: the change per key, the key's rows no other transaction
    holds (deleted), and their sum with the change (inserted)."""
    return f"""
        WITH moved AS ({moved}),
        free AS (
            SELECT t.id FROM hour_tally t JOIN moved m USING ({KEY})
            ORDER BY t.id FOR UPDATE OF t SKIP LOCKED
        ),
        gone AS (
            DELETE FROM hour_tally t USING free WHERE t.id = free.id
            RETURNING t.unit_id, t.year, t.category, t.status, t.n
        )
        INSERT INTO hour_tally ({KEY}, n)
        SELECT {KEY}, sum(n) FROM (SELECT {KEY}, n FROM gone UNION ALL SELECT {KEY}, n FROM moved) AS parts
        GROUP BY {KEY} HAVING sum(n) <> 0;"""


PG_FUNCTION = f"""
CREATE FUNCTION hour_tally_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN {_fold(_MOVED["INSERT"])}
    ELSIF TG_OP = 'DELETE' THEN {_fold(_MOVED["DELETE"])}
    ELSE {_fold(_MOVED["UPDATE"])}
    END IF;
    RETURN NULL;
END
$$
"""

PG_EMPTY_FUNCTION = """
CREATE FUNCTION hour_tally_empty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM hour_tally;
    RETURN NULL;
END
$$
"""

PG_TRIGGERS = [
    "CREATE TRIGGER hour_tally_truncate AFTER TRUNCATE ON hour_record "
    "FOR EACH STATEMENT EXECUTE FUNCTION hour_tally_empty()",
    "CREATE TRIGGER hour_tally_insert AFTER INSERT ON hour_record REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION hour_tally_follow()",
    "CREATE TRIGGER hour_tally_delete AFTER DELETE ON hour_record REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION hour_tally_follow()",
    "CREATE TRIGGER hour_tally_update AFTER UPDATE ON hour_record "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION hour_tally_follow()",
]

_SAME_OLD = "unit_id = OLD.unit_id AND year = OLD.year AND category = OLD.category AND status = OLD.status"
_SAME_NEW = "unit_id = NEW.unit_id AND year = NEW.year AND category = NEW.category AND status = NEW.status"
_ADD_NEW = (
    f"UPDATE hour_tally SET n = n + 1 WHERE {_SAME_NEW}; "
    f"INSERT INTO hour_tally ({KEY}, n) SELECT NEW.unit_id, NEW.year, NEW.category, NEW.status, 1 "
    f"WHERE NEW.unit_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hour_tally WHERE {_SAME_NEW});"
)
_DROP_OLD = f"UPDATE hour_tally SET n = n - 1 WHERE {_SAME_OLD};"

SQLITE_TRIGGERS = [
    f"CREATE TRIGGER hour_tally_insert AFTER INSERT ON hour_record BEGIN {_ADD_NEW} END",
    f"CREATE TRIGGER hour_tally_delete AFTER DELETE ON hour_record BEGIN {_DROP_OLD} END",
    "CREATE TRIGGER hour_tally_update AFTER UPDATE OF unit_id, year, category, status ON hour_record "
    "WHEN OLD.unit_id IS NOT NEW.unit_id OR OLD.year IS NOT NEW.year OR OLD.category IS NOT NEW.category "
    f"OR OLD.status IS NOT NEW.status BEGIN {_DROP_OLD} {_ADD_NEW} END",
]

TRIGGER_NAMES = ("hour_tally_insert", "hour_tally_delete", "hour_tally_update", "hour_tally_truncate")


def create_triggers(bind):
    if bind.dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(PG_EMPTY_FUNCTION)
        for ddl in PG_TRIGGERS:
            op.execute(ddl)
    else:
        for ddl in SQLITE_TRIGGERS:
            op.execute(ddl)


def upgrade():
    op.create_table(
        "hour_tally",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("category", sa.Enum("PRO", "PUB", name="category", native_enum=False, length=20),
                  nullable=False),
        sa.Column("status", sa.Enum("DRAFT", "SUBMITTED", "APPROVED", "RETURNED", "WITHDRAWN", "REVOKED",
                                    name="status", native_enum=False, length=20), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_hour_tally_key", "hour_tally", ["unit_id", "year", "category", "status", "n"])
    bind = op.get_bind()
    op.execute(f"INSERT INTO hour_tally ({KEY}, n) SELECT {KEY}, count(*) FROM hour_record "
               f"WHERE unit_id IS NOT NULL GROUP BY {KEY} ORDER BY {KEY}")
    create_triggers(bind)
    if bind.dialect.name == "postgresql":
        op.execute("ANALYZE hour_tally")


def downgrade():
    bind = op.get_bind()
    for name in TRIGGER_NAMES:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON hour_record" if bind.dialect.name == "postgresql" else ""))
    if bind.dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS hour_tally_follow()")
        op.execute("DROP FUNCTION IF EXISTS hour_tally_empty()")
    op.drop_index("ix_hour_tally_key", table_name="hour_tally")
    op.drop_table("hour_tally")
