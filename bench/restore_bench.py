"""Backup and point-in-time restore at province size (issue 26).

    .venv/bin/python bench/restore_bench.py --pgdata /tmp/ce-pg-bench --port 54400 --db ce_p5

Runs the project's own scripts/backup.sh and scripts/restore.sh against a
PostgreSQL cluster that holds a generated province (bench/generate.py --scale 5:
5 M persons, 25 M records), as the drill in tests/stack does on a small one:

1. turns on WAL archiving in that cluster (ALTER SYSTEM, restart);
2. base backup (backup.sh), timed;
3. after the backup, writes that must survive (10 000 submitted records approved),
   notes the moment, then makes the mistake (every approved record of 南京 for
   last year revoked) and archives the WAL;
4. restores into a NEW cluster to the moment before the mistake (restore.sh), timed;
5. checks the restored database: persons and records by status equal the counts
   taken just before the mistake; the mistake is not there.

Baseline in the same run: a plain `cp -a` of the cluster's data directory (the
floor any file-level restore pays).  The benchmark changes the source database
(the mistake): run it after the other benchmarks, or on a copy.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sorted((os.path.join("/usr/lib/postgresql", v, "bin") for v in os.listdir("/usr/lib/postgresql")),
             key=lambda p: [int(x) for x in p.split("/")[-2].split(".")])[-1]
AS_PG = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []


def sql(port, db, statement):
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", db, "-Atqc", statement],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def counts(port, db):
    rows = sql(port, db, "SELECT status, count(*) FROM hour_record GROUP BY status ORDER BY status")
    return {"persons": int(sql(port, db, "SELECT count(*) FROM person")),
            **{line.split("|")[0]: int(line.split("|")[1]) for line in rows.splitlines()}}


def du(path):
    return int(subprocess.run(["du", "-sb", path], capture_output=True, text=True, check=True).stdout.split()[0])


def timed(cmd, env=None):
    t = time.monotonic()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    return time.monotonic() - t, out.stdout


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pgdata", required=True, help="data directory of the running cluster")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--work", default="/tmp/ce-restore-bench", help="backups, WAL archive and the new cluster")
    p.add_argument("--new-port", type=int, default=54401)
    p.add_argument("--drop-source", action="store_true",
                   help="after the mistake is archived, stop the source cluster and delete its data directory "
                        "(the server is lost): the restore then needs free disk for one copy, not two")
    p.add_argument("--no-floor", action="store_true",
                   help="skip the bare-copy baseline (it needs the backup's size again in free disk)")
    args = p.parse_args()
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    wal, dest, keys, new = (os.path.join(work, d) for d in ("wal", "backup", "keys", "restored"))
    os.makedirs(wal)
    if AS_PG:
        shutil.chown(work, "postgres")
        shutil.chown(wal, "postgres")

    # 1. continuous archiving on, as docs/deploy-security.md configures production
    sql(args.port, args.db, "ALTER SYSTEM SET archive_mode = on")
    sql(args.port, args.db, f"ALTER SYSTEM SET archive_command = 'test ! -f {wal}/%f && cp %p {wal}/%f'")
    subprocess.run(AS_PG + [f"{BIN}/pg_ctl", "-D", args.pgdata, "restart", "-m", "fast", "-w", "-l", os.path.join(args.pgdata, "server.log")],
                   check=True, capture_output=True)
    before = counts(args.port, args.db)
    size = int(sql(args.port, "postgres", "SELECT sum(pg_database_size(datname)) FROM pg_database"))
    print(f"cluster {args.pgdata}: {size / 2 ** 30:.1f} GiB in all databases; {args.db}: "
          f"{before['persons']:,} persons, {sum(v for k, v in before.items() if k != 'persons'):,} records")

    # 2. base backup with the project's script
    env = dict(os.environ, DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:{args.port}/{args.db}",
               CE_VAR_DIR=os.environ.get("CE_VAR_DIR", "/tmp/ce-bench-var"))
    backup_s, _ = timed(["bash", "scripts/backup.sh", dest, keys], env)
    print(f"backup.sh (pg_basebackup, WAL streamed): {backup_s:.1f} s, {du(dest) / 2 ** 30:.1f} GiB")

    # 3. writes after the backup, the moment, the mistake
    approved = sql(args.port, args.db, "WITH s AS (SELECT id FROM hour_record WHERE status = 'SUBMITTED' "
                   "ORDER BY id LIMIT 10000) UPDATE hour_record h SET status = 'APPROVED', reviewed_at = now() "
                   "FROM s WHERE h.id = s.id RETURNING 1")
    good = counts(args.port, args.db)
    target = sql(args.port, args.db, "SELECT clock_timestamp()")
    time.sleep(1.5)
    t = time.monotonic()
    revoked = sql(args.port, args.db, "WITH r AS (UPDATE hour_record SET status = 'REVOKED', revoke_reason = '误操作' "
                  "WHERE status = 'APPROVED' AND region_code LIKE '3201%' AND year = extract(year FROM now())::int - 1 "
                  "RETURNING 1) SELECT count(*) FROM r")
    mistake_s = time.monotonic() - t
    # the segment holding the mistake (pg_walfile_name of the switch point names it) reaches the archive
    segment = sql(args.port, args.db, "SELECT pg_walfile_name(pg_switch_wal())")
    for _ in range(1200):
        if os.path.exists(os.path.join(wal, segment)):
            break
        time.sleep(0.5)
    else:
        sys.exit(f"WAL segment {segment} was not archived")
    print(f"after the backup: {len(approved.splitlines()):,} records approved; target {target}; "
          f"then the mistake revoked {int(revoked):,} records in {mistake_s:.1f} s; "
          f"WAL archived since the backup: {du(wal) / 2 ** 20:.0f} MiB")

    # baseline: the bare file copy of the backup
    if args.drop_source:
        subprocess.run(AS_PG + [f"{BIN}/pg_ctl", "-D", args.pgdata, "stop", "-m", "fast"], check=True,
                       capture_output=True)
        shutil.rmtree(args.pgdata)
        print(f"source cluster stopped and {args.pgdata} deleted (--drop-source)")
    copy_s = None
    if not args.no_floor:
        floor = os.path.join(work, "copy-floor")
        t = time.monotonic()
        subprocess.run(["cp", "-a", os.path.join(dest, "base"), floor], check=True)
        copy_s = time.monotonic() - t
        shutil.rmtree(floor)

    # 4. point-in-time restore into a new cluster with the project's script
    restore_s, url = timed(["bash", "scripts/restore.sh", "pg", dest, wal, new, str(args.new_port), target], env)
    try:
        t = time.monotonic()
        restored = counts(args.new_port, args.db)
        first_query_s = time.monotonic() - t
    finally:
        subprocess.run(AS_PG + [f"{BIN}/pg_ctl", "-D", new, "stop", "-m", "fast"], capture_output=True)
    same = restored == good
    print(f"restore.sh to the moment before the mistake (copy + WAL replay + promote): {restore_s:.1f} s "
          + (f"(bare copy of the base backup: {copy_s:.1f} s)" if copy_s is not None else "")
          + f"; the counts query on it took {first_query_s:.1f} s")
    print(f"restored = the database just before the mistake: {'yes' if same else 'NO'}")
    if not same:
        print(f"  before the mistake: {good}\n  restored:           {restored}")

    shutil.rmtree(work, ignore_errors=True)
    if args.drop_source:
        sys.exit(0 if same else 1)
    # leave the source cluster as it was (archiving off); the mistake stays in it
    sql(args.port, args.db, "ALTER SYSTEM RESET archive_mode")
    sql(args.port, args.db, "ALTER SYSTEM RESET archive_command")
    subprocess.run(AS_PG + [f"{BIN}/pg_ctl", "-D", args.pgdata, "restart", "-m", "fast", "-w", "-l", os.path.join(args.pgdata, "server.log")],
                   check=True, capture_output=True)
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
