"""How a request's transaction ends, and how the pool checks its connections
(app/extensions.py ping_idle_connections).  A request that wrote and did not
commit, on either database, ends with a rollback: nothing it did is kept."""
import pytest
from sqlalchemy import event, func, select, text, update

from app import create_app
from app.extensions import db
from app.models import AuditLog, Unit
from tests.conftest import IS_PG, _config

YEAR = __import__("datetime").date.today().year - 1


@pytest.fixture
def probe_app(app, backend):
    """A second app on the test database with GET routes that write and never commit."""
    probe = create_app(_config(backend.work_url))

    def orm_write():
        db.session.add(AuditLog(action="probe", object_type="Probe"))
        db.session.flush()
        return "ok"

    def core_write():
        db.session.execute(update(Unit).values(name="探针单位"))
        return "ok"

    def text_write():
        db.session.execute(text("UPDATE unit SET name = '探针单位'"))
        return "ok"

    def read_only():
        return str(db.session.execute(select(func.count()).select_from(Unit)).scalar())

    def read_then_fail():
        db.session.execute(select(func.count()).select_from(Unit)).scalar()
        db.session.execute(update(Unit).values(name="探针单位"))
        raise RuntimeError("after the write")

    def write_and_commit():
        db.session.execute(select(func.count()).select_from(Unit)).scalar()
        db.session.add(AuditLog(action="probe", object_type="Probe"))
        db.session.commit()
        return "ok"

    def streamed():
        rows = db.session.execute(select(Unit.id).order_by(Unit.id).execution_options(yield_per=2))
        return str(len(rows.scalars().all()))

    for view in (orm_write, core_write, text_write, read_only, read_then_fail, write_and_commit, streamed):
        probe.add_url_rule("/probe/" + view.__name__, view.__name__, view, methods=["GET", "POST"])
    yield probe
    with probe.app_context():
        db.session.remove()
        db.engine.dispose()


def _stored(app):
    with app.app_context():
        probes = db.session.execute(select(func.count()).where(AuditLog.action == "probe")).scalar()
        renamed = db.session.execute(select(func.count()).where(Unit.name == "探针单位")).scalar()
        db.session.remove()
    return probes, renamed


@pytest.mark.parametrize("route", ["orm_write", "core_write", "text_write"])
def test_a_get_that_writes_without_committing_stores_nothing(probe_app, route):
    client = probe_app.test_client()
    assert client.get("/probe/read_only").status_code == 200
    assert client.get("/probe/" + route).get_data(as_text=True) == "ok"
    assert _stored(probe_app) == (0, 0)


def test_a_get_that_fails_after_reading_and_writing_stores_nothing(probe_app):
    probe_app.config["PROPAGATE_EXCEPTIONS"] = False
    client = probe_app.test_client()
    assert client.get("/probe/read_then_fail").status_code == 500
    assert _stored(probe_app) == (0, 0)


def test_a_get_that_commits_its_write_stores_it(probe_app):
    client = probe_app.test_client()
    assert client.get("/probe/write_and_commit").get_data(as_text=True) == "ok"
    assert _stored(probe_app) == (1, 0)


def test_a_streamed_read_in_a_get_gets_every_row(probe_app):
    """yield_per reads through a server-side cursor on PostgreSQL, which needs a
    transaction: the GET opens one for it."""
    with probe_app.app_context():
        units = db.session.execute(select(func.count()).select_from(Unit)).scalar()
        db.session.remove()
    assert units > 2
    assert probe_app.test_client().get("/probe/streamed").get_data(as_text=True) == str(units)


@pytest.fixture
def ping_app(backend):
    """An app of its own on the test database, with its pings counted."""
    built = []

    def make(idle_seconds):
        cfg = _config(backend.work_url)
        cfg.DB_PING_IDLE_SECONDS = idle_seconds
        probe = create_app(cfg)
        with probe.app_context():
            engine = db.engine
        pings, connects = [], []
        real_ping = engine.dialect.do_ping
        engine.dialect.do_ping = lambda dbapi_connection: pings.append(1) or real_ping(dbapi_connection)
        event.listen(engine, "connect", lambda *a: connects.append(1))
        probe.add_url_rule("/probe/count", "count",
                           lambda: str(db.session.execute(select(func.count()).select_from(Unit)).scalar()))
        built.append(probe)
        return probe, engine, pings, connects

    yield make
    for probe in built:
        with probe.app_context():
            db.session.remove()
            db.engine.dispose()


def test_a_connection_used_a_moment_ago_is_not_pinged(ping_app):
    probe, _engine, pings, connects = ping_app(60)
    client = probe.test_client()
    answers = {client.get("/probe/count").get_data(as_text=True) for _ in range(5)}
    assert len(answers) == 1 and int(answers.pop()) > 0
    assert len(connects) == 1
    assert pings == []


def test_an_idle_connection_is_pinged_and_a_dead_one_replaced(ping_app):
    """Idle longer than DB_PING_IDLE_SECONDS (0 here): pinged before use.  A
    connection that died meanwhile (closed under the pool; on PostgreSQL, its
    server process terminated) is replaced and the request still answers."""
    probe, engine, pings, connects = ping_app(0)
    client = probe.test_client()
    assert client.get("/probe/count").status_code == 200
    assert len(connects) == 1
    before = len(pings)
    assert client.get("/probe/count").status_code == 200
    assert len(pings) == before + 1 and len(connects) == 1
    # Kill the pooled connection.
    with engine.connect() as conn:
        dbapi_connection = conn.connection.dbapi_connection
        if IS_PG:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    if IS_PG:
        killer = engine.pool._creator()
        killer.autocommit = True
        killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
        killer.close()
    else:
        dbapi_connection.close()
    resp = client.get("/probe/count")
    assert resp.status_code == 200 and int(resp.get_data(as_text=True)) > 0
    assert len(connects) == 2


