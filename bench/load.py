"""Deadline-day load benchmark (issue 18) against the production stack
(scripts/stack.sh: nginx -> gunicorn 2 workers x threads -> PostgreSQL, Redis,
two rq workers), driven by locust used as a library.

    .venv/bin/python bench/load.py                 # starts the stack, 180 s of mix
    .venv/bin/python bench/load.py --seconds 60    # shorter
    .venv/bin/python bench/load.py --url http://127.0.0.1:18080 --no-start   # a running stack
    .venv/bin/python bench/load.py --find-capacity --users 50 --think 5-30 --seconds 120   # the capacity figure

Two phases, same run, same machine:
  1. the ceiling: the same nginx + gunicorn answering /health (no database),
     as fast as `--health-users` clients can ask;
  2. the mix for `--seconds`: applicants (log in, 我的学时, declare with a proof,
     sign out after about `--pages-per-session` tasks and another person signs
     in), unit reviewers (待核准申报, open one, approve it), bureau staff (filter
     the grid, dashboard, export as a job) who stay signed in, and one clerk
     importing a 5 000-row .xlsx (runs in an rq worker), each person with a
     think time (`--think`) between pages.

Requests are counted as the server answers them, as the /health ceiling counts
them: a form post that redirects (log in -> home page, submit a declaration ->
我的学时, approve -> 待核准申报) is two requests, the post and the page it leads
to, each with its own name and timings (locust would otherwise follow the
redirect inside one request and count the two as one).

Prints requests/s, p50 / p95 / p99 per kind of request and whether each page
kind's p95 is within 300 ms, failures, the ratio of the mix's throughput to the
ceiling, and the stack's CPU per request by group (web, PostgreSQL, jobs).
`--find-capacity` repeats the mix with more people each step (x `--step`) until a
page's p95 passes 300 ms or a request fails, and prints the last number that
held: the capacity of this host at that think time.  Note: locust runs on the
same cores as the stack unless pointed at another host, so both phases pay for
the client too.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import datetime  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from urllib.parse import urljoin  # noqa: E402

import gevent  # noqa: E402
from locust import HttpUser, between, constant, task  # noqa: E402
from locust.env import Environment  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
PW = "Demo@2026"
YEAR = datetime.date.today().year
_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf-token" content="([^"]+)"')
PAGE_TARGET_MS = 300
JOB_KINDS = ("import", "export", "job")  # request names that start or follow a job


def _token(html):
    m = _CSRF.search(html)
    return next(g for g in m.groups() if g) if m else ""


class Person(HttpUser):
    """A signed-in person; `accounts` is filled before the run.  A session: the
    login page, the login, then about `pages_per_session` tasks with `think`
    seconds between pages; then the person signs out and another one signs in
    (a real session logs in once and opens a handful of pages, it does not
    log in once per run)."""

    abstract = True
    accounts = []
    wait_time = between(1, 3)
    pages_per_session = 0  # 0: one login for the whole run

    def on_start(self):
        self._login()

    def follow(self, resp, name, check=None):
        """The pages a redirect leads to, each requested (as a browser does, without
        think time) and counted as its own request `name`; `check(final response)`
        may mark the last one failed.  Returns the last response."""
        for _ in range(5):
            if not resp.is_redirect:
                break
            url = urljoin(resp.url, resp.headers["Location"])
            with self.client.get(url, name=name, allow_redirects=False, catch_response=True) as nxt:
                if check and not nxt.is_redirect:
                    check(nxt)
            resp = nxt
        return resp

    def post(self, url, name, then, expect=None, check=None, **kw):
        """A form post answered by a redirect (`expect`: a part of its target), then
        the page it leads to, counted as `then`."""
        with self.client.post(url, name=name, allow_redirects=False, catch_response=True, **kw) as resp:
            if not resp.is_redirect:
                resp.failure(f"HTTP {resp.status_code}, no redirect")
            elif expect and expect not in resp.headers.get("Location", ""):
                resp.failure(f"redirected to {resp.headers.get('Location')}")
        return self.follow(resp, then, check)

    def _login(self):
        self.tasks_left = (random.randint(max(1, self.pages_per_session // 2), self.pages_per_session * 3 // 2)
                           if self.pages_per_session else -1)
        self.username = self.accounts[random.randrange(len(self.accounts))]
        page = self.client.get("/login/", name="login_page")
        with self.client.post("/login/", data={"username": self.username, "password": PW,
                                               "csrf_token": _token(page.text)},
                              name="login", allow_redirects=False, catch_response=True) as resp:
            if not resp.is_redirect or "/login" in resp.headers.get("Location", ""):
                resp.failure("login refused")
        home = self.follow(resp, "home")
        self.csrf = _token(home.text)

    def next_session(self):
        """Called before each task: the session ends after its pages."""
        if self.tasks_left == 0:
            self.follow(self.client.get("/logout/", name="logout", allow_redirects=False), "logout")
            self.client.cookies.clear()
            self._login()
        elif self.tasks_left > 0:
            self.tasks_left -= 1


class Applicant(Person):
    weight = 6

    @task(4)
    def my_hours(self):
        self.next_session()
        self.client.get("/declare/mine", name="my_hours")

    @task(1)
    def declare(self):
        self.next_session()
        page = self.client.get("/declare/new", name="declare_form")
        day = max(datetime.date(YEAR, 1, 1), datetime.date.today() - datetime.timedelta(days=5))
        data = {"year": str(YEAR), "category": "PRO", "learning_form": "TRAIN_ONSITE",
                "course_name": f"负载申报{time.time_ns()}", "organizer_name": "东南大学继续教育学院",
                "start_date": day.isoformat(), "end_date": day.isoformat(), "hours": "8", "op": "submit",
                "csrf_token": _token(page.text)}
        def submitted(resp):
            if "申报已提交" not in resp.text:
                resp.failure("declaration not submitted")

        # The post, then 我的学时 it leads to (with the flash message).
        self.post("/declare/new", "declare_submit", "my_hours", expect="/declare/mine", check=submitted,
                  data=data, files={"proof": ("证明.pdf", PROOF, "application/pdf")})


class Reviewer(Person):
    weight = 2

    @task(3)
    def todo(self):
        self.next_session()
        self.client.get("/review/todo/list/", name="review_todo")

    @task(1)
    def approve_one(self):
        self.next_session()
        page = self.client.get("/review/todo/list/", name="review_todo")
        ids = re.findall(r'/review/(?:todo/show/)?(\d+)"', page.text)
        if not ids:
            return
        rid = random.choice(ids)
        review = self.client.get(f"/review/{rid}", name="review_page")
        # The post, then the page it leads to: the to-do list, or (another reviewer of
        # the unit decided it meanwhile) the review page saying so.
        self.post(f"/review/{rid}/decide", "approve", "review_todo",
                  data={"op": "approve", "csrf_token": _token(review.text)})


class Bureau(Person):
    weight = 2

    @task(3)
    def grid(self):
        self.next_session()
        year = random.choice([YEAR - 2, YEAR - 1, YEAR])
        cat = random.choice(["PRO", "PUB"])
        self.client.get(f"/hourrecordview/list/?_flt_0_year={year}&_flt_0_category={cat}", name="grid_filter")

    @task(2)
    def dashboard(self):
        self.next_session()
        self.client.get(f"/dashboard/?year={YEAR - 1}", name="dashboard")

    @task(1)
    def export(self):
        self.next_session()
        resp = self.follow(self.client.get("/hourrecordview/export/?_flt_0_category=PUB", name="export_start",
                                           allow_redirects=False), "export_job_page")
        m = re.search(r"/imports/job/(\d+)", resp.url)
        if not m:
            return
        job = m.group(1)
        for _ in range(120):
            st = self.client.get(f"/imports/job/{job}/status", name="job_status").json()
            if st["state"] in ("done", "failed"):
                break
            gevent.sleep(0.5)
        if st["state"] == "done":
            self.client.get(f"/imports/job/{job}/download", name="export_download")
        else:
            self.client.get(f"/imports/job/{job}", name="export_failed")


class Importer(Person):
    """One clerk importing a 5 000-row file (analysed and stored by an rq worker)."""

    fixed_count = 1
    wait_time = constant(5)
    files = []

    @task
    def import_file(self):
        if not self.files:
            gevent.sleep(5)
            return
        path = self.files.pop()
        page = self.client.get("/imports/", name="import_page")
        with open(path, "rb") as fh:
            resp = self.post("/imports/upload", "import_upload", "import_job_page",
                             data={"kind": "unit", "csrf_token": _token(page.text)},
                             files={"file": (os.path.basename(path), fh.read())})
        m = re.search(r"/imports/job/(\d+)", resp.url)
        if not m:
            return
        st = self._wait(m.group(1))
        if st["state"] != "done":
            return
        page = self.client.get(f"/imports/job/{m.group(1)}", name="import_preview")
        resp = self.post(f"/imports/job/{m.group(1)}/confirm", "import_confirm", "import_job_page",
                         data={"csrf_token": _token(page.text)})
        m = re.search(r"/imports/job/(\d+)", resp.url)
        if m:
            started = time.monotonic()
            st = self._wait(m.group(1))
            IMPORTS.append((st["state"], time.monotonic() - started))

    def _wait(self, job):
        for _ in range(1200):
            st = self.client.get(f"/imports/job/{job}/status", name="job_status").json()
            if st["state"] in ("done", "failed"):
                return st
            gevent.sleep(0.5)
        return st


class Health(HttpUser):
    wait_time = constant(0)

    @task
    def health(self):
        self.client.get("/health", name="health")


IMPORTS = []
PROOF = b""


def _proof():
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.drawString(72, 720, "proof")
    c.save()
    return buf.getvalue()


def _accounts(env):
    """Bench accounts (password hashes copied from the demo accounts): one
    applicant per person, reviewers per unit, bureau staff."""
    from sqlalchemy import create_engine, text

    eng = create_engine(env["DATABASE_URL"])
    with eng.begin() as conn:
        if not conn.execute(text("SELECT 1 FROM ab_user WHERE username LIKE 'bench_%' LIMIT 1")).first():
            def copy(like, sql_from, name_expr, binding):
                conn.execute(text(f"""
                    INSERT INTO ab_user (first_name, last_name, username, password, active, email, created_on,
                        changed_on, login_count, fail_login_count, must_change_password, {binding})
                    SELECT '压测', 'x', {name_expr}, u.password, TRUE, {name_expr} || '@bench.invalid', now(), now(),
                           0, 0, FALSE, src.id {sql_from} AND u.username = :like"""), {"like": like})
                conn.execute(text("""
                    INSERT INTO ab_user_role (user_id, role_id)
                    SELECT n.id, r.role_id FROM ab_user n, ab_user u JOIN ab_user_role r ON r.user_id = u.id
                    WHERE u.username = :like AND n.first_name = '压测' AND n.id NOT IN
                          (SELECT user_id FROM ab_user_role)"""), {"like": like})

            copy("zhangsan", "FROM ab_user u, person src WHERE src.unit_id IS NOT NULL AND src.id NOT IN "
                 "(SELECT person_id FROM ab_user WHERE person_id IS NOT NULL)",
                 "'bench_app_' || src.id", "person_id")
            copy("clerk_a", "FROM ab_user u, unit src WHERE src.kind = 'EMPLOYER'", "'bench_rev_' || src.id",
                 "unit_id")
            conn.execute(text("""
                INSERT INTO ab_user (first_name, last_name, username, password, active, email, created_on,
                    changed_on, login_count, fail_login_count, must_change_password, region_code)
                SELECT '压测', 'x', 'bench_bur_' || g, u.password, TRUE, 'bench_bur_' || g || '@bench.invalid',
                       now(), now(), 0, 0, FALSE, '320100' FROM ab_user u, generate_series(1, 10) g
                WHERE u.username = 'bureau_nj'"""))
            conn.execute(text("""
                INSERT INTO ab_user_role (user_id, role_id)
                SELECT n.id, r.role_id FROM ab_user n, ab_user u JOIN ab_user_role r ON r.user_id = u.id
                WHERE u.username = 'bureau_nj' AND n.username LIKE 'bench_bur_%'"""))
        names = [r[0] for r in conn.execute(text("SELECT username FROM ab_user WHERE username LIKE 'bench_%'"))]
    eng.dispose()
    Applicant.accounts = [n for n in names if n.startswith("bench_app_")]
    Reviewer.accounts = [n for n in names if n.startswith("bench_rev_")]
    Bureau.accounts = [n for n in names if n.startswith("bench_bur_")]
    Importer.accounts = ["clerk_a"]


def _stack_cpu(stack_dir, by_group=False):
    from bench.stackcpu import stack_cpu

    return stack_cpu(stack_dir, by_group)


RAMP = 20  # seconds over which the people arrive (--ramp)


def _run(user_classes, users, seconds, host, mark):
    """Runs the people for `seconds`; `mark()` is called where the figures start
    (after a long arrival), so that the CPU read there covers the same requests."""
    env = Environment(user_classes=user_classes, host=host)
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=max(1, users / RAMP))  # people arrive over RAMP seconds
    if RAMP > 20:
        # A long arrival is measured apart: the figures are the steady state after
        # it; a request that failed while people arrived is still reported.
        gevent.sleep(RAMP)
        failed = env.stats.total.num_failures
        print(f"   (arrival over {RAMP} s: {failed} failed requests; statistics restart now)")
        env.stats.reset_all()
    mark()
    gevent.sleep(seconds)
    runner.quit()
    return env.stats


def _pct(entry, p):
    return entry.get_response_time_percentile(p) if entry.num_requests else 0


def _report(stats, seconds, verdict=False):
    """Prints the table; returns (req/s, failures, worst page p95, {kind: p95})."""
    rows = sorted(stats.entries.values(), key=lambda e: -e.num_requests)
    print(f"{'request':<18}{'n':>7}{'fail':>6}{'rps':>8}{'p50':>7}{'p95':>7}{'p99':>7}  (ms)")
    worst_page = 0
    p95 = {}
    for e in rows:
        page = not e.name.startswith(JOB_KINDS)
        mark = ""
        if verdict and page:
            mark = "  ok" if _pct(e, 0.95) <= PAGE_TARGET_MS else f"  > {PAGE_TARGET_MS} ms"
        elif verdict:
            mark = "  (job: no page target)"
        print(f"{e.name:<18}{e.num_requests:>7}{e.num_failures:>6}{e.num_requests / seconds:>8.1f}"
              f"{_pct(e, 0.5):>7.0f}{_pct(e, 0.95):>7.0f}{_pct(e, 0.99):>7.0f}{mark}")
        if page:
            worst_page = max(worst_page, _pct(e, 0.95))
            p95[e.name] = _pct(e, 0.95)
    total = stats.total
    print(f"{'TOTAL':<18}{total.num_requests:>7}{total.num_failures:>6}{total.num_requests / seconds:>8.1f}"
          f"{_pct(total, 0.5):>7.0f}{_pct(total, 0.95):>7.0f}{_pct(total, 0.99):>7.0f}")
    return total.num_requests / seconds, total.num_failures, worst_page, p95


def _mix(args, host, stack_dir, users, seconds):
    """One run of the mix with `users` people; returns its figures."""
    print(f"== mix: {users} people (think time {args.think} s, an applicant logs in every "
          f"{args.pages_per_session or 'run'} pages), {seconds} s: applicants 6 : reviewers 2 : bureau 2, plus 1 clerk importing "
          f"{args.import_rows} rows", flush=True)
    start = {}

    def mark():
        start.update(cpu=_stack_cpu(stack_dir, by_group=True), client=time.process_time(),
                     load=os.getloadavg()[0])

    rps, failures, worst, p95 = _report(
        _run([Applicant, Reviewer, Bureau, Importer], users, seconds, host, mark), seconds, verdict=True)
    cpu1 = _stack_cpu(stack_dir, by_group=True)
    n = max(1, rps * seconds)
    per = {k: 1000 * (cpu1[k] - start["cpu"][k]) / n for k in cpu1}
    per["client"] = 1000 * (time.process_time() - start["client"]) / n  # locust itself, not the stack
    load0 = start["load"]
    return {"users": users, "rps": rps, "failures": failures, "worst": worst, "p95": p95, "cpu": per,
            "load0": load0}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=180, help="length of the mix (default 180)")
    ap.add_argument("--ceiling-seconds", type=int, default=0, help="length of the /health phase (default: mix/6, >= 15)")
    ap.add_argument("--users", type=int, default=60, help="simultaneous people in the mix (default 60)")
    ap.add_argument("--health-users", type=int, default=20)
    ap.add_argument("--think", default="1-3", help="seconds between a person's pages, MIN-MAX (default 1-3; "
                    "a realistic person reading a page and filling a form: 5-30)")
    ap.add_argument("--pages-per-session", type=int, default=8,
                    help="pages an applicant opens per login, about (default 8; 0: one login for the whole run); "
                         "unit and bureau staff log in once (a working day)")
    ap.add_argument("--find-capacity", action="store_true",
                    help="step the number of people up from --users (x --step) until a page's p95 passes "
                         f"{PAGE_TARGET_MS} ms or a request fails; prints the last number that held")
    ap.add_argument("--ramp", type=int, default=20, help="seconds over which the people arrive (default 20; "
                    "above 20 the figures are taken after the arrival)")
    ap.add_argument("--step", type=float, default=1.5, help="factor between capacity steps (default 1.5)")
    ap.add_argument("--max-users", type=int, default=5000)
    ap.add_argument("--import-rows", type=int, default=5000)
    ap.add_argument("--url", help="a running stack (default: start scripts/stack.sh)")
    ap.add_argument("--no-start", action="store_true", help="use the running stack described by $STACK_DIR/stack.env")
    ap.add_argument("--keep", action="store_true", help="leave the stack running")
    args = ap.parse_args(argv)
    global RAMP
    RAMP = args.ramp
    stack_dir = os.environ.setdefault("STACK_DIR", "/tmp/ce-stack")
    if not args.no_start:
        print("starting the stack (scripts/stack.sh start) ...", flush=True)
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "stack.sh"), "start"], check=True, cwd=ROOT)
    env = {}
    with open(os.path.join(stack_dir, "stack.env")) as fh:
        env.update(line.rstrip("\n").split("=", 1) for line in fh if "=" in line)
    host = args.url or env["STACK_URL"]
    try:
        global PROOF
        PROOF = _proof()
        _accounts(env)
        from tests.stack.conftest import unit_file

        work = tempfile.mkdtemp(prefix="ce-load-")
        Importer.files = [unit_file(os.path.join(work, "负载导入.xlsx"), args.import_rows, seq=901,
                                    course=f"压测导入{int(time.time())}")]
        ceiling_s = args.ceiling_seconds or max(15, args.seconds // 6)
        print(f"== ceiling: /health through nginx + gunicorn, {args.health_users} clients, {ceiling_s} s", flush=True)
        start = {}

        def mark():
            start.update(cpu=_stack_cpu(stack_dir), client=time.process_time())

        ceiling, _f, _w, _p = _report(_run([Health], args.health_users, ceiling_s, host, mark), ceiling_s)
        health_cpu = (_stack_cpu(stack_dir) - start["cpu"]) / max(1, ceiling * ceiling_s)
        health_client = (time.process_time() - start["client"]) / max(1, ceiling * ceiling_s)
        lo, hi = (float(x) for x in args.think.split("-")) if "-" in args.think else (float(args.think),) * 2
        for cls in (Applicant, Reviewer, Bureau):
            cls.wait_time = between(lo, hi)
        # Applicants come, declare and go; unit and bureau staff stay signed in all day.
        Applicant.pages_per_session = args.pages_per_session
        cores = os.cpu_count() or 2
        runs = []
        users = args.users
        while True:
            r = _mix(args, host, stack_dir, users, args.seconds)
            runs.append(r)
            held = r["failures"] == 0 and r["worst"] <= PAGE_TARGET_MS
            print(f"-- {users} people: {r['rps']:.1f} req/s = {100 * r['rps'] / ceiling:.1f} % of /health, "
                  f"{r['failures']} failed, worst page p95 {r['worst']:.0f} ms: "
                  f"{'HOLDS' if held else 'does not hold'} p95 <= {PAGE_TARGET_MS} ms", flush=True)
            if not args.find_capacity or not held or users >= args.max_users:
                break
            users = min(args.max_users, max(users + 1, int(users * args.step)))
        held_runs = [x for x in runs if x["failures"] == 0 and x["worst"] <= PAGE_TARGET_MS]
        r = held_runs[-1] if args.find_capacity and held_runs else runs[-1]
        print("== result")
        print(f"ceiling (/health): {ceiling:.0f} req/s; mix: {r['rps']:.1f} req/s = {100 * r['rps'] / ceiling:.1f} % "
              f"of it (target >= 10 %)")
        print(f"failed requests: {r['failures']} (target 0); worst page p95: {r['worst']:.0f} ms "
              f"(target <= {PAGE_TARGET_MS})")
        for state, took in IMPORTS:
            print(f"import of {args.import_rows} rows: {state}, stored in {took:.0f} s (rq worker)")
        if not IMPORTS:
            print(f"import of {args.import_rows} rows: not finished within the run")
        print(f"machine load average (1 min) at the start of the mix: {r['load0']:.1f} on {cores} cores")
        cpu = dict(r["cpu"])
        client = cpu.pop("client")
        mix_cpu = sum(cpu.values()) / 1000
        print(f"stack CPU per request: /health {1000 * health_cpu:.1f} ms; mix {1000 * mix_cpu:.1f} ms = "
              f"web (nginx + gunicorn) {cpu['web']:.1f} + PostgreSQL {cpu['pg']:.1f} + jobs (rq, Redis: the "
              f"import and exports) {cpu['jobs']:.1f}; the load generator (locust, same host unless --url "
              f"points elsewhere) {client:.1f} more")
        if args.find_capacity:
            if held_runs:
                best = held_runs[-1]
                print(f"CAPACITY: {best['users']} people at once (think time {args.think} s, an applicant "
                      f"logs in every {args.pages_per_session or 'run'} pages) at {best['rps']:.1f} req/s with every page's "
                      f"p95 <= {PAGE_TARGET_MS} ms on this {cores}-core host"
                      + ("" if runs[-1] is not best else f" (not exceeded up to {best['users']}: raise --max-users)"))
            else:
                print(f"CAPACITY: below {args.users} people (the first step did not hold): start lower (--users)")
        busy = r["rps"] * (mix_cpu + client / 1000) / cores
        print(f"CPU busy during the mix (stack + locust): {100 * busy:.0f} % of {cores} cores"
              + ("" if busy >= 0.9 else " (below ~90 %: the throughput was set by the number of people and their "
                 "think time, not by the host; more --users to load it)"))
        per_health = 1000 * (health_cpu + health_client)
        per_mix = 1000 * mix_cpu + client
        print(f"by CPU per request (stack + locust; valid on a shared machine): /health {per_health:.1f} ms, "
              f"a mix request {per_mix:.1f} ms: with both phases CPU-bound the mix reaches about "
              f"{100 * per_health / per_mix:.1f} % of the ceiling")
        dedicated = 0.7 * cores / mix_cpu if mix_cpu else 0
        print(f"by CPU: a dedicated {cores}-core host at 70 % CPU serves about {dedicated:.0f} req/s of this mix")
    finally:
        if not args.no_start and not args.keep:
            subprocess.run(["bash", os.path.join(ROOT, "scripts", "stack.sh"), "stop"], cwd=ROOT)


if __name__ == "__main__":
    main()
