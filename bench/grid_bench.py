"""The hour-record grid at province scale, against stock Flask-AppBuilder (issue 7).

    .venv/bin/python bench/grid_bench.py               # 5 M records, SQLite and PostgreSQL
    .venv/bin/python bench/grid_bench.py --scale 0.1   # 500 000 records, a few minutes

For each database it generates the province once (bench/generate.py; kept under
--dir / in a database named after the scale, reused by later runs), then measures
in the same process, through the Flask test client, the app's HourRecordView and
a stock FAB ModelView over the same table (SQLAInterface(HourRecord), the scope
as stock base filters: FilterStartsWith on region_code for a bureau, FilterEqual
on unit_id for a unit, FAB's own page layout), for bureau_js (province), bureau_nj (南京) and clerk_a
(one unit), page 1 and a deep page, with and without a year + category filter.
The deep page is reached as a user reaches it, from the link on the page before
it (ours carries a keyset anchor there); "deep, typed URL" opens it without one.
Prints the p50 per case: case | stock FAB ms | ours ms | ratio.  Each side gets
WARMUP requests first, then at least --repeat timed requests (more for a fast
page: see p50_pair), stock and ours in alternating blocks.
    .venv/bin/python bench/grid_bench.py --db postgresql --users clerk_a   # one user's cases
"""
import argparse
import datetime
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("AUTH_RATE_LIMITED", "0")
os.environ.setdefault("RATELIMIT_ENABLED", "0")
os.environ.setdefault("CE_VAR_DIR", "/tmp/ce-bench-var")

DEEP_PAGE = 400  # offset 10 000 with 25 rows a page
# Requests before the timed ones, for stock and ours alike: the first requests
# of a page compile its SQL, prepare statements and fill caches.
WARMUP = 5
ROUNDS = 3
BLOCK_SECONDS = 0.5
USERS = [("bureau_js", "province"), ("bureau_nj", "city 3201"), ("clerk_a", "one unit")]


def _stock_view():
    from flask import g
    from flask_appbuilder import ModelView
    from flask_appbuilder.models.filters import BaseFilter
    from flask_appbuilder.models.sqla.filters import FilterEqual, FilterStartsWith
    from flask_appbuilder.models.sqla.interface import SQLAInterface

    from app.models import HourRecord
    from app.models.regions import region_prefix
    from app.views.formatting import hours_text, id_number_for_list, translated
    from app.fab.labels import HOUR_LABELS
    from app.views.hours import HourRecordView

    class StockScope(BaseFilter):
        """The scope the stock way: FAB's own filter classes, per user."""

        name = "stock scope"
        arg_name = None

        def apply(self, query, value):
            user = g.user
            if user.region_code:
                flt = FilterStartsWith("region_code", self.datamodel)
                return flt.apply(query, region_prefix(user.region_code))
            flt = FilterEqual("unit_id", self.datamodel)
            return flt.apply(query, user.unit_id)

    class StockHourRecordView(ModelView):
        datamodel = SQLAInterface(HourRecord)
        list_columns = list(HourRecordView.list_columns)
        # Stock relation drop-downs would list a million persons: leave them out.
        search_columns = ["year", "category", "status", "source", "learning_form", "course_name", "region_code"]
        order_columns = list(HourRecordView.order_columns)
        base_order = ("id", "desc")
        base_filters = [["id", StockScope, None]]
        # FAB's own page layout, not the app's (ce/base.html caches its navbar).
        extra_args = {"base_template": "appbuilder/baselayout.html"}
        label_columns = HOUR_LABELS
        formatters_columns = {
            "person.id_number": id_number_for_list, "category": translated, "learning_form": translated,
            "source": translated, "status": translated, "hours": hours_text,
        }

    return StockHourRecordView


def build_app(url):
    os.environ["DATABASE_URL"] = url
    import config
    from app.security.roles import fab_roles

    roles = fab_roles()
    for role, perms in roles.items():
        if role != "Admin":
            perms.append([r"StockHourRecordView\Z", r"can_(list|show)\Z"])

    class BenchConfig(config.Config):
        SQLALCHEMY_DATABASE_URI = url
        FAB_ROLES = roles
        AUTH_RATE_LIMITED = False
        RATELIMIT_ENABLED = False
        WTF_CSRF_ENABLED = True
        MFA_ROLES = ()  # the second factor is on by default on PostgreSQL; the grid is measured, not the login

    from app import create_app

    app = create_app(BenchConfig)
    with app.app_context():
        app.appbuilder.add_view_no_menu(_stock_view())
    return app


def login(app, username):
    c = app.test_client()
    html = c.get("/login/").get_data(as_text=True)
    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    data = {"username": username, "password": "Demo@2026", "csrf_token": m.group(1) if m else ""}
    c.post("/login/", data=data)
    return c


_PK = re.compile(r'/show/(\d+)')


def row_ids(html):
    seen = []
    for pk in _PK.findall(html):
        if pk not in seen:
            seen.append(pk)
    return seen


def _timed(client, url, n, wall, cpu):
    for _ in range(n):
        t, c = time.perf_counter(), time.process_time()
        resp = client.get(url)
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
        assert resp.status_code == 200, (url, resp.status_code)


def p50_pair(stock, url_s, ours, url_o, repeat):
    """p50 wall time and p50 CPU time of this process (ms), stock and ours.  The
    CPU time shows what a request costs here when other processes compete for
    the cores; on PostgreSQL it leaves out the server's share.

    Both are measured in ROUNDS alternating blocks (stock, ours, stock, ...), so
    that a slow spell of this shared machine falls on both; a block is
    repeat / ROUNDS requests, or as many as fit in BLOCK_SECONDS when that is
    more (a few-millisecond page is measured a few hundred times)."""
    for client, url in ((stock, url_s), (ours, url_o)):
        for _ in range(WARMUP):
            client.get(url)
    samples = {"stock": ([], []), "ours": ([], [])}
    per_block = {}
    for _ in range(ROUNDS):
        for side, client, url in (("stock", stock, url_s), ("ours", ours, url_o)):
            wall, cpu = samples[side]
            if side not in per_block:  # the first block sizes the next ones
                started = time.perf_counter()
                _timed(client, url, -(-repeat // ROUNDS), wall, cpu)
                each = (time.perf_counter() - started) / len(wall)
                per_block[side] = max(-(-repeat // ROUNDS), int(BLOCK_SECONDS / each))
                _timed(client, url, per_block[side] - len(wall), wall, cpu)
            else:
                _timed(client, url, per_block[side], wall, cpu)
    return tuple(statistics.median(values) for side in ("stock", "ours") for values in samples[side])


def link_to_page(html, view, page):
    """The href of the link to `page` on a rendered list page."""
    for href in re.findall(r'href="([^"]+)"', html):
        href = href.replace("&amp;", "&")
        if re.search(rf"[?&]page_{view}={page}(&|$)", href):
            return href
    return None


def measure(app, repeat, year, users=None):
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import CEUser, HourRecord
    from app.security.scope import scope_clause, scope_of

    flt = f"_flt_0_year={year}&_flt_0_category=PRO"
    rows = []
    for username, label in [u for u in USERS if not users or u[0] in users]:
        ours, stock = login(app, username), login(app, username)
        for f_label, f in (("", ""), (f" year={year} PRO", flt)):
            with app.app_context():
                user = db.session.query(CEUser).filter_by(username=username).one()
                q = select(func.count()).select_from(HourRecord).where(scope_clause(HourRecord, scope_of(user)))
                if f:
                    q = q.where(HourRecord.year == year, HourRecord.category == "PRO")
                total = db.session.execute(q).scalar()
                db.session.remove()
            last = max((total - 1) // 25, 0)
            deep = min(DEEP_PAGE, last)
            base_o = "/hourrecordview/list/?" + f
            base_s = "/stockhourrecordview/list/?" + f
            cases = [("page 1", base_o, base_s)]
            if deep > 0:
                prev = ours.get(base_o + f"&page_HourRecordView={deep - 1}").get_data(as_text=True)
                href = link_to_page(prev, "HourRecordView", deep) or base_o + f"&page_HourRecordView={deep}"
                cases.append((f"page {deep + 1} (link)", href, base_s + f"&page_StockHourRecordView={deep}"))
                cases.append((f"page {deep + 1} (typed URL)", base_o + f"&page_HourRecordView={deep}",
                              base_s + f"&page_StockHourRecordView={deep}"))
            for c_label, url_o, url_s in cases:
                same = row_ids(ours.get(url_o).get_data(as_text=True)) == row_ids(stock.get(url_s).get_data(as_text=True))
                ms_s, cpu_s, ms_o, cpu_o = p50_pair(stock, url_s, ours, url_o, repeat)
                rows.append((f"{username} ({label}){f_label}, {c_label}", ms_s, ms_o, same, total, cpu_s, cpu_o))
    return rows


def ensure_data(url, scale, generate):
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            has = inspect(conn).has_table("hour_record") and conn.execute(text("SELECT max(id) FROM hour_record")).scalar()
    except Exception:
        has = None
    finally:
        engine.dispose()
    if has and has > 1000:
        if generate and not _has_accounts(url):
            print(f"adding the province's accounts to {url} ...", flush=True)
            subprocess.run([sys.executable, os.path.join(ROOT, "bench", "generate.py"), "--url", url,
                            "--accounts-only"], check=True)
        return
    if not generate:
        sys.exit(f"{url} holds no generated data (run without --no-generate)")
    print(f"generating the province at scale {scale} into {url} ...", flush=True)
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "generate.py"), "--url", url, "--scale", str(scale)],
                   check=True)


def _has_accounts(url):
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM ab_user")).scalar() > 1000
    finally:
        engine.dispose()


def pg_url(scale):
    server = subprocess.run(["bash", os.path.join(ROOT, "scripts", "pg.sh"), "start"], check=True,
                            capture_output=True, text=True).stdout.strip()
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(server)
    name = "ce_bench_s" + str(scale).replace(".", "_")
    engine = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 5 M hour records")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--dir", default="/tmp/ce-bench", help="where the SQLite province is kept")
    parser.add_argument("--sqlite-url", help="use this SQLite database instead")
    parser.add_argument("--pg-url", help="use this PostgreSQL database instead of scripts/pg.sh's server")
    parser.add_argument("--no-generate", action="store_true")
    parser.add_argument("--users", help="only these users' cases, comma-separated (e.g. clerk_a)")
    args = parser.parse_args()
    year = datetime.date.today().year - 1

    targets = []
    if args.db in ("sqlite", "both"):
        os.makedirs(args.dir, exist_ok=True)
        targets.append(("SQLite", args.sqlite_url or "sqlite:///" + os.path.join(args.dir, f"province-{args.scale}.db")))
    if args.db in ("postgresql", "both"):
        targets.append(("PostgreSQL", args.pg_url or pg_url(args.scale)))

    # Each database in its own process: the app (and its engine) is built per URL.
    if len(targets) > 1:
        for name, url in targets:
            ensure_data(url, args.scale, not args.no_generate)
            flag = "--sqlite-url" if name == "SQLite" else "--pg-url"
            subprocess.run([sys.executable, __file__, "--db", "sqlite" if name == "SQLite" else "postgresql",
                            flag, url, "--repeat", str(args.repeat), "--scale", str(args.scale), "--no-generate"]
                           + (["--users", args.users] if args.users else []), check=True)
        return

    name, url = targets[0]
    ensure_data(url, args.scale, not args.no_generate)
    app = build_app(url)
    with app.app_context():
        from app.services.setup import initialize

        initialize(demo=True)  # pending migrations (indexes) on an older province
    rows = measure(app, args.repeat, year, args.users.split(",") if args.users else None)
    print(f"\n{name}: hour-record grid, p50 of at least {args.repeat} requests (Flask test client), ms")
    width = max(len(r[0]) for r in rows)
    print(f"{'case':{width}} | stock FAB ms | ours ms | ratio | same rows | rows in scope | cpu ms stock / ours")
    print("-" * (width + 80))
    for case, ms_s, ms_o, same, total, cpu_s, cpu_o in rows:
        print(f"{case:{width}} | {ms_s:12.1f} | {ms_o:7.1f} | {ms_s / ms_o:4.1f}x | {'yes' if same else 'NO':9} "
              f"| {total:13} | {cpu_s:7.1f} / {cpu_o:.1f}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average during the run: {load:.1f} on {os.cpu_count()} cores")
    print(f"worst ours: {max(r[2] for r in rows):.1f} ms; smallest ratio: {min(r[1] / r[2] for r in rows):.1f}x")


if __name__ == "__main__":
    main()
