"""account binding indexes: ab_user by unit, region and person; partial pending-unit index

Revision ID: e7a1c0de0005
Revises: e7a1c0de0004
Create Date: 2026-11-27 08:00:00

A province has an account per registered applicant (issue 7's generator makes
353 359 at scale 1.0).  A unit administrator's account list (unit_id), a bureau's
(region_code range) and the "has this person an account" check at registration
(person_id) read the whole account table without these: 58-104 ms each with
the bench's accounts on SQLite.

The indexes are partial (IS NOT NULL): most accounts have no unit or no region,
and SQLite's statistics (ANALYZE) count the NULLs as one value, so a full index
looks useless to its planner.  For the same reason the index on
person.pending_unit_id (NULL for nearly every person) becomes partial: with
statistics, SQLite read every person to list a unit's pending attachments.
"""
import sqlalchemy as sa
from alembic import op

revision = "e7a1c0de0005"
down_revision = "e7a1c0de0004"
branch_labels = None
depends_on = None

ACCOUNT_COLUMNS = ("unit_id", "region_code", "person_id")


def _not_null(column):
    where = sa.text(f"{column} IS NOT NULL")
    return {"sqlite_where": where, "postgresql_where": where}


def upgrade():
    with op.batch_alter_table("ab_user", schema=None) as batch_op:
        for column in ACCOUNT_COLUMNS:
            batch_op.create_index(f"ix_ab_user_{column}", [column], unique=False, **_not_null(column))
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.drop_index("ix_person_pending_unit")
        batch_op.create_index("ix_person_pending_unit", ["pending_unit_id"], unique=False,
                              **_not_null("pending_unit_id"))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("ANALYZE ab_user")
        op.execute("ANALYZE person")
    elif sa.inspect(bind).has_table("sqlite_stat1"):
        for name in [f"ix_ab_user_{c}" for c in ACCOUNT_COLUMNS] + ["ix_person_pending_unit"]:
            op.execute(f"ANALYZE {name}")


def downgrade():
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.drop_index("ix_person_pending_unit")
        batch_op.create_index("ix_person_pending_unit", ["pending_unit_id"], unique=False)
    with op.batch_alter_table("ab_user", schema=None) as batch_op:
        for column in reversed(ACCOUNT_COLUMNS):
            batch_op.drop_index(f"ix_ab_user_{column}")
