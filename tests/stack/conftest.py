"""The production stack (scripts/stack.sh: nginx -> gunicorn -> PostgreSQL, Redis,
two rq workers), driven over real HTTP through nginx with `requests`.

Run by scripts/test.sh in its own stage: `CE_STACK_TESTS=1 pytest tests/stack`
(the normal runs leave this folder out, see tests/conftest.py).  The session
starts the stack once (a fresh database with the demo data) and stops it at the
end; set CE_STACK_KEEP=1 to leave it running, CE_STACK_REUSE=1 to use a running one.  Ports and folder: STACK_DIR,
STACK_HTTP_PORT, STACK_APP_PORT, STACK_REDIS_PORT, STACK_PG_PORT (scripts/stack.sh).
"""
import datetime
import os
import re
import subprocess
import time

import pytest
import requests
from sqlalchemy import create_engine, text

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PW = "Demo@2026"
_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf-token" content="([^"]+)"')


class Stack:
    def __init__(self, env):
        self.env = env
        self.url = env["STACK_URL"]
        self.dir = env["STACK_DIR"]
        self.engine = create_engine(env["DATABASE_URL"], pool_pre_ping=True, pool_size=2)

    # ---- processes ------------------------------------------------------------
    def pid(self, name):
        with open(os.path.join(self.dir, f"{name}.pid")) as fh:
            return int(fh.read().strip())

    def children(self, pid):
        import psutil

        return [p.pid for p in psutil.Process(pid).children()]

    def pg(self, command):
        env = dict(os.environ, PGDATA_DIR=os.path.join(self.dir, "pg"), PGPORT_TEST=self.env["STACK_PG_PORT"])
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "pg.sh"), command], env=env, check=True,
                       stdout=subprocess.DEVNULL, timeout=120)

    def redis(self):
        import redis

        return redis.Redis.from_url(self.env["REDIS_URL"], socket_connect_timeout=2)

    # ---- database -------------------------------------------------------------
    def scalar(self, sql, **params):
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def rows(self, sql, **params):
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).all()

    def execute(self, sql, **params):
        with self.engine.begin() as conn:
            return conn.execute(text(sql), params)

    def browser(self, username=None, password=PW, xff=None):
        b = Browser(self.url, xff=xff)
        if username:
            resp = b.login(username, password)
            assert resp.status_code == 200 and "/login" not in resp.url, (username, resp.status_code, resp.url)
        return b


class Browser:
    """A person at a browser: a cookie session, the CSRF token read from the pages."""

    def __init__(self, base, xff=None):
        self.base = base
        self.s = requests.Session()
        if xff:
            self.s.headers["X-Forwarded-For"] = xff

    def get(self, path, **kw):
        kw.setdefault("timeout", 60)
        return self.s.get(self.base + path, **kw)

    def token(self, path="/"):
        m = _CSRF.search(self.get(path).text)
        assert m, "no CSRF token on " + path
        return next(g for g in m.groups() if g)

    def post(self, path, data=None, files=None, token_from="/", **kw):
        data = dict(data or {})
        data.setdefault("csrf_token", self.token(token_from))
        kw.setdefault("timeout", 60)
        return self.s.post(self.base + path, data=data, files=files, **kw)

    def login(self, username, password=PW):
        return self.post("/login/", {"username": username, "password": password}, token_from="/login/")

    def wait_job(self, status_path, seconds=120):
        """Poll a job's JSON status until it is done or failed."""
        deadline = time.monotonic() + seconds
        while True:
            st = self.get(status_path).json()
            if st["state"] in ("done", "failed") or time.monotonic() > deadline:
                return st
            time.sleep(0.3)


def _read_env(path):
    env = {}
    with open(path) as fh:
        for line in fh:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                env[k] = v
    return env


@pytest.fixture(scope="session")
def stack():
    env = dict(os.environ)
    env.setdefault("STACK_DIR", "/tmp/ce-stack")
    started = time.monotonic()
    if os.environ.get("CE_STACK_REUSE") and os.path.exists(os.path.join(env["STACK_DIR"], "gunicorn.pid")):
        yield Stack(_read_env(os.path.join(env["STACK_DIR"], "stack.env")))  # development: a stack left running
        return
    out = subprocess.run(["bash", os.path.join(ROOT, "scripts", "stack.sh"), "start"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    print(f"stack started in {time.monotonic() - started:.0f} s: {out.stdout.strip()}")
    st = Stack(_read_env(os.path.join(env["STACK_DIR"], "stack.env")))
    yield st
    st.engine.dispose()
    if not os.environ.get("CE_STACK_KEEP"):
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "stack.sh"), "stop"], env=env, cwd=ROOT,
                       timeout=300)


def unit_file(path, rows, seq, year=None, region="320102", course="负载课程"):
    """A real .xlsx for a unit import by clerk_a: `rows` rows for rows // 10 new
    persons (the unit registers them), ten courses each.  `seq` (500..999) keeps
    the persons of different files apart."""
    from openpyxl import Workbook

    from app.services.columns import KINDS
    from app.services.demo import resident_id

    digits = "零一二三四五六七八九"
    year = year or datetime.date.today().year - 1
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("学时数据")
    ws.append(KINDS["unit"].headers)
    base = datetime.date(year, 1, 5)
    for i in range(rows):
        p, k = divmod(i, 10)
        number = resident_id(region, datetime.date(1960, 1, 1) + datetime.timedelta(days=p), seq)
        day = base + datetime.timedelta(days=(k * 31) % 350)
        name = "测" + "".join(digits[int(c)] for c in str(p))
        ws.append([name, "居民身份证", number, year, "专业科目", "培训（面授）",
                   f"{course}{seq}-{k:02d}", "东南大学继续教育学院", day.isoformat(), day.isoformat(), 8])
    wb.save(path)
    return path
