"""CPU cost per request kind of the deadline-day mix (issue 18).

    .venv/bin/python bench/request_cpu.py --url postgresql+psycopg://.../db          # 30 of each kind, in process
    .venv/bin/python bench/request_cpu.py --url ... -n 50 --profile my_hours --queries   # + cProfile, SQL per request
    STACK_DIR=/tmp/ce-stack .venv/bin/python bench/request_cpu.py --http http://127.0.0.1:18080   # a running stack
    .venv/bin/python bench/request_cpu.py --url ... --app-root ../main                 # another checkout (before)

In process (default): the database is a demo database (`bench/generate.py --url ...
--scale 0.01` makes one with a small province around the demo accounts); Flask's
test client calls the app (no HTTP server, no proxy), so `time.process_time()` of
this process is the application's CPU per request (WSGI, Flask, FAB, SQLAlchemy,
templates), reported as the median request; the PostgreSQL side is the CPU of the
cluster's processes over the same requests (psutil, the server being on this
machine).  With --http: the CPU of a stack's processes (scripts/stack.sh; nginx +
gunicorn, PostgreSQL, rq + Redis) over each kind's requests, sent one at a time
through the proxy.  Both are CPU times, not wall times: valid on a machine shared
with other work.  cProfile runs on CPU time too (a wall-clock profile would show
the waits for PostgreSQL as the app's cost).

Each kind of bench/load.py's mix is replayed N times after a warm-up, redirects
followed (as a browser and locust do), in the order a session goes: /health (the
baseline, same run), the login page and login (one person), then 我的学时, the
declaration form and submitting it with a PDF proof (applicant zhangsan), 待核准申报,
a review page and approving (clerk_a, the declarations just submitted), the grid
filtered by year and category and the dashboard (bureau_nj), and a job's status.
Prints per kind: CPU ms of the app (or web) and of PostgreSQL, the total, the
multiple of /health's, and the mix's weighted average per HTTP request (a post
and the page its redirect leads to are two, as bench/load.py counts them) with
what it means for a dedicated host, and last the share of bench/load.py's
/health ceiling the mix should reach on a quiet host with all CPU busy
(--ceiling-ms, --http-ms, --client-ms, --jobs-ms: the per-request costs this
estimate adds, from the quiet run).  The replayed requests' CPU grows on a
busy machine (caches, shared cores): compare before / after in one run
(--app-root) and take the estimate from the least loaded round.
"""
import argparse
import cProfile
import datetime
import io
import os
import pstats
import re
import statistics
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
for _i, _a in enumerate(sys.argv):  # --app-root DIR: measure another checkout's app (before / after)
    if _a == "--app-root" and _i + 1 < len(sys.argv):
        sys.path.insert(0, os.path.abspath(sys.argv[_i + 1]))
PW = "Demo@2026"
QUERIES = []  # statements the app sent (in process), for queries per request
_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf-token" content="([^"]+)"')


def _token(html):
    m = _CSRF.search(html)
    return next(g for g in m.groups() if g) if m else ""


def _proof():
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.drawString(72, 720, "proof")
    c.save()
    return buf.getvalue()


class _HttpResponse:
    """requests' response as far as this bench reads Flask's test responses."""

    def __init__(self, resp):
        from urllib.parse import urlsplit

        self._resp = resp
        self.status_code = resp.status_code
        self.headers = resp.headers
        self.request = type("R", (), {"path": urlsplit(resp.url).path})()
        self.history = resp.history

    def get_data(self, as_text=False):
        return self._resp.text if as_text else self._resp.content


class HttpClient:
    """The test client's get/post over HTTP, for a running stack (--http)."""

    def __init__(self, base):
        import requests

        self.base = base.rstrip("/")
        self.session = requests.Session()

    def get(self, path, follow_redirects=True):
        return _HttpResponse(self.session.get(self.base + path, allow_redirects=follow_redirects))

    def post(self, path, data=None, content_type=None, follow_redirects=True):
        data = dict(data or {})
        files = {k: (v[1], v[0].read(), v[2]) for k, v in data.items() if isinstance(v, tuple)}
        for k in files:
            data.pop(k)
        return _HttpResponse(self.session.post(self.base + path, data=data, files=files or None,
                                               allow_redirects=follow_redirects))


class StackCpu:
    """CPU seconds of a stack's processes by group (bench/stackcpu.py)."""

    def __init__(self, stack_dir):
        self.stack_dir = stack_dir

    def __call__(self):
        from bench.stackcpu import stack_cpu

        return stack_cpu(self.stack_dir, by_group=True)


class PgCpu:
    """CPU seconds of the PostgreSQL cluster's processes (postmaster and children)."""

    def __init__(self, engine):
        import psutil

        from sqlalchemy import text

        self.root = None
        if engine.dialect.name != "postgresql":
            return
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        try:
            self.root = psutil.Process(pid).parent()
        except psutil.Error:
            self.root = None

    def __call__(self):
        if self.root is None:
            return 0.0
        import psutil

        total = 0.0
        for p in [self.root] + self.root.children(recursive=True):
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total


def _package(path):
    """'jinja2', 'sqlalchemy', 'app/views', 'templates' ... of a profiled function's file."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0]
    if path.endswith(".html"):
        return "templates (compiled)"
    if "/app/" in path:
        return "app/" + path.split("/app/", 1)[1].split("/", 1)[0]
    if path.startswith("~") or path.startswith("<"):
        return "builtins"
    return "stdlib/" + os.path.basename(path)


# HTTP requests the server answered for each kind (1 + the redirects followed), as measured.
HOPS = {}


def mix_weights(pages_per_login):
    """Requests of each kind per 10 tasks of bench/load.py's people (applicants 6 :
    reviewers 2 : bureau 2, each person's task weights), plus a login page and a
    login per `pages_per_login` pages of an applicant (staff log in once a day).
    Exports (jobs) are left out but for the polling of their status."""
    w = {
        "my_hours": 6 * 4 / 5, "declare_form": 6 / 5, "declare_submit": 6 / 5,
        "review_todo": 2 * 3 / 4 + 2 / 4, "review_page": 2 / 4, "approve": 2 / 4,
        "grid_filter": 2 * 3 / 6, "dashboard": 2 * 2 / 6, "job_status": 2 / 6 * 4,
    }
    applicant_pages = w["my_hours"] + w["declare_form"] + w["declare_submit"]
    w["login_page"] = w["login"] = w["logout"] = applicant_pages / pages_per_login if pages_per_login else 0
    return w


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=os.environ.get("DATABASE_URL"), help="the demo database (DATABASE_URL)")
    ap.add_argument("-n", type=int, default=30, help="requests of each kind (default 30)")
    ap.add_argument("--profile", action="append", default=[], metavar="KIND",
                    help="cProfile this kind (repeatable; 'all' for every kind) and print the top functions")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--ceiling-ms", type=float, default=1.97,
                    help="CPU of the whole host per /health request at bench/load.py's ceiling (default 1.97: "
                         "2 cores / 1 015 req/s, the quiet-machine run in docs/deploy-stack.md)")
    ap.add_argument("--http-ms", type=float, default=2.0,
                    help="nginx + gunicorn per request beyond the app (default 2.0, measured with --http)")
    ap.add_argument("--client-ms", type=float, default=2.5,
                    help="locust per mix request on the same host (default 2.5, bench/load.py's figure)")
    ap.add_argument("--jobs-ms", type=float, default=2.5,
                    help="rq workers and Redis per mix request: the mix's exports and import, not replayed here "
                         "(default 2.5, bench/load.py's jobs figure)")
    ap.add_argument("--dump", metavar="DIR", help="also save each profile as DIR/KIND.pstats (for pstats' callers)")
    ap.add_argument("--pages-per-login", type=int, default=8,
                    help="pages an applicant opens per login, for the mix's average (default 8, as bench/load.py)")
    ap.add_argument("--http", metavar="URL",
                    help="measure a running stack (scripts/stack.sh) through its proxy instead of in process: "
                         "the CPU of the stack's processes per request ($STACK_DIR, default /tmp/ce-stack)")
    ap.add_argument("--queries", action="count", default=0,
                    help="print the statements per request of each kind (-qq: and one request's statements)")
    ap.add_argument("--app-root", help="import the app from this checkout (compare before / after in one run)")
    ap.add_argument("--only", help="comma-separated kinds to run (health always runs)")
    args = ap.parse_args(argv)
    if args.http:
        stack_dir = os.environ.get("STACK_DIR", "/tmp/ce-stack")
        with open(os.path.join(stack_dir, "stack.env")) as fh:
            args.url = dict(line.rstrip("\n").split("=", 1) for line in fh if "=" in line)["DATABASE_URL"]
        return run(args, stack_dir)
    return run(args, None)


def run(args, stack_dir):
    if not args.url:
        ap.error("--url or DATABASE_URL: a demo database (bench/generate.py makes one)")
    os.environ["DATABASE_URL"] = args.url
    os.environ.setdefault("DEMO", "0")
    # As on the stack (scripts/stack.sh, STACK_MFA_ROLES): no second factor, else the
    # bureau's pages would measure the redirect to the enrolment page.
    os.environ.setdefault("MFA_ROLES", "")
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("CE_VAR_DIR", "/tmp/ce-request-cpu")
    os.environ.setdefault("UPLOAD_DIR", os.path.join(os.environ["CE_VAR_DIR"], "uploads"))
    # One connection: the requests run one after the other.
    os.environ.setdefault("DB_POOL_SIZE", "2")
    os.environ.setdefault("DB_MAX_OVERFLOW", "0")

    from sqlalchemy import create_engine, text

    engine = create_engine(args.url)
    if stack_dir:
        stack_cpu = StackCpu(stack_dir)

        def new_client():
            return HttpClient(args.http)
    else:
        from app import create_app

        app = create_app()
        new_client = app.test_client
        pg_cpu = PgCpu(engine)
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        @event.listens_for(Engine, "before_cursor_execute")
        def _count(conn, cursor, statement, parameters, context, executemany):
            QUERIES.append(statement)
    year = datetime.date.today().year
    proof = _proof()
    pending = []
    job_ids = []

    def client_for(username):
        c = new_client()
        page = c.get("/login/").get_data(as_text=True)
        resp = c.post("/login/", data={"username": username, "password": PW, "csrf_token": _token(page)},
                      follow_redirects=True)
        assert "/login" not in resp.request.path, f"{username}: login refused"
        return c

    anon = new_client()
    applicant = client_for("zhangsan")
    reviewer = client_for("clerk_a")
    bureau = client_for("bureau_nj")
    login_client = new_client()
    login_token = [_token(login_client.get("/login/").get_data(as_text=True))]
    day = max(datetime.date(year, 1, 1), datetime.date.today() - datetime.timedelta(days=5))
    declare_token = _token(applicant.get("/declare/new").get_data(as_text=True))

    def health():
        return anon.get("/health")

    def login_page():
        return anon.get("/login/")

    def login():
        resp = login_client.post("/login/", data={"username": "zhangsan", "password": PW,
                                                  "csrf_token": login_token[0]}, follow_redirects=True)
        assert "/login" not in resp.request.path, "login refused"
        return resp

    def after_login():  # signed out again, a fresh login page (not measured)
        login_client.get("/logout/")
        login_token[0] = _token(login_client.get("/login/").get_data(as_text=True))

    logout_client = [client_for("zhangsan")]

    def logout():  # the end of an applicant's session: /logout/ and the pages it redirects to
        resp = logout_client[0].get("/logout/", follow_redirects=True)
        assert "/login" in resp.request.path, "not signed out"
        return resp

    def after_logout():  # signed in again (not measured)
        logout_client[0] = client_for("zhangsan")

    def my_hours():
        # Last year: a year of the demo person's records (this bench declares in the current one).
        return applicant.get(f"/declare/mine?year={year - 1}")

    def declare_form():
        return applicant.get("/declare/new")

    def declare_submit():
        data = {"year": str(year), "category": "PRO", "learning_form": "TRAIN_ONSITE",
                "course_name": f"CPU申报{time.time_ns()}", "organizer_name": "东南大学继续教育学院",
                "start_date": day.isoformat(), "end_date": day.isoformat(), "hours": "8", "op": "submit",
                "csrf_token": declare_token, "proof": (io.BytesIO(proof), "证明.pdf", "application/pdf")}
        resp = applicant.post("/declare/new", data=data, content_type="multipart/form-data",
                              follow_redirects=True)
        assert "申报已提交" in resp.get_data(as_text=True), "declaration not submitted"
        return resp

    def review_todo():
        resp = reviewer.get("/review/todo/list/")
        if not pending:
            pending.extend(re.findall(r'/review/(?:todo/show/)?(\d+)"', resp.get_data(as_text=True)))
        return resp

    review_state = {}

    def review_page():
        rid = pending[len(review_state) % len(pending)]
        resp = reviewer.get(f"/review/{rid}")
        review_state[rid] = _token(resp.get_data(as_text=True))
        return resp

    def approve():
        rid, token = review_state.popitem()
        resp = reviewer.post(f"/review/{rid}/decide", data={"op": "approve", "csrf_token": token},
                             follow_redirects=True)
        assert resp.status_code == 200, resp.status_code
        return resp

    flt = [0]

    def grid_filter():
        flt[0] += 1
        y = [year - 2, year - 1, year][flt[0] % 3]
        cat = ["PRO", "PUB"][flt[0] % 2]
        return bureau.get(f"/hourrecordview/list/?_flt_0_year={y}&_flt_0_category={cat}")

    def dashboard():
        return bureau.get(f"/dashboard/?year={year - 1}")

    def job_status():
        return bureau.get(f"/imports/job/{job_ids[0]}/status")

    kinds = [("health", health, None), ("login_page", login_page, None), ("login", login, after_login),
             ("logout", logout, after_logout),
             ("my_hours", my_hours, None), ("declare_form", declare_form, None),
             ("declare_submit", declare_submit, None), ("review_todo", review_todo, None),
             ("review_page", review_page, None), ("approve", approve, None),
             ("grid_filter", grid_filter, None), ("dashboard", dashboard, None), ("job_status", job_status, None)]
    if args.only:
        wanted = set(args.only.split(",")) | {"health"}
        kinds = [k for k in kinds if k[0] in wanted]
    # A finished job of bureau_nj for job_status.
    with engine.begin() as conn:
        # This bench's declarations of earlier runs go: 我的学时 of the current year
        # (shown after each submission) stays the size a real person's is.
        conn.execute(text("DELETE FROM attachment WHERE record_id IN "
                          "(SELECT id FROM hour_record WHERE course_name LIKE 'CPU申报%')"))
        conn.execute(text("DELETE FROM hour_record WHERE course_name LIKE 'CPU申报%'"))
        row = conn.execute(text(
            "SELECT j.id FROM ce_job j JOIN ab_user u ON u.id = j.user_id WHERE u.username = 'bureau_nj' "
            "ORDER BY j.id DESC LIMIT 1")).first()
        if not row:  # a finished job to poll, as the export pages do
            row = conn.execute(text(
                "INSERT INTO ce_job (kind, state, progress, message, user_id, created_at, finished_at) "
                "SELECT 'export', 'done', 100, '', id, now(), now() FROM ab_user WHERE username = 'bureau_nj' "
                "RETURNING id")).first()
    if row:
        job_ids.append(row[0])
    if not job_ids:
        kinds = [k for k in kinds if k[0] != "job_status"]

    # Enough pending declarations for the review pages and approvals.
    if any(k[0] == "approve" for k in kinds) and not any(k[0] == "declare_submit" for k in kinds):
        for _ in range(args.n + 3):
            declare_submit()

    results = []
    profiles = {}
    for name, fn, after in kinds:
        # Warm-up: templates compiled, caches filled, as in a long-running worker.
        for _ in range(3 if name not in ("approve", "review_page", "declare_submit") else 1):
            if name == "approve":
                review_page()
            fn()
            if after:
                after()
        if name == "review_page":
            review_state.clear()
        prof = cProfile.Profile(time.process_time) if (name in args.profile or "all" in args.profile) else None
        times = []
        del QUERIES[:]
        # The server side (PostgreSQL, or the stack's processes) and the statements
        # are counted around the measured request only (not around the set-up of
        # the next one: a review page before an approval, a login after a logout).
        other = {} if stack_dir else 0.0
        statements, first = 0, None
        for _ in range(args.n):
            if name == "approve":
                review_page()
            x0 = stack_cpu() if stack_dir else pg_cpu()
            q0 = len(QUERIES)
            c0 = time.process_time()
            if prof:
                prof.enable()
            resp = fn()
            if prof:
                prof.disable()
            times.append(time.process_time() - c0)
            statements += len(QUERIES) - q0
            if first is None:
                first = QUERIES[q0:]
            x1 = stack_cpu() if stack_dir else pg_cpu()
            if stack_dir:
                for k in x1:
                    other[k] = other.get(k, 0.0) + x1[k] - x0[k]
            else:
                other += x1 - x0
            # HTTP requests the server answered: this one and the redirects followed.
            HOPS[name] = 1 + len(getattr(resp, "history", None) or ())
            if after:
                after()
        if stack_dir:
            # The stack's processes by group (mean per request).
            used = {k: 1000 * v / args.n for k, v in other.items()}
            results.append((name, used["web"], used["web"], used["pg"], used))
        else:
            # The median request: robust against a busy machine's stalls (CPU time also
            # grows when other processes thrash the caches); the mean for comparison.
            results.append((name, 1000 * statistics.median(times), 1000 * statistics.fmean(times),
                            max(0.0, 1000 * other / args.n), None))
            if args.queries:
                print(f"  {name}: {statements / args.n:.1f} statements per request", file=sys.stderr)
                if args.queries > 1:
                    for q in first or ():
                        print("     ", " ".join(q.split())[:200], file=sys.stderr)
        if prof:
            profiles[name] = prof
        print(f"  {name}: done", file=sys.stderr, flush=True)

    base = results[0][1] or 1e-9
    if stack_dir:
        print(f"CPU per request ({args.n} of each, through {args.http}: the stack's processes, mean; "
              f"web = nginx + gunicorn, jobs = rq + Redis)")
        print(f"{'kind':<16}{'web ms':>9}{'jobs ms':>10}{'pg ms':>8}{'total':>8}{'x /health':>11}{'HTTP':>6}")
    else:
        print(f"CPU per request ({args.n} of each, in process; PostgreSQL: the cluster's processes, mean)")
        print(f"{'kind':<16}{'app med':>9}{'app mean':>10}{'pg ms':>8}{'total':>8}{'x /health':>11}{'HTTP':>6}")
    cost = {}
    for name, med, mean, pg, groups in results:
        if groups:  # web, jobs, pg, total
            mean = groups["jobs"]
            cost[name] = med + mean + pg
        else:  # app median, app mean, pg, total
            cost[name] = med + pg
        print(f"{name:<16}{med:>9.1f}{mean:>10.1f}{pg:>8.1f}{cost[name]:>8.1f}{med / base:>11.0f}"
              f"{HOPS.get(name, 1):>6}")
    mix = mix_weights(args.pages_per_login)
    if all(k in cost for k in mix):
        # Per HTTP request, as bench/load.py and the /health ceiling count: a post
        # that redirects is two requests (the post and the page it leads to).
        total = sum(w * HOPS.get(k, 1) for k, w in mix.items())
        avg = sum(cost[k] * w for k, w in mix.items()) / total
        extra = args.client_ms + args.jobs_ms + (0 if stack_dir else args.http_ms)
        print(f"mix of bench/load.py (an applicant logs in every {args.pages_per_login} pages): {avg:.1f} ms per HTTP "
              f"request " + ("(the stack's processes) -> " if stack_dir else
                             f"(app median + PostgreSQL; nginx + gunicorn add about {args.http_ms:g} ms: --http) -> ")
              + f"{1000 * 0.7 * (os.cpu_count() or 2) / (avg + (0 if stack_dir else args.http_ms)):.0f} req/s on a "
              f"dedicated {os.cpu_count() or 2}-core host at 70 % CPU")
        print(f"expected share of the /health ceiling in bench/load.py on a quiet host (stack and locust on the same "
              f"cores, all CPU busy): {args.ceiling_ms:g} ms a /health request / ({avg:.1f} + {extra:g} ms a mix "
              f"request, {'locust + jobs' if stack_dir else 'nginx + gunicorn + locust + jobs'}) = "
              f"{100 * args.ceiling_ms / (avg + extra):.1f} % (target >= 10 %)")
    for name, prof in profiles.items():
        if args.dump:
            os.makedirs(args.dump, exist_ok=True)
            prof.dump_stats(os.path.join(args.dump, f"{name}.pstats"))
        print(f"\n== cProfile: {name} ({args.n} requests), by cumulative time")
        pstats.Stats(prof).sort_stats("cumulative").print_stats(args.top)
        print(f"== cProfile: {name}, by own time")
        st = pstats.Stats(prof)
        st.sort_stats("tottime").print_stats(args.top)
        by_package = {}
        for (path, _line, _fn), (_cc, _nc, tt, _ct, _callers) in st.stats.items():
            key = _package(path)
            by_package[key] = by_package.get(key, 0.0) + tt
        print(f"== cProfile: {name}, own CPU ms per request by package")
        for key, tt in sorted(by_package.items(), key=lambda kv: -kv[1])[:15]:
            print(f"  {key:<40}{1000 * tt / args.n:>8.2f}")


if __name__ == "__main__":
    main()
