"""Backup and restore drill (issue 26), a stage of its own in scripts/test.sh:

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/drill_backup.py

On its own PostgreSQL cluster started with continuous WAL archiving: write
records (with an uploaded proof), take a base backup (scripts/backup.sh), write
more, make a mistake (a bulk revoke of every approved record), restore
(scripts/restore.sh) into a NEW cluster to the moment before the mistake
(recovery_target_time), start the app on it and check: every record written
before the mistake is there as it was, nothing written after it, the audit
chains verify (`flask --app run.py ce audit verify`, key from the key backup),
the proofs open.  Ports CE_DRILL_PORT and CE_DRILL_PORT+1 (default 52600/1).
The file is not named test_*.py so that the ordinary suite does not collect it.
"""
import datetime
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
from sqlalchemy import create_engine, select, text

from app import create_app
from app.extensions import db
from config import TestConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sorted(
    (os.path.join("/usr/lib/postgresql", v, "bin") for v in os.listdir("/usr/lib/postgresql")),
    key=lambda p: int(p.split("/")[-2]))[-1]
PORT = int(os.environ.get("CE_DRILL_PORT", "52600"))
AS_PG = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []


def pg(*args, **kw):
    return subprocess.run(AS_PG + [os.path.join(BIN, args[0]), *args[1:]], check=True,
                          capture_output=True, text=True, **kw)


def app_for(url, var):
    class Cfg(TestConfig):
        SQLALCHEMY_DATABASE_URI = url
        VAR_DIR = var
        UPLOAD_DIR = os.path.join(var, "uploads")
        AUDIT_KEY = None
        AUDIT_KEY_FILE = os.path.join(var, "keys", "audit_key.key")
        SERVER_NAME = None

    return create_app(Cfg)


def clone_records(n, tag):
    """n new hour records (copies of approved ones, course name `tag i`), committed."""
    from app.models import HourRecord, Status
    from app.services import audit

    t = HourRecord.__table__
    src = db.session.execute(select(t).where(t.c.status == Status.APPROVED.name).limit(n)).mappings().all()
    assert len(src) == n
    ids = []
    for i, r in enumerate(src):
        row = {k: v for k, v in r.items() if k != "id"}
        row["course_name"] = f"{tag} {i}"
        rid = db.session.execute(t.insert().values(**row).returning(t.c.id)).scalar()
        audit.record("create", "HourRecord", rid, new={"course_name": row["course_name"]})
        ids.append(rid)
    db.session.commit()
    return ids


@pytest.fixture
def drill_dir():
    d = tempfile.mkdtemp(prefix="ce-drill-")
    os.chmod(d, 0o755)
    yield d
    for sub in ("src", "restored"):
        path = os.path.join(d, sub)
        if os.path.exists(os.path.join(path, "postmaster.pid")):
            subprocess.run(AS_PG + [os.path.join(BIN, "pg_ctl"), "-D", path, "stop", "-m", "immediate"],
                           capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


def test_point_in_time_restore_drill(drill_dir):
    t0 = time.monotonic()
    src, wal, var = (os.path.join(drill_dir, x) for x in ("src", "wal", "var"))
    os.makedirs(src)
    os.makedirs(wal)
    if AS_PG:
        shutil.chown(src, "postgres")
        shutil.chown(wal, "postgres")
    os.makedirs(os.path.join(var, "keys"))
    with open(os.path.join(var, "keys", "audit_key.key"), "w") as f:
        f.write(os.urandom(32).hex())
    pg("initdb", "-D", src, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8")
    archive = f"test ! -f {wal}/%f && cp %p {wal}/%f"
    pg("pg_ctl", "-D", src, "-l", os.path.join(src, "server.log"), "-w", "-o",
       f"-p {PORT} -k /tmp -c listen_addresses=127.0.0.1 -c wal_level=replica "
       f"-c archive_mode=on -c \"archive_command={archive}\"", "start")
    admin = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{PORT}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text("CREATE DATABASE ce"))
    url = f"postgresql+psycopg://postgres@127.0.0.1:{PORT}/ce"
    app = app_for(url, var)
    proof = b"\x89PNG\r\n\x1a\n" + os.urandom(2048)
    with app.app_context():
        from app.models import Attachment, HourRecord, Status
        from app.services import attachments
        from app.services.setup import initialize

        initialize(demo=True)
        before_backup = clone_records(5, "备份前")
        sha = hashlib.sha256(proof).hexdigest()
        att = Attachment(record_id=before_backup[0], filename="证明.png", content_type="image/png",
                         size=len(proof), sha256=sha, storage_path=attachments._store(proof, sha, "png"))
        db.session.add(att)
        db.session.commit()
        att_id = att.id
    env = dict(os.environ, DATABASE_URL=url, UPLOAD_DIR=os.path.join(var, "uploads"), CE_VAR_DIR=var,
               AUDIT_KEY_FILE=os.path.join(var, "keys", "audit_key.key"))
    env.pop("AUDIT_KEY", None)
    bk, keys = os.path.join(drill_dir, "backup"), os.path.join(drill_dir, "keys-apart")
    t_backup = time.monotonic()
    out = subprocess.run(["bash", "scripts/backup.sh", bk, keys], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    backup_seconds = time.monotonic() - t_backup
    assert os.path.exists(os.path.join(keys, "audit_key.key"))
    assert not any(n.endswith(".key") for _d, _s, files in os.walk(bk) for n in files)
    with app.app_context():
        after_backup = clone_records(5, "备份后")
        approved = set(db.session.execute(text("SELECT id FROM hour_record WHERE status = 'APPROVED'")).scalars())
        audit_rows = db.session.execute(text("SELECT count(*) FROM audit_log")).scalar()
        target = db.session.execute(text("SELECT clock_timestamp()")).scalar()
        db.session.commit()
        time.sleep(1.5)
        # the mistake: every approved record revoked in one statement
        from app.security.scope import Scope
        from app.services.approval import transition

        admin_user = app.appbuilder.sm.find_user(username="admin")
        result = transition(sorted(approved), "revoke", user=admin_user, scope=Scope(everything=True),
                            comment="误操作：批量撤销")
        assert result.done == len(approved) > 10
        db.session.execute(text(
            "INSERT INTO hour_record (person_id, year, category, learning_form, course_name, start_date, end_date,"
            " hours, source, status, late_report, created_at, updated_at) SELECT person_id, year, category,"
            " learning_form, '误操作之后', start_date, end_date, hours, source, status, late_report, created_at,"
            " updated_at FROM hour_record LIMIT 1"))
        db.session.commit()
        db.session.execute(text("SELECT pg_switch_wal()"))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    # wait until the segment holding the mistake is archived
    with admin.connect() as c:
        current = c.execute(text("SELECT pg_walfile_name(pg_current_wal_lsn())")).scalar()
        for _ in range(120):
            last = c.execute(text("SELECT last_archived_wal FROM pg_stat_archiver")).scalar()
            if last and last[:24] >= current[:24]:
                break
            time.sleep(0.5)
    admin.dispose()
    pg("pg_ctl", "-D", src, "stop", "-m", "fast")

    t_restore = time.monotonic()
    new, uploads2 = os.path.join(drill_dir, "restored"), os.path.join(drill_dir, "uploads-restored")
    out = subprocess.run(["bash", "scripts/restore.sh", "pg", bk, wal, new, str(PORT + 1), target.isoformat(), uploads2],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr + open(os.path.join(new, "server.log")).read()[-3000:]
    restore_seconds = time.monotonic() - t_restore
    url2 = out.stdout.strip().splitlines()[-1] + "ce"

    # start the app on the restored cluster
    var2 = os.path.join(drill_dir, "var2")
    os.makedirs(os.path.join(var2, "keys"))
    shutil.copy(os.path.join(keys, "audit_key.key"), os.path.join(var2, "keys", "audit_key.key"))
    os.rename(uploads2, os.path.join(var2, "uploads"))
    app2 = app_for(url2, var2)
    assert app2.test_client().get("/login/").status_code == 200
    with app2.app_context():
        from app.security.scope import Scope
        from app.services import attachments

        names = set(db.session.execute(text("SELECT course_name FROM hour_record")).scalars())
        assert {f"备份前 {i}" for i in range(5)} <= names
        assert {f"备份后 {i}" for i in range(5)} <= names
        assert "误操作之后" not in names
        now_approved = set(db.session.execute(text("SELECT id FROM hour_record WHERE status = 'APPROVED'")).scalars())
        assert now_approved == approved  # the revoke is undone, nothing else lost
        assert db.session.execute(text("SELECT count(*) FROM hour_record WHERE status = 'REVOKED' "
                                       "AND revoke_reason = '误操作：批量撤销'")).scalar() == 0
        assert db.session.execute(text("SELECT count(*) FROM audit_log")).scalar() == audit_rows
        found, path = attachments.open_scoped(att_id, Scope(everything=True))
        with open(path, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == found.sha256
        db.session.remove()
        db.engine.dispose()
    env2 = dict(env, DATABASE_URL=url2, CE_VAR_DIR=var2, UPLOAD_DIR=os.path.join(var2, "uploads"),
                AUDIT_KEY_FILE=os.path.join(var2, "keys", "audit_key.key"))
    v = subprocess.run([sys.executable, "-m", "flask", "--app", "run.py", "ce", "audit", "verify"],
                       cwd=ROOT, env=env2, capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr
    assert f"audit log ok: {audit_rows} rows" in v.stdout
    pg("pg_ctl", "-D", new, "stop", "-m", "fast")
    print(f"\ndrill: backup {backup_seconds:.1f}s, restore+replay {restore_seconds:.1f}s, "
          f"total {time.monotonic() - t0:.1f}s")
