"""audit chain: HMAC-SM3 chain columns, chain heads, archive anchors, triggers

Revision ID: i26a0001
Revises: i20a0001
Create Date: 2026-12-06 03:40:00

audit_log gets chain_id, seq and mac (app/services/audit_chain.py); audit_chain
holds 16 chain heads; audit_archive the anchors of archived rows.  Triggers on
both databases refuse UPDATE and DELETE of audit rows (and TRUNCATE on
PostgreSQL) whatever writes them: the only DELETE let through is of a row older
than 180 days that an archive anchor covers (`ce audit archive` wrote it to a
sealed file first).  audit_archive is insert-only; chain heads cannot be deleted.
Only the owner of the tables can drop these triggers (docs/deploy-security.md).
Rows written before this revision stay outside the chains (verify counts them).
"""
import sqlalchemy as sa
from alembic import op

revision = "i26a0001"
down_revision = "i20a0001"
branch_labels = None
depends_on = None

CHAINS = 16
MIN_DAYS = 180

PG_UP = f"""
CREATE FUNCTION ce_audit_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND OLD.at < (now() AT TIME ZONE 'utc') - interval '{MIN_DAYS} days'
     AND EXISTS (SELECT 1 FROM audit_archive a
                 WHERE a.chain_id = OLD.chain_id AND a.through_seq >= OLD.seq) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = '42501';
END $$;
CREATE FUNCTION ce_audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = '42501';
END $$;
CREATE TRIGGER audit_log_guard BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION ce_audit_guard();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION ce_audit_refuse();
CREATE TRIGGER audit_archive_guard BEFORE UPDATE OR DELETE ON audit_archive
  FOR EACH ROW EXECUTE FUNCTION ce_audit_refuse();
CREATE TRIGGER audit_archive_no_truncate BEFORE TRUNCATE ON audit_archive
  FOR EACH STATEMENT EXECUTE FUNCTION ce_audit_refuse();
CREATE TRIGGER audit_chain_guard BEFORE DELETE ON audit_chain
  FOR EACH ROW EXECUTE FUNCTION ce_audit_refuse();
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
  FOR EACH STATEMENT EXECUTE FUNCTION ce_audit_refuse();
"""

SQLITE_UP = [
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END",
    f"CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
    f"WHEN NOT (OLD.at < datetime('now', '-{MIN_DAYS} days') AND EXISTS ("
    f"SELECT 1 FROM audit_archive a WHERE a.chain_id = OLD.chain_id AND a.through_seq >= OLD.seq)) "
    f"BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END",
    "CREATE TRIGGER audit_archive_no_update BEFORE UPDATE ON audit_archive "
    "BEGIN SELECT RAISE(ABORT, 'audit_archive is append-only: UPDATE refused'); END",
    "CREATE TRIGGER audit_archive_no_delete BEFORE DELETE ON audit_archive "
    "BEGIN SELECT RAISE(ABORT, 'audit_archive is append-only: DELETE refused'); END",
    "CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain "
    "BEGIN SELECT RAISE(ABORT, 'audit_chain is append-only: DELETE refused'); END",
]
SQLITE_TRIGGERS = ["audit_log_no_update", "audit_log_no_delete", "audit_archive_no_update",
                   "audit_archive_no_delete", "audit_chain_no_delete"]


def upgrade():
    op.add_column("audit_log", sa.Column("chain_id", sa.Integer(), nullable=True))
    op.add_column("audit_log", sa.Column("seq", sa.Integer(), nullable=True))
    op.add_column("audit_log", sa.Column("mac", sa.String(length=64), nullable=True))
    op.create_index("ux_audit_chain_seq", "audit_log", ["chain_id", "seq"], unique=True)
    chain = op.create_table(
        "audit_chain",
        sa.Column("chain_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("chain_id"),
    )
    op.bulk_insert(chain, [{"chain_id": i, "seq": 0, "mac": ""} for i in range(CHAINS)])
    op.create_table(
        "audit_archive",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("through_seq", sa.Integer(), nullable=False),
        sa.Column("mac", sa.String(length=64), nullable=False),
        sa.Column("archived_at", sa.DateTime(), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("file_digest", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("seal", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_archive_chain", "audit_archive", ["chain_id", "through_seq"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_UP)
    else:
        for stmt in SQLITE_UP:
            op.execute(stmt)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for name, table in [("audit_log_guard", "audit_log"), ("audit_log_no_truncate", "audit_log"),
                            ("audit_archive_guard", "audit_archive"),
                            ("audit_archive_no_truncate", "audit_archive"),
                            ("audit_chain_guard", "audit_chain"), ("audit_chain_no_truncate", "audit_chain")]:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS ce_audit_guard()")
        op.execute("DROP FUNCTION IF EXISTS ce_audit_refuse()")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index("ix_audit_archive_chain", table_name="audit_archive")
    op.drop_table("audit_archive")
    op.drop_table("audit_chain")
    op.drop_index("ux_audit_chain_seq", table_name="audit_log")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("mac")
        batch.drop_column("seq")
        batch.drop_column("chain_id")
