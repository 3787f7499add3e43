"""scripts/backup.sh and scripts/restore.sh on the embedded SQLite database
(issue 26): an online backup while the app holds the database, the uploads, the
keys apart; a restore into a new file that the app opens with the records, the
proofs and an audit log that verifies.  (PostgreSQL PITR: tests/stack/test_stack_restore_drill.py.)"""
import os
import sqlite3
import subprocess

from sqlalchemy import text

from app.extensions import db
from app.services import audit
from tests.conftest import IS_PG

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(IS_PG, reason="the SQLite path; PostgreSQL has tests/stack/test_stack_restore_drill.py")


def test_sqlite_backup_and_restore(app, tmp_path):
    with app.app_context():
        audit.record("probe", "Probe", 1, note="before backup")
        db.session.commit()
        records = db.session.execute(text("SELECT count(*) FROM hour_record")).scalar()
        url = str(db.engine.url)
    uploads = tmp_path / "uploads"
    (uploads / "proofs" / "ab").mkdir(parents=True)
    (uploads / "proofs" / "ab" / "ab12.png").write_bytes(b"\x89PNG proof")
    key = tmp_path / "audit_key.key"
    key.write_text(app.config["AUDIT_KEY"])
    env = dict(os.environ, DATABASE_URL=url, UPLOAD_DIR=str(uploads), AUDIT_KEY_FILE=str(key),
               CE_VAR_DIR=str(tmp_path / "var"))
    env.pop("AUDIT_KEY", None)
    bk = tmp_path / "backup"
    bad = subprocess.run(["bash", "scripts/backup.sh", str(bk), str(bk / "keys")], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "apart" in bad.stderr
    for p in sorted(bk.rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    out = subprocess.run(["bash", "scripts/backup.sh", str(bk), str(tmp_path / "keys")], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "keys" / "audit_key.key").read_text() == key.read_text()
    assert "uploads.tar.gz" in (bk / "MANIFEST").read_text()
    new_db, new_up = tmp_path / "restored" / "ce.db", tmp_path / "restored" / "uploads"
    out = subprocess.run(["bash", "scripts/restore.sh", "sqlite", str(bk), str(new_db), str(new_up)],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (new_up / "proofs" / "ab" / "ab12.png").read_bytes() == b"\x89PNG proof"
    env2 = dict(env, DATABASE_URL="sqlite:///" + str(new_db), AUDIT_KEY_FILE=str(tmp_path / "keys" / "audit_key.key"))
    with sqlite3.connect(new_db) as conn:
        assert conn.execute("SELECT count(*) FROM hour_record").fetchone()[0] == records
        assert conn.execute("SELECT count(*) FROM audit_log WHERE detail LIKE '%before backup%'").fetchone()[0] == 1
    v = subprocess.run([os.path.join(ROOT, ".venv", "bin", "python"), "-m", "flask", "--app", "run.py",
                        "ce", "audit", "verify"], cwd=ROOT, env=env2, capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr
    assert "audit log ok" in v.stdout
