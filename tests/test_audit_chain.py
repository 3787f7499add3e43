"""The audit log is tamper-evident (issue 26): every row carries an HMAC-SM3
over its content and the previous row's MAC in its chain; triggers refuse
UPDATE / DELETE / TRUNCATE; `flask ce audit verify` names the first row that
was changed, removed or inserted behind the app's back (after the owner drops
the triggers); rows older than AUDIT_KEEP_DAYS leave only through a sealed file.
Runs on SQLite and, with TEST_DATABASE_URL, on PostgreSQL."""
import datetime
import json
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.extensions import db
from app.models import AuditLog
from app.services import audit, audit_chain
from tests.conftest import IS_PG

PG_TRIGGERS = [("audit_log_guard", "audit_log"), ("audit_log_no_truncate", "audit_log")]
SQLITE_TRIGGERS = ["audit_log_no_update", "audit_log_no_delete"]


def write(n, action="probe", **detail):
    rows = [audit.record(action, "Probe", i, region_code="320100", n=i, **detail) for i in range(n)]
    db.session.commit()
    return [r.id for r in rows]


def verify_cli(app):
    result = app.test_cli_runner().invoke(args=["ce", "audit", "verify"])
    return result.exit_code, result.output


def drop_triggers():
    """What an owner (or anyone who took the database over) can do."""
    if IS_PG:
        for name, table in PG_TRIGGERS:
            db.session.execute(text(f"DROP TRIGGER {name} ON {table}"))
    else:
        for name in SQLITE_TRIGGERS:
            db.session.execute(text(f"DROP TRIGGER {name}"))
    db.session.commit()


def row(row_id):
    return db.session.execute(text("SELECT chain_id, seq, mac FROM audit_log WHERE id = :i"),
                              {"i": row_id}).first()


def test_rows_are_chained_and_verify(app, ctx):
    ids = write(5)
    chained = [row(i) for i in ids]
    assert all(r.mac and len(r.mac) == 64 and r.seq >= 1 for r in chained)
    # one transaction keeps one chain, its rows one after the other
    assert len({r.chain_id for r in chained}) == 1
    assert [r.seq for r in chained] == list(range(chained[0].seq, chained[0].seq + 5))
    code, out = verify_cli(app)
    assert code == 0, out
    assert "audit log ok: " in out


def test_triggers_refuse_update_delete_truncate(app, ctx):
    rid = write(1)[0]
    for stmt in ("UPDATE audit_log SET detail = 'x' WHERE id = :i", "DELETE FROM audit_log WHERE id = :i"):
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(text(stmt), {"i": rid})
        db.session.rollback()
    if IS_PG:
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(text("TRUNCATE audit_log"))
        db.session.rollback()
    with pytest.raises(DBAPIError, match="append-only"):
        db.session.execute(text("DELETE FROM audit_chain"))
    db.session.rollback()
    assert db.session.execute(text("SELECT count(*) FROM audit_log WHERE id = :i"), {"i": rid}).scalar() == 1


def test_changed_row_is_named(app, ctx):
    ids = write(4)
    drop_triggers()
    db.session.execute(text("UPDATE audit_log SET username = 'nobody' WHERE id = :i"), {"i": ids[2]})
    db.session.commit()
    code, out = verify_cli(app)
    assert code == 1
    assert f"row {ids[2]} " in out and "changed" in out


def test_deleted_row_is_named(app, ctx):
    ids = write(4)
    victim = row(ids[1])
    drop_triggers()
    db.session.execute(text("DELETE FROM audit_log WHERE id = :i"), {"i": ids[1]})
    db.session.commit()
    code, out = verify_cli(app)
    assert code == 1
    assert f"chain {victim.chain_id}: row(s) seq {victim.seq}..{victim.seq} removed" in out
    assert f"after row {ids[0]}" in out and f"before row {ids[2]}" in out


def test_deleted_last_row_is_found(app, ctx):
    ids = write(3)
    victim = row(ids[-1])
    drop_triggers()
    db.session.execute(text("DELETE FROM audit_log WHERE id = :i"), {"i": ids[-1]})
    db.session.commit()
    code, out = verify_cli(app)
    assert code == 1
    assert f"chain {victim.chain_id}: last row(s) seq {victim.seq}..{victim.seq} removed (after row {ids[1]})" in out


def test_inserted_rows_are_named(app, ctx):
    ids = write(3)
    first = row(ids[0])
    # A row in no chain, and a row pushed into a chain with a made-up MAC.
    loose = db.session.execute(text(
        "INSERT INTO audit_log (at, action, object_type) VALUES (:at, 'login', 'User') RETURNING id"),
        {"at": datetime.datetime.utcnow()}).scalar()
    db.session.commit()
    code, out = verify_cli(app)
    assert code == 1 and f"row {loose} is in no chain (inserted)" in out
    drop_triggers()
    db.session.execute(text("DELETE FROM audit_log WHERE id = :i"), {"i": loose})
    # shift the chain's later rows up by one and put a forged row in the gap
    for i in reversed(ids[1:]):
        db.session.execute(text("UPDATE audit_log SET seq = seq + 1 WHERE id = :i"), {"i": i})
    forged = db.session.execute(text(
        "INSERT INTO audit_log (at, action, object_type, chain_id, seq, mac) "
        "VALUES (:at, 'probe', 'Probe', :c, :s, :m) RETURNING id"),
        {"at": datetime.datetime.utcnow(), "c": first.chain_id, "s": first.seq + 1, "m": "0" * 64}).scalar()
    db.session.commit()
    code, out = verify_cli(app)
    assert code == 1
    assert f"chain {first.chain_id}: row {forged} (seq {first.seq + 1}) was changed or inserted" in out


def test_a_bulk_transition_is_sealed(app, ctx):
    from app.services.approval import _audit_many

    _audit_many("approve", [(1, None, "320100", "SUBMITTED"), (2, None, "320100", "SUBMITTED")],
                {"status": "APPROVED"}, None, datetime.datetime.utcnow())
    db.session.commit()
    macs = db.session.execute(text("SELECT mac FROM audit_log WHERE action = 'approve'")).scalars().all()
    assert len(macs) >= 2 and all(macs)
    assert verify_cli(app)[0] == 0


def test_detail_masks_id_numbers(app, ctx):
    audit.record("person.update", "Person", 1, old={"id_number": "320102199001011234"},
                 new={"note": "旧证号 32010219900101123X 作废"})
    db.session.commit()
    detail = db.session.execute(text("SELECT detail FROM audit_log ORDER BY id DESC LIMIT 1")).scalar()
    assert "320102199001011234" not in detail and "32010219900101123X" not in detail
    assert json.loads(detail)["old"]["id_number"] == "320102********1234"
    assert "320102********123X" in detail


def test_keep_days_below_180_refused(app, ctx):
    app.config["AUDIT_KEEP_DAYS"] = 90
    try:
        with pytest.raises(ValueError, match="at least 180 days"):
            audit_chain.archive("/nonexistent")
    finally:
        app.config["AUDIT_KEEP_DAYS"] = 180


def test_archive_writes_a_sealed_file_then_removes_old_rows(app, ctx, tmp_path):
    old = datetime.datetime.utcnow() - datetime.timedelta(days=200)
    for i in range(3):
        db.session.add(AuditLog(at=old + datetime.timedelta(seconds=i), action="old", object_type="Probe"))
    db.session.commit()
    recent = write(2)
    # the trigger refuses deleting an old row that no archive covers
    with pytest.raises(DBAPIError, match="append-only"):
        db.session.execute(text("DELETE FROM audit_log WHERE action = 'old'"))
    db.session.rollback()
    result = app.test_cli_runner().invoke(args=["ce", "audit", "archive", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "archived 3 rows" in result.output
    files = list(tmp_path.glob("audit-*.jsonl"))
    assert len(files) == 1
    lines = files[0].read_text().splitlines()
    assert [json.loads(x)["action"] for x in lines[:-1]] == ["old"] * 3
    assert "seal" in json.loads(lines[-1])
    assert db.session.execute(text("SELECT count(*) FROM audit_log WHERE action = 'old'")).scalar() == 0
    assert all(row(i) for i in recent)
    assert verify_cli(app)[0] == 0  # the chains continue from the archive anchors
    ok = app.test_cli_runner().invoke(args=["ce", "audit", "check-archive", str(files[0])])
    assert ok.exit_code == 0 and "seal ok" in ok.output
    files[0].chmod(0o640)
    files[0].write_text("\n".join(lines[:1] + lines[2:]) + "\n")  # a line removed from the file
    bad = app.test_cli_runner().invoke(args=["ce", "audit", "check-archive", str(files[0])])
    assert bad.exit_code == 1 and "TAMPERED" in bad.output


@pytest.mark.skipif(not IS_PG, reason="database roles exist on PostgreSQL only")
def test_application_role_cannot_drop_the_triggers(app, ctx):
    """docs/deploy-security.md: the app's role writes rows but is not the owner."""
    role = "ce_app_" + uuid.uuid4().hex[:8]
    db.session.execute(text(f"CREATE ROLE {role} NOLOGIN"))
    db.session.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON audit_log, audit_chain TO {role}"))
    db.session.commit()
    rid = write(1)[0]
    try:
        for stmt, match in [("DROP TRIGGER audit_log_guard ON audit_log", "must be owner"),
                            ("ALTER TABLE audit_log DISABLE TRIGGER USER", "must be owner"),
                            (f"UPDATE audit_log SET detail = 'x' WHERE id = {rid}", "append-only"),
                            ("TRUNCATE audit_log", "append-only")]:
            db.session.execute(text(f"SET ROLE {role}"))
            with pytest.raises(DBAPIError, match=match):
                db.session.execute(text(stmt))
            db.session.rollback()
    finally:
        db.session.rollback()
        db.session.execute(text("RESET ROLE"))
        db.session.execute(text(f"REVOKE ALL ON audit_log, audit_chain FROM {role}"))
        db.session.execute(text(f"DROP ROLE {role}"))
        db.session.commit()


@pytest.mark.skipif(not IS_PG, reason="concurrent writers: PostgreSQL (SQLite has one writer at a time)")
def test_writers_do_not_wait_for_each_other(app, ctx):
    """A transaction holding a chain head (a long import, say) does not hold up another writer."""
    other = db.engine.connect()
    trans = other.begin()
    held = audit_chain.seal(other, [{"action": "import", "object_type": "Probe"}])[0]
    other.execute(AuditLog.__table__.insert(), held)
    try:
        db.session.execute(text("SET lock_timeout = '2s'"))
        rid = write(1)[0]
        assert row(rid).chain_id != held["chain_id"]
    finally:
        trans.commit()
        other.close()
    code, out = verify_cli(app)
    assert code == 0, out
