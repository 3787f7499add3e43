"""Backup and point-in-time restore drill on the production stack (issue 26).

The stack's PostgreSQL archives its WAL continuously (scripts/stack.sh).  Through
nginx and the rq workers: write records (an import, a declaration with an
uploaded proof, approved), take a base backup (scripts/backup.sh: database,
uploads, keys apart), write more, then make the mistake -- an administrator's
script revokes every approved record in one bulk transition -- and write one
more record.  Restore (scripts/restore.sh) into a NEW PostgreSQL cluster to the
moment before the mistake, start the app (gunicorn) on it with the keys from the
key backup, and check: every record written before the mistake is there and
approved as it was, nothing written after it, the audit chains verify
(`flask ce audit verify`), the uploaded proofs open through the restored app.

Last in the stack stage (the mistake revokes the stack's approved records).
Ports: STACK_RESTORE_PG_PORT (18084), STACK_RESTORE_APP_PORT (18085)."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.stack.conftest import ROOT, Browser, unit_file
from tests.stack.test_stack import _declare, _import

PG_PORT = int(os.environ.get("STACK_RESTORE_PG_PORT", "18084"))
APP_PORT = int(os.environ.get("STACK_RESTORE_APP_PORT", "18085"))
BIN = sorted((os.path.join("/usr/lib/postgresql", v, "bin") for v in os.listdir("/usr/lib/postgresql")),
             key=lambda p: int(p.split("/")[-2]))[-1]
AS_PG = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []

MISTAKE = """
from app import create_app
from app.extensions import db
from app.models import HourRecord, Status
from app.security.scope import Scope
from app.services.approval import transition
from sqlalchemy import select
app = create_app()
with app.app_context():
    ids = db.session.execute(select(HourRecord.id).where(HourRecord.status == Status.APPROVED)).scalars().all()
    admin = app.appbuilder.sm.find_user(username="admin")
    r = transition(ids, "revoke", user=admin, scope=Scope(everything=True), comment="误操作：批量撤销")
    print(r.done)
"""


def _approve(stack, course):
    rid = stack.scalar("SELECT id FROM hour_record WHERE course_name = :c", c=course)
    clerk = stack.browser("clerk_a")
    assert clerk.post(f"/review/{rid}/decide", {"op": "approve"}, token_from=f"/review/{rid}").status_code == 200
    assert stack.scalar("SELECT status FROM hour_record WHERE id = :r", r=rid) == "APPROVED"
    return rid, stack.scalar("SELECT id FROM attachment WHERE record_id = :r", r=rid)


def _write(stack, tmp_path, seq, tag):
    """An import of 20 rows in an rq worker and an approved declaration with a proof."""
    clerk = stack.browser("clerk_a")
    _analyse, store = _import(stack, clerk, unit_file(str(tmp_path / f"{tag}.xlsx"), 20, seq=seq, course=tag))
    assert clerk.wait_job(f"/imports/job/{store}/status")["state"] == "done"
    course = f"{tag}申报{time.time_ns()}"
    proof = _declare(stack, stack.browser("zhangsan"), course)
    _rid, aid = _approve(stack, course)
    return course, aid, proof


def _run(args, env=None, **kw):
    out = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, **kw)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


@pytest.fixture
def drill_dir():
    """A folder the postgres user can reach (pytest's tmp_path is private to root)."""
    d = tempfile.mkdtemp(prefix="ce-restore-drill-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_point_in_time_restore_into_a_new_cluster(stack, tmp_path, drill_dir):
    env = dict(os.environ, **stack.env)
    env.pop("AUDIT_KEY", None)
    t0 = time.process_time(), time.monotonic()
    # 1. records before the backup
    course1, aid1, proof1 = _write(stack, tmp_path, 711, "备份前课程")
    # 2. the base backup (the keys go elsewhere)
    bk, keys = os.path.join(drill_dir, "backup"), str(tmp_path / "keys-apart")
    _run(["bash", "scripts/backup.sh", bk, keys], env=env)
    assert os.path.exists(os.path.join(keys, "audit_key.key"))
    assert not any(n.endswith(".key") for _d, _s, files in os.walk(bk) for n in files)
    # 3. more records after it
    course2, aid2, proof2 = _write(stack, tmp_path, 712, "备份后课程")
    approved = {r[0] for r in stack.rows("SELECT id FROM hour_record WHERE status = 'APPROVED'")}
    records = stack.scalar("SELECT count(*) FROM hour_record")
    audit_rows = stack.scalar("SELECT count(*) FROM audit_log")
    target = stack.scalar("SELECT clock_timestamp()")
    time.sleep(1.2)
    # 4. the mistake, and a record after it
    done = int(_run([sys.executable, "-c", MISTAKE], env=env).strip().splitlines()[-1])
    assert done == len(approved) > 100
    course3 = f"误操作之后{time.time_ns()}"
    _declare(stack, stack.browser("zhangsan"), course3)
    assert stack.scalar("SELECT count(*) FROM hour_record WHERE status = 'APPROVED'") == 0
    current = stack.scalar("SELECT pg_walfile_name(pg_current_wal_lsn())")
    stack.scalar("SELECT pg_switch_wal()")
    for _ in range(240):  # the segment holding the mistake reaches the archive
        last = stack.scalar("SELECT last_archived_wal FROM pg_stat_archiver")
        if last and last[:24] >= current[:24]:
            break
        time.sleep(0.25)
    else:
        raise AssertionError(f"WAL {current} not archived (last {last})")

    # 5. restore into a NEW cluster, to the moment before the mistake
    new = os.path.join(drill_dir, "restored-pg")
    var2 = tmp_path / "var2"
    (var2 / "keys").mkdir(parents=True)
    shutil.copy(os.path.join(keys, "audit_key.key"), var2 / "keys" / "audit_key.key")
    shutil.copy(os.path.join(keys, "data.key"), var2 / "keys" / "data.key")  # SM4 / blind-index keys
    uploads2 = str(var2 / "uploads")
    r0 = time.monotonic()
    url = _run(["bash", "scripts/restore.sh", "pg", bk, env["WAL_ARCHIVE_DIR"], new, str(PG_PORT),
                target.isoformat(), uploads2, env["UPLOAD_DIR"]]).strip().splitlines()[-1] + "ce_stack"
    restore_seconds = time.monotonic() - r0
    gunicorn = None
    try:
        # 6. the app on the restored cluster: migrations are current, gunicorn serves it
        env2 = {k: v for k, v in env.items() if k not in ("REDIS_URL", "AUDIT_KEY")}
        env2.update(DATABASE_URL=url, CE_VAR_DIR=str(var2), UPLOAD_DIR=uploads2,
                    AUDIT_KEY_FILE=str(var2 / "keys" / "audit_key.key"), DATA_KEY_FILE=str(var2 / "keys" / "data.key"),
                    BIND=f"127.0.0.1:{APP_PORT}",
                    WEB_CONCURRENCY="1", GUNICORN_THREADS="2", DB_POOL_SIZE="2", GUNICORN_ACCESS_LOG="-",
                    RATELIMIT_STORAGE_URI="memory://", PUBLIC_BASE_URL=f"http://127.0.0.1:{APP_PORT}",
                    TRUSTED_PROXY_HOPS="0")
        _run([sys.executable, "-m", "flask", "--app", "run.py", "db", "upgrade"], env=env2)
        gunicorn = subprocess.Popen([os.path.join(ROOT, ".venv", "bin", "gunicorn"), "-c", "gunicorn.conf.py",
                                     "--no-control-socket", "run:app"], cwd=ROOT, env=env2,
                                    stdout=subprocess.DEVNULL, stderr=open(tmp_path / "gunicorn2.log", "w"))
        base = f"http://127.0.0.1:{APP_PORT}"
        for _ in range(150):
            try:
                if requests.get(base + "/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        eng = create_engine(url)
        with eng.connect() as c:
            q = lambda sql, **p: c.execute(text(sql), p)  # noqa: E731
            names = set(q("SELECT course_name FROM hour_record").scalars())
            assert course1 in names and course2 in names and course3 not in names
            assert q("SELECT count(*) FROM hour_record WHERE course_name LIKE '备份前课程711-%'").scalar() == 20
            assert q("SELECT count(*) FROM hour_record WHERE course_name LIKE '备份后课程712-%'").scalar() == 20
            assert q("SELECT count(*) FROM hour_record").scalar() == records
            assert set(q("SELECT id FROM hour_record WHERE status = 'APPROVED'").scalars()) == approved
            assert q("SELECT count(*) FROM hour_record WHERE revoke_reason = '误操作：批量撤销'").scalar() == 0
            assert q("SELECT count(*) FROM audit_log").scalar() == audit_rows
        eng.dispose()
        # the uploaded proofs open through the restored app, byte for byte
        clerk = Browser(base)
        resp = clerk.login("clerk_a")
        assert resp.status_code == 200 and "/login" not in resp.url
        assert clerk.get(f"/proof/{aid1}").content == proof1  # from the backup's uploads
        assert clerk.get(f"/proof/{aid2}").content == proof2  # uploaded after it: from the surviving folder
        # the audit chains verify on the restored database, with the key from the key backup
        out = subprocess.run([sys.executable, "-m", "flask", "--app", "run.py", "ce", "audit", "verify"],
                             cwd=ROOT, env=env2, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "audit log ok" in out.stdout
    finally:
        if gunicorn is not None:
            gunicorn.send_signal(signal.SIGTERM)
            try:
                gunicorn.wait(30)
            except subprocess.TimeoutExpired:
                gunicorn.kill()
        subprocess.run(AS_PG + [os.path.join(BIN, "pg_ctl"), "-D", new, "stop", "-m", "fast"],
                       capture_output=True, timeout=120)
    print(f"\nrestore drill: restore + WAL replay {restore_seconds:.1f} s wall, drill "
          f"{time.monotonic() - t0[1]:.0f} s wall, test process CPU {time.process_time() - t0[0]:.1f} s")
