"""Test fixtures.

The database is built once per session *through the migrations* (plus roles,
regions and the demo data) into a template; every test starts from a fresh
copy of it.  SQLite by default; set TEST_DATABASE_URL=postgresql+psycopg://...
to run the same suite on PostgreSQL (each test gets `CREATE DATABASE ... TEMPLATE`).

Database checks in a test: `with app.app_context(): ...` around the queries only
(never around client requests, see `ctx`).

Helpers: `login(client, username)`, `csrf_token(client)`, `post(client, url, data)`
(posts with the session's CSRF token), and the `live_server` / `page` fixtures
for browser tests (Playwright driving /usr/bin/chromium).
"""
import os
import re
import shutil
import threading

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app import create_app
from app.extensions import db
from app.services.demo import DEMO_PASSWORD
from config import TestConfig

PG_URL = os.environ.get("TEST_DATABASE_URL", "")
# tests/stack drives the production stack (scripts/stack.sh); scripts/test.sh runs
# it in its own stage with CE_STACK_TESTS=1.
collect_ignore = [] if os.environ.get("CE_STACK_TESTS") else ["stack"]
IS_PG = PG_URL.startswith("postgresql")


def _worker():
    # Unique per process, so parallel runs never share a database or upload folder.
    return f'{os.environ.get("PYTEST_XDIST_WORKER", "gw0")}_{os.getpid()}'


class _Backend:
    """Builds the template once and restores it before each test."""

    def __init__(self, tmpdir):
        self.tmpdir = tmpdir
        if IS_PG:
            base = make_url(PG_URL)
            name = f"{base.database}_{_worker()}"
            self.work_url = base.set(database=name)
            self.template_url = base.set(database=name + "_tpl")
            self.admin_url = base.set(database="postgres")
        else:
            self.work_path = os.path.join(tmpdir, "work.db")
            self.template_path = os.path.join(tmpdir, "template.db")
            self.work_url = "sqlite:///" + self.work_path
            self.template_url = "sqlite:///" + self.template_path

    def _admin(self, *statements):
        eng = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with eng.connect() as conn:
            for s in statements:
                conn.execute(text(s))
        eng.dispose()

    def build_template(self):
        if IS_PG:
            tpl = self.template_url.database
            self._admin(f'DROP DATABASE IF EXISTS "{tpl}" WITH (FORCE)', f'CREATE DATABASE "{tpl}"')
        app = create_app(_config(self.template_url))
        with app.app_context():
            from app.services.setup import initialize

            initialize(demo=True)
            db.session.remove()
            db.engine.dispose()

    def drop(self):
        if IS_PG:
            self._admin(
                f'DROP DATABASE IF EXISTS "{self.work_url.database}" WITH (FORCE)',
                f'DROP DATABASE IF EXISTS "{self.template_url.database}" WITH (FORCE)',
            )

    def restore(self):
        if IS_PG:
            work, tpl = self.work_url.database, self.template_url.database
            self._admin(f'DROP DATABASE IF EXISTS "{work}" WITH (FORCE)', f'CREATE DATABASE "{work}" TEMPLATE "{tpl}"')
        else:
            shutil.copyfile(self.template_path, self.work_path)


def _config(url):
    class Cfg(TestConfig):
        SQLALCHEMY_DATABASE_URI = str(url) if not hasattr(url, "render_as_string") else url.render_as_string(hide_password=False)
        SQLALCHEMY_ENGINE_OPTIONS = {}
        VAR_DIR = os.environ.get("CE_TEST_VAR", "/tmp/ce-test-var-" + _worker())
        UPLOAD_DIR = os.path.join(VAR_DIR, "uploads")
        SERVER_NAME = None

    return Cfg


@pytest.fixture(scope="session")
def backend(tmp_path_factory):
    b = _Backend(str(tmp_path_factory.mktemp("db")))
    b.build_template()
    yield b
    b.drop()


@pytest.fixture(scope="session")
def app(backend):
    backend.restore()
    application = create_app(_config(backend.work_url))
    return application


@pytest.fixture(autouse=True)
def fresh_db(request, backend):
    """Every test starts from the migrated demo database."""
    if "app" not in request.fixturenames and "client" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    backend.restore()
    yield
    with app.app_context():
        db.session.remove()


@pytest.fixture
def ctx(app):
    """An app context for direct database checks.

    Never make client requests inside it: Flask reuses an active app context for
    requests, so `g` (and Flask-Login's cached user) would leak between clients.
    Use `with app.app_context():` blocks around the checks instead when a test
    mixes requests and queries."""
    with app.app_context():
        yield
        db.session.remove()


@pytest.fixture
def client(app):
    return app.test_client()


_CSRF_META = re.compile(r'name="csrf-token" content="([^"]+)"')
_CSRF_INPUT = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|id="csrf_token" name="csrf_token" type="hidden" value="([^"]+)"')


def csrf_token(client, url="/"):
    """The CSRF token of the client's session, read from a page like a browser would."""
    html = client.get(url, follow_redirects=True).get_data(as_text=True)
    m = _CSRF_META.search(html) or _CSRF_INPUT.search(html)
    assert m, "no CSRF token on " + url
    return next(g for g in m.groups() if g)


def login(client, username, password=DEMO_PASSWORD):
    html = client.get("/login/").get_data(as_text=True)
    m = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    data = {"username": username, "password": password}
    if m:
        data["csrf_token"] = m.group(1)
    resp = client.post("/login/", data=data, follow_redirects=True)
    return resp


def post(client, url, data=None, **kwargs):
    """POST with the session's CSRF token (as a form in a browser would)."""
    data = dict(data or {})
    data.setdefault("csrf_token", csrf_token(client))
    return client.post(url, data=data, **kwargs)


@pytest.fixture
def login_as(app):
    """login_as('clerk_a') -> a logged-in test client."""

    def _login(username, password=DEMO_PASSWORD):
        c = app.test_client()
        resp = login(c, username, password)
        assert resp.status_code == 200
        return c

    return _login


# ---------------------------------------------------------------- browser


class _ServerThread(threading.Thread):
    def __init__(self, app):
        super().__init__(daemon=True)
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port

    def run(self):
        self.server.serve_forever()


@pytest.fixture(scope="session")
def _server(app):
    t = _ServerThread(app)
    t.start()
    yield f"http://127.0.0.1:{t.port}"
    t.server.shutdown()


@pytest.fixture
def live_server(_server):
    return _server


CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def _browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(_browser):
    context = _browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    yield pg
    context.close()


ARTIFACTS = os.path.join(os.path.dirname(__file__), "_artifacts")


def browser_login(page, base_url, username, password=DEMO_PASSWORD):
    page.goto(base_url + "/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state("networkidle")


def screenshot(page, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, name + ".png")
    page.screenshot(path=path, full_page=True)
    return path
