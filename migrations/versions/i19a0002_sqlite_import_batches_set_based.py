"""SQLite: an import batch's records are counted set-based, not by row triggers

Revision ID: i19a0002
Revises: i27a0001
Create Date: 2026-12-06 05:40:00

SQLite has only row triggers: a 100 000-row import fired hour_tally's and the
yearly totals' insert triggers once a row (~6 statements each), 63 µs a row, three
quarters of the import's time (12k rows/s against the 20k target).  PostgreSQL's
triggers are statement triggers and already count a whole INSERT at once.

On SQLite the two insert triggers now skip rows that carry an import_batch_id, and
the importer counts its batch in the same transaction with a few grouped
statements (services.totals.count_import_batch): the same figures, set-based, as
PostgreSQL's statement triggers do.  Updates and deletes of those records later go
through the row triggers as before.  Nothing else writes import_batch_id.
PostgreSQL: nothing changes.
"""
from alembic import op

revision = "i19a0002"
down_revision = "i27a0001"
branch_labels = None
depends_on = None

SKIP = "NEW.import_batch_id IS NULL"
# trigger: (its WHEN/BEGIN as created by the migration that made it, the new one)
CHANGES = {
    "hour_tally_insert": ("ON hour_record BEGIN", f"ON hour_record WHEN {SKIP} BEGIN"),
    "ce_totals_hours_insert": ("WHEN NEW.status = 'APPROVED' BEGIN",
                               f"WHEN NEW.status = 'APPROVED' AND {SKIP} BEGIN"),
}


def _rewrite(old_index, new_index):
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    for name, texts in CHANGES.items():
        sql = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                                   (name,)).scalar_one()
        old, new = texts[old_index], texts[new_index]
        assert sql.count(old) == 1, (name, sql[:200])
        op.execute(f"DROP TRIGGER {name}")
        op.execute(sql.replace(old, new))


def upgrade():
    _rewrite(0, 1)


def downgrade():
    _rewrite(1, 0)
