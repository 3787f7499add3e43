"""Dashboard and national feed at province scale (issue 8).

    .venv/bin/python bench/dashboard_bench.py                  # scale 0.05: 50k persons, 250k records, SQLite
    .venv/bin/python bench/dashboard_bench.py --db postgresql  # the same on scripts/pg.sh's server
    .venv/bin/python bench/dashboard_bench.py --scale 0.2      # 200k persons, 1M records

Generates the province once with bench/generate.py (kept under --dir or in a
PostgreSQL database named after the scale), then measures in one process, with the
baseline next to each figure:

* dashboard summary (persons meeting the requirement, groups, hours by category and
  source) for bureau_js (province) / bureau_nj (city) / clerk_a (unit) — read from
  the yearly totals the triggers keep (ours, issue 19) against the obvious
  per-person loop over the records (baseline; timed on up to --sample persons and
  extrapolated to the scope) and against the set-based aggregate over hour_record
  that answered before issue 19 (`from_records=True`, "aggregate" column); the
  check compares every figure of the two;
* the first page of the persons not meeting it, ours against the aggregate (same rows?);
* the national feed: bureau_nj pulls all its records in pages of 1000 through the
  (updated_at, id) cursor (ours) against OFFSET paging in the same order (baseline,
  as FAB's list API pages), first and last page;
* the national-layout CSV of 南京 for one year (rows per second).
"""
import argparse
import datetime
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("CE_VAR_DIR", "/tmp/ce-bench-var")


def ensure_data(url, scale):
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            has = inspect(conn).has_table("hour_record") and conn.execute(
                text("SELECT count(*) FROM hour_record")).scalar()
    except Exception:
        has = None
    finally:
        engine.dispose()
    if has and has > 5000:
        return
    print(f"generating the province at scale {scale} into {url} ...", flush=True)
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "generate.py"), "--url", url,
                    "--scale", str(scale)], check=True)


def pg_url(scale):
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = subprocess.run(["bash", os.path.join(ROOT, "scripts", "pg.sh"), "start"], check=True,
                            capture_output=True, text=True).stdout.strip()
    base = make_url(server)
    name = "ce_bench_dash_s" + str(scale).replace(".", "_")
    engine = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def _year_totals_from_records(person_id, year):
    """One person's year summed from the records (the per-person baseline: what
    requirement.year_totals did before the totals existed)."""
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import Category, HourRecord
    from app.services import requirement

    rows = dict(db.session.execute(
        select(HourRecord.category, func.sum(HourRecord.hours))
        .where(HourRecord.person_id == person_id, HourRecord.year == year,
               HourRecord.status.in_(requirement.COUNTING_STATUSES))
        .group_by(HourRecord.category)
    ).all())
    return requirement.totals_from(year, rows.get(Category.PRO), rows.get(Category.PUB))


def _database_size(db):
    from sqlalchemy import text

    if db.engine.dialect.name == "postgresql":
        return db.session.execute(text("SELECT pg_database_size(current_database())")).scalar()
    path = db.engine.url.database
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


CPU = {}  # the last timed call's median CPU ms of this process (the load of a shared machine aside)


def timed(fn, repeat):
    times, cpu, result = [], [], None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        result = fn()
        times.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    CPU["last"] = statistics.median(cpu)
    return statistics.median(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=0.05, help="1.0 = 1M persons, 5M records")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--dir", default="/tmp/ce-bench-dash")
    parser.add_argument("--url", help="use this database (already generated)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sample", type=int, default=1000, help="persons timed for the per-person baseline")
    parser.add_argument("--dashboard-only", action="store_true", help="skip the national feed and CSV")
    args = parser.parse_args()
    if args.url:
        url = args.url
    elif args.db == "sqlite":
        os.makedirs(args.dir, exist_ok=True)
        url = "sqlite:///" + os.path.join(args.dir, f"province-{args.scale}.db")
    else:
        url = pg_url(args.scale)
    ensure_data(url, args.scale)
    os.environ["DATABASE_URL"] = url

    from sqlalchemy import func, select

    from app import create_app
    from app.extensions import db
    from app.models import HourRecord, Person, Unit
    from app.models.regions import region_range
    from app.security.scope import scope_clause, scope_of
    from app.services import dashboard, national, requirement

    app = create_app()
    app.config["NATIONAL_FEED_LAG_SECONDS"] = 0
    year = datetime.date.today().year - 1
    with app.test_request_context():
        n_records = db.session.execute(select(func.count(HourRecord.id))).scalar()
        n_persons = db.session.execute(select(func.count(Person.id))).scalar()
        print(f"\n{db.engine.dialect.name}: {n_persons} persons, {n_records} hour records; year {year}; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
        size = _database_size(db)
        print(f"database size: {size / 2 ** 30:.2f} GiB\n")
        print("ours cpu: this process's CPU time (on SQLite the query runs in it; on PostgreSQL the server's is not)")
        print(f"{'case':44} | {'baseline ms':>12} | {'aggregate ms':>12} | {'ours ms':>9} | {'ours cpu':>8} | ratio | check")
        print("-" * 118)

        def row(case, base, ours, check="", aggregate=None, cpu=None):
            ref = aggregate if aggregate is not None else base
            ratio = f"{ref / ours:5.1f}x" if ref and ours else "     "
            base_s = f"{base:12.1f}" if base is not None else f"{'-':>12}"
            agg_s = f"{aggregate:12.1f}" if aggregate is not None else f"{'-':>12}"
            cpu_s = f"{cpu:8.1f}" if cpu is not None else f"{'-':>8}"
            print(f"{case:44} | {base_s} | {agg_s} | {ours:9.1f} | {cpu_s} | {ratio} | {check}", flush=True)

        def figures(s):
            return ([(g.key, g.persons, g.met, g.professional, g.public) for g in s.groups],
                    s.by_category, s.by_source)

        sm = app.appbuilder.sm
        failures = []
        for username in ("bureau_js", "bureau_nj", "clerk_a"):
            scope = scope_of(sm.find_user(username=username))
            ms, s = timed(lambda: dashboard.summary(year, scope=scope), args.repeat)
            ours_cpu = CPU["last"]
            agg_ms, s_agg = timed(lambda: dashboard.summary(year, scope=scope, from_records=True),
                                  max(1, min(args.repeat, 3)))
            ids = db.session.execute(
                select(Person.id).join(Unit, Unit.id == Person.unit_id)
                .where(scope_clause(Person, scope), scope_clause(Unit, scope))
            ).scalars().all()
            sample = ids[: args.sample]
            t = time.perf_counter()
            met_sample = sum(_year_totals_from_records(pid, year).met for pid in sample)
            per_person = (time.perf_counter() - t) * 1000 / max(len(sample), 1)
            baseline = per_person * len(ids)
            # Checks: the sample's met count equals the dashboard's on the same persons,
            # and every figure equals the aggregate's.
            met_sql = sum(
                1 for r in dashboard.unmet_persons(year, scope=scope, page_size=10 ** 7)[1]
                if r.person_id in set(sample)
            )
            same = (len(sample) - met_sql) == met_sample
            agree = figures(s) == figures(s_agg)
            row(f"summary {username} ({s.persons} persons, {len(s.groups)} groups)", baseline, ms,
                f"met {s.met}; sample of {len(sample)} agrees: {'yes' if same else 'NO'}; "
                f"= aggregate: {'yes' if agree else 'NO'}", aggregate=agg_ms, cpu=ours_cpu)
            if not (same and agree):
                failures.append(f"dashboard sample {username}")
            ms, (count, rows) = timed(lambda: dashboard.unmet_persons(year, scope=scope, page_size=50),
                                      args.repeat)
            ours_cpu = CPU["last"]
            agg_ms, (count_agg, rows_agg) = timed(
                lambda: dashboard.unmet_persons(year, scope=scope, page_size=50, from_records=True),
                max(1, min(args.repeat, 3)))
            unmet_same = (count, rows) == (count_agg, rows_agg)
            if not unmet_same:
                failures.append(f"unmet page {username}")
            row(f"unmet page 1 {username} ({count} persons)", None, ms,
                f"= aggregate: {'yes' if unmet_same else 'NO'}", aggregate=agg_ms, cpu=ours_cpu)

        if args.dashboard_only:
            if failures:
                print("FAILED: " + "; ".join(failures))
                sys.exit(1)
            return
        # The feed: bureau_nj pulls everything in pages of 1000.  A full pull from an
        # empty cursor must return exactly the records in scope that are approved or
        # once were (docs/national-api.md), each once: checked by id, fails the run.
        scope = scope_of(sm.find_user(username="bureau_nj"))
        page_ms, cursor, ids = [], None, []
        t_all = time.perf_counter()
        while True:
            t = time.perf_counter()
            page = national.changes(cursor=cursor, page_size=1000, scope=scope)
            page_ms.append((time.perf_counter() - t) * 1000)
            ids.extend(item["id"] for item in page.items)
            cursor = page.next_cursor
            db.session.expunge_all()
            if not page.has_more:
                break
        total_ms = (time.perf_counter() - t_all) * 1000
        H = HourRecord
        expected = set(db.session.execute(
            select(H.id).where(scope_clause(H, scope), H.status.in_(national.ONCE_APPROVED))).scalars())
        in_scope = len(expected)
        got = set(ids)
        repeats = len(ids) - len(got)
        future = db.session.execute(select(func.count(H.id)).where(
            scope_clause(H, scope), H.status.in_(national.ONCE_APPROVED), H.updated_at > page.horizon)).scalar()
        exact = got == expected and repeats == 0
        base_q = (select(H.id).where(region_range(H.region_code, "3201"))
                  .order_by(H.updated_at, H.id).limit(1000))
        first_off, _ = timed(lambda: db.session.execute(base_q.offset(0)).all(), args.repeat)
        last_off, _ = timed(lambda: db.session.execute(base_q.offset(max(in_scope - 1000, 0))).all(), args.repeat)
        row("feed bureau_nj page 1 (1000 rows, serialised)", first_off, page_ms[0],
            "baseline: ids only, OFFSET")
        row(f"feed bureau_nj last page (offset {max(in_scope - 1000, 0)})", last_off, page_ms[-1],
            "baseline: ids only, OFFSET")
        row(f"feed bureau_nj full pull ({len(page_ms)} pages)", None, total_ms,
            f"{len(ids)} rows = {in_scope} approved or once approved in scope: {'yes' if exact else 'NO'}")
        if not exact:
            print(f"FULL PULL WRONG: {len(expected - got)} missing ({future} stamped after the horizon), "
                  f"{len(got - expected)} never approved or not in scope, {repeats} repeated",
                  file=sys.stderr, flush=True)
            failures.append("feed full pull")

        t = time.perf_counter()
        sum(1 for _ in national.iter_csv(national.export_rows("320100", year, scope=scope)))
        ms = (time.perf_counter() - t) * 1000
        rows_exported = national.count_export("320100", year, scope=scope)
        row(f"national CSV 320100 {year} ({rows_exported} rows)", None, ms,
            f"{rows_exported / (ms / 1000):.0f} rows/s")
    if failures:
        print("FAILED checks: " + ", ".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
