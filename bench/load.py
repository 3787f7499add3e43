"""Deadline-day load benchmark (issue 18) against the production stack
(scripts/stack.sh: nginx -> gunicorn 2 workers x threads -> PostgreSQL, Redis,
two rq workers), driven by locust used as a library.

    .venv/bin/python bench/load.py                 # starts the stack, 180 s of mix
    .venv/bin/python bench/load.py --seconds 60    # shorter
    .venv/bin/python bench/load.py --url http://127.0.0.1:18080 --no-start   # a running stack

Two phases, same run, same machine:
  1. the ceiling: the same nginx + gunicorn answering /health (no database),
     as fast as `--users` clients can ask;
  2. the mix for `--seconds`: applicants (log in, 我的学时, declare with a proof),
     unit reviewers (待核准申报, approve one), bureau staff (filter the grid,
     dashboard, export as a job), and one clerk importing a 5 000-row .xlsx
     (runs in an rq worker), each person with a think time between pages.

Prints requests/s, p50 / p95 / p99 per kind of request, failures, the ratio of
the mix's throughput to the ceiling, and the targets (0 failures, p95 <= 300 ms
for pages, mix >= 10 % of the ceiling).  Note: locust runs on the same 2 cores
as the stack, so both phases pay for the client too.
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
    """A signed-in person; `accounts` is filled before the run."""

    abstract = True
    accounts = []
    wait_time = between(1, 3)

    def on_start(self):
        self.username = self.accounts[random.randrange(len(self.accounts))]
        page = self.client.get("/login/", name="login_page")
        with self.client.post("/login/", data={"username": self.username, "password": PW,
                                               "csrf_token": _token(page.text)},
                              name="login", catch_response=True) as resp:
            if "/login" in resp.url:
                resp.failure("login refused")
        self.csrf = _token(resp.text)


class Applicant(Person):
    weight = 6

    @task(4)
    def my_hours(self):
        self.client.get("/declare/mine", name="my_hours")

    @task(1)
    def declare(self):
        page = self.client.get("/declare/new", name="declare_form")
        day = max(datetime.date(YEAR, 1, 1), datetime.date.today() - datetime.timedelta(days=5))
        data = {"year": str(YEAR), "category": "PRO", "learning_form": "TRAIN_ONSITE",
                "course_name": f"负载申报{time.time_ns()}", "organizer_name": "东南大学继续教育学院",
                "start_date": day.isoformat(), "end_date": day.isoformat(), "hours": "8", "op": "submit",
                "csrf_token": _token(page.text)}
        with self.client.post("/declare/new", data=data, files={"proof": ("证明.pdf", PROOF, "application/pdf")},
                              name="declare_submit", catch_response=True) as resp:
            if "申报已提交" not in resp.text:
                resp.failure("declaration not submitted")


class Reviewer(Person):
    weight = 2

    @task(3)
    def todo(self):
        self.client.get("/review/todo/list/", name="review_todo")

    @task(1)
    def approve_one(self):
        page = self.client.get("/review/todo/list/", name="review_todo")
        ids = re.findall(r'/review/(\d+)"', page.text)
        if not ids:
            return
        rid = random.choice(ids)
        review = self.client.get(f"/review/{rid}", name="review_page")
        with self.client.post(f"/review/{rid}/decide", data={"op": "approve", "csrf_token": _token(review.text)},
                              name="approve", catch_response=True) as resp:
            # Another reviewer of the unit may have decided it meanwhile: the page says so (200).
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")


class Bureau(Person):
    weight = 2

    @task(3)
    def grid(self):
        year = random.choice([YEAR - 2, YEAR - 1, YEAR])
        cat = random.choice(["PRO", "PUB"])
        self.client.get(f"/hourrecordview/list/?_flt_0_year={year}&_flt_0_category={cat}", name="grid_filter")

    @task(2)
    def dashboard(self):
        self.client.get(f"/dashboard/?year={YEAR - 1}", name="dashboard")

    @task(1)
    def export(self):
        resp = self.client.get("/hourrecordview/export/?_flt_0_category=PUB", name="export_start")
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
            resp = self.client.post("/imports/upload", data={"kind": "unit", "csrf_token": _token(page.text)},
                                    files={"file": (os.path.basename(path), fh.read())}, name="import_upload")
        m = re.search(r"/imports/job/(\d+)", resp.url)
        if not m:
            return
        st = self._wait(m.group(1))
        if st["state"] != "done":
            return
        page = self.client.get(f"/imports/job/{m.group(1)}", name="import_preview")
        resp = self.client.post(f"/imports/job/{m.group(1)}/confirm", data={"csrf_token": _token(page.text)},
                                name="import_confirm")
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


def _stack_cpu(stack_dir):
    """CPU seconds used so far by the stack's processes (nginx, gunicorn, rq workers
    and their finished work-horses, Redis, PostgreSQL and its backends): the
    machine may be shared, CPU time per request is not."""
    import psutil

    roots = []
    for name in ("nginx", "gunicorn", "rq1", "rq2", "redis"):
        try:
            with open(os.path.join(stack_dir, f"{name}.pid")) as fh:
                roots.append(int(fh.read().split()[0]))
        except (OSError, ValueError):
            pass
    try:
        with open(os.path.join(stack_dir, "pg", "postmaster.pid")) as fh:
            roots.append(int(fh.readline()))
    except (OSError, ValueError):
        pass
    total = 0.0
    for pid in roots:
        try:
            root = psutil.Process(pid)
            for p in [root] + root.children(recursive=True):
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


def _run(user_classes, users, seconds, host):
    env = Environment(user_classes=user_classes, host=host)
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=max(1, users / 20))  # people arrive over ~20 s
    gevent.sleep(seconds)
    runner.quit()
    return env.stats


def _pct(entry, p):
    return entry.get_response_time_percentile(p) if entry.num_requests else 0


def _report(stats, seconds):
    rows = sorted(stats.entries.values(), key=lambda e: -e.num_requests)
    print(f"{'request':<18}{'n':>7}{'fail':>6}{'rps':>8}{'p50':>7}{'p95':>7}{'p99':>7}  (ms)")
    worst_page = 0
    for e in rows:
        print(f"{e.name:<18}{e.num_requests:>7}{e.num_failures:>6}{e.num_requests / seconds:>8.1f}"
              f"{_pct(e, 0.5):>7.0f}{_pct(e, 0.95):>7.0f}{_pct(e, 0.99):>7.0f}")
        if not e.name.startswith(JOB_KINDS):
            worst_page = max(worst_page, _pct(e, 0.95))
    total = stats.total
    print(f"{'TOTAL':<18}{total.num_requests:>7}{total.num_failures:>6}{total.num_requests / seconds:>8.1f}"
          f"{_pct(total, 0.5):>7.0f}{_pct(total, 0.95):>7.0f}{_pct(total, 0.99):>7.0f}")
    return total.num_requests / seconds, total.num_failures, worst_page


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=180, help="length of the mix (default 180)")
    ap.add_argument("--ceiling-seconds", type=int, default=0, help="length of the /health phase (default: mix/6, >= 15)")
    ap.add_argument("--users", type=int, default=60, help="simultaneous people in the mix (default 60)")
    ap.add_argument("--health-users", type=int, default=20)
    ap.add_argument("--import-rows", type=int, default=5000)
    ap.add_argument("--url", help="a running stack (default: start scripts/stack.sh)")
    ap.add_argument("--no-start", action="store_true", help="use the running stack described by $STACK_DIR/stack.env")
    ap.add_argument("--keep", action="store_true", help="leave the stack running")
    args = ap.parse_args(argv)
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
        cpu0 = _stack_cpu(stack_dir)
        ceiling, _f, _w = _report(_run([Health], args.health_users, ceiling_s, host), ceiling_s)
        health_cpu = (_stack_cpu(stack_dir) - cpu0) / max(1, ceiling * ceiling_s)
        print(f"== mix: {args.users} people (think time 1-3 s), {args.seconds} s: applicants 6 : reviewers 2 : "
              f"bureau 2, plus 1 clerk importing {args.import_rows} rows", flush=True)
        cpu0 = _stack_cpu(stack_dir)
        load0 = os.getloadavg()[0]
        rps, failures, worst = _report(
            _run([Applicant, Reviewer, Bureau, Importer], args.users, args.seconds, host), args.seconds)
        mix_cpu = (_stack_cpu(stack_dir) - cpu0) / max(1, rps * args.seconds)
        cores = os.cpu_count() or 2
        print("== result")
        print(f"ceiling (/health): {ceiling:.0f} req/s; mix: {rps:.1f} req/s = {100 * rps / ceiling:.1f} % of it "
              f"(target >= 10 %)")
        print(f"failed requests: {failures} (target 0); worst page p95: {worst:.0f} ms (target <= {PAGE_TARGET_MS})")
        for state, took in IMPORTS:
            print(f"import of {args.import_rows} rows: {state}, stored in {took:.0f} s (rq worker)")
        if not IMPORTS:
            print(f"import of {args.import_rows} rows: not finished within the run")
        print(f"machine load average (1 min) at the start of the mix: {load0:.1f} on {cores} cores")
        print(f"stack CPU per request: /health {1000 * health_cpu:.1f} ms, mix {1000 * mix_cpu:.1f} ms "
              f"(all processes of the stack, the import included)")
        dedicated = 0.7 * cores / mix_cpu if mix_cpu else 0
        print(f"capacity: this run held {args.users} people (1-3 s think time) at {rps:.1f} req/s, p95 {worst:.0f} ms. "
              f"A dedicated {cores}-core host at 70 % CPU: about {dedicated:.0f} req/s of this mix, i.e. about "
              f"{int(dedicated * 20)} people at once with a 20 s think time between pages")
    finally:
        if not args.no_start and not args.keep:
            subprocess.run(["bash", os.path.join(ROOT, "scripts", "stack.sh"), "stop"], cwd=ROOT)


if __name__ == "__main__":
    main()
