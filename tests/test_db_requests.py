"""How a request's transaction begins and ends (app/extensions.py
keep_prepared_statements): on PostgreSQL a GET reads without a transaction
(autocommit), so psycopg keeps the statements it prepared on the server and no
BEGIN / COMMIT round trips are spent; its first statement that could write
opens a transaction.  A request that wrote and did not commit, on either
database, ends with a rollback: nothing it did is kept."""
import pytest
from flask import request
from sqlalchemy import event, func, select, text, update

from app import create_app
from app.extensions import csrf, db
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

    def transaction_states():
        """The driver's transaction state after a read, then after a write (or a
        SELECT ... FOR UPDATE with ?then=lock)."""
        dbapi_connection = db.session.connection().connection.dbapi_connection
        db.session.execute(select(func.count()).select_from(Unit)).scalar()
        states = [dbapi_connection.info.transaction_status.name]
        if request.args.get("then") == "lock":
            db.session.execute(select(Unit.id).where(Unit.id < 0).with_for_update()).all()
        else:
            db.session.execute(update(Unit).where(Unit.id < 0).values(name="x"))
        states.append(dbapi_connection.info.transaction_status.name)
        return " ".join(states)

    csrf.exempt(transaction_states)  # posted to below
    for view in (orm_write, core_write, text_write, read_only, read_then_fail, write_and_commit, streamed,
                 transaction_states):
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


@pytest.mark.skipif(not IS_PG, reason="psycopg's autocommit: run by the PostgreSQL pass of scripts/test.sh")
def test_a_get_reads_without_a_transaction_until_it_writes(probe_app):
    client = probe_app.test_client()
    # GET: the read leaves no transaction open (autocommit); the write opens one.
    assert client.get("/probe/transaction_states").get_data(as_text=True) == "IDLE INTRANS"
    assert client.get("/probe/transaction_states?then=lock").get_data(as_text=True) == "IDLE INTRANS"
    # POST: a transaction from the first statement on.
    assert client.post("/probe/transaction_states").get_data(as_text=True) == "INTRANS INTRANS"
    # The connection went back to the pool out of autocommit.
    with probe_app.app_context():
        assert db.engine.pool.checkedin() == 1
        with db.engine.connect() as conn:
            assert conn.connection.dbapi_connection.autocommit is False
        db.session.remove()


@pytest.mark.skipif(not IS_PG, reason="psycopg's prepared statements: run by the PostgreSQL pass of scripts/test.sh")
def test_statements_of_fixed_shape_stay_prepared_and_no_others(app, login_as, monkeypatch):
    """Prepared once, and kept from request to request: the signed-in user's
    statement, a grid's rows-by-key statement, and a unit's page (conditions
    that are exactly an index's leading columns, newest first: no value can
    change its plan).  Never prepared: pages whose best plan depends on the
    values (a region, a sort; a generic plan walked the wrong index for a city's
    deep page)."""
    from app.views import datamodel

    # (Both sign in first: psycopg forgets its prepared statements when a
    # connection rolls back, as it does after a login's transaction.)
    clerk, bureau = login_as("clerk_a"), login_as("bureau_nj")
    unit_pages = ["/hourrecordview/list/", f"/hourrecordview/list/?_flt_0_year={YEAR}&_flt_0_category=PRO"]
    for url in unit_pages * 8:
        assert clerk.get(url).status_code == 200
    sorted_page = f"/hourrecordview/list/?_flt_0_year={YEAR}"  # (unit, year): no index gives it in id order
    bureau_page = "/hourrecordview/list/?psize_HourRecordView=5"
    for _ in range(8):
        assert clerk.get(sorted_page).status_code == 200
        assert bureau.get(bureau_page).status_code == 200
    # A page that skips more than MERGE_SKIP_MAX rows reads its ids, then its rows by key.
    monkeypatch.setattr(datamodel, "MERGE_SKIP_MAX", 0)
    for _ in range(8):
        assert clerk.get("/hourrecordview/list/?psize_HourRecordView=5&page_HourRecordView=1").status_code == 200
    with app.app_context():
        assert db.engine.pool.checkedin() == 1  # the connection every request used
        plans = dict(db.session.execute(text("SELECT statement, generic_plans FROM pg_prepared_statements")).all())
        db.session.remove()
    prepared = list(plans)
    assert len([s for s in prepared if "FROM ab_user LEFT OUTER JOIN" in s]) == 1
    assert len([s for s in prepared if s.startswith("SELECT hour_record.id, person_1.name")]) == 1
    pages = [s for s in prepared if "FROM hour_record \nWHERE" in s]
    # the unit's two pages and its page of ids (MERGE_SKIP_MAX), with their counts from the tally
    assert len(pages) == 3, [s[:300] for s in prepared]
    assert all("hour_record.unit_id = $" in s and "sum(hour_tally.n)" in s for s in pages), pages
    assert [s for s in pages if "hour_record.category = $" in s]
    assert not [s for s in prepared if "hour_record.region_code" in s or "count(" in s], prepared
    assert not [s for s in pages if "category" not in s and "year" in s], prepared  # the sorted page
    # The unit's pages with their rows: LIMIT and OFFSET written as numbers, so
    # that PostgreSQL settles on the generic plan after its five custom ones
    # (bound, it costs the generic plan as reading a tenth of the rows and plans
    # every execution anew).  The page of ids skips many rows: bound as before.
    merged = [s for s in pages if "page_row" in s]
    assert len(merged) == 2 and all(plans[s] > 0 and "LIMIT 26 OFFSET 0" in s for s in merged), \
        [(s[-200:], plans[s]) for s in pages]


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


@pytest.mark.skipif(not IS_PG, reason="psycopg's cursors: run by the PostgreSQL pass of scripts/test.sh")
def test_a_cursor_describes_the_result_it_was_read_from(app):
    """psycopg builds the description's columns when they are used, not at each
    statement (extensions.LazyDescription): the same names and types as
    psycopg's own, and those of the result it was taken from, even after the
    cursor ran another statement."""
    import psycopg

    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            cur = raw.cursor()
            assert type(cur).__name__ == "LazyDescriptionCursor"
            cur.execute("SELECT 1 AS one, 'x'::text AS two, now() AS three")
            lazy = cur.description
            plain = psycopg.Cursor.description.fget(cur)
            assert [(c.name, c.type_code) for c in lazy] == [(c.name, c.type_code) for c in plain]
            assert len(lazy) == 3 and lazy[1].name == "two"
            cur.execute("SELECT 2 AS other")
            assert [c.name for c in lazy] == ["one", "two", "three"]
            assert [c.name for c in cur.description] == ["other"]
            cur.execute("SET search_path TO public")
            assert cur.description is None
        finally:
            raw.close()
