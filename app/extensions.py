"""Unbound extensions; create_app() binds them."""
import sys
import time
from collections.abc import Sequence

from flask_appbuilder import Model
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect

# One metadata for FAB's security tables and ours, so Alembic sees both.
db = SQLAlchemy(model_class=Model)
migrate = Migrate()
csrf = CSRFProtect()
# AppBuilder is created per app in create_app() (FAB keeps views and menus on
# the instance); reach it as current_app.appbuilder.


def enforce_sqlite_foreign_keys(dbapi_connection, connection_record):
    """SQLite ignores foreign keys unless asked, per connection: without this a unit
    with persons could be deleted on the embedded database and not on PostgreSQL.
    Registered by create_app() on the Engine class ('connect' event)."""
    if type(dbapi_connection).__module__.startswith(("sqlite3", "pysqlite")):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


# ---------------------------------------------------------------------------
# PostgreSQL: prepared statements for the statements of fixed shape.
#
# Loading the signed-in user with its roles, groups, unit and person joins nine
# tables: planning it takes ~1 ms, on every request.  A prepared statement is
# planned once (PostgreSQL switches it to a generic plan).  Generic plans are
# only safe for statements whose best plan does not depend on the values (a
# lookup by key): a grid's page of a whole city with a deep offset, planned
# generically, walked the wrong index (40 ms instead of 8).  So psycopg's
# automatic preparing (any statement at its fifth execution) is off, and a
# statement asks to be prepared with the execution option `PREPARED`.
#
# psycopg forgets every prepared statement when its connection rolls back, and
# a request ends by rolling back (the pool resets each connection it gets
# back).  So a GET or HEAD on PostgreSQL reads without a transaction
# (autocommit): no BEGIN before its first statement, no COMMIT or ROLLBACK
# after its last, two round trips less, and nothing to roll back.  Under
# PostgreSQL's READ COMMITTED each statement reads its own snapshot inside a
# transaction too, so the reads see what they would have seen.  The first
# statement that could write (anything but a compiled SELECT: DML, DDL, text,
# SELECT ... FOR UPDATE) or streams from a server-side cursor (yield_per) opens
# a transaction as usual, and the request's end rolls back whatever was not
# committed.  A GET that began otherwise (after an idle connection's ping)
# ends with COMMIT when it wrote nothing.

PREPARED = {"ce_prepare": True}
_WRITE_FLAG = "ce_wrote"
_READING = "ce_reading"  # the connection was put in autocommit for a GET's reads
_SAFE_METHODS = frozenset({"GET", "HEAD"})


def _safe_request():
    from flask import has_request_context, request

    return has_request_context() and request.method in _SAFE_METHODS


def read_without_transaction(conn):
    """Engine 'begin': a GET or HEAD on psycopg starts reading in autocommit."""
    if conn.dialect.driver != "psycopg" or not _safe_request():
        return
    from psycopg.pq import TransactionStatus

    dbapi_connection = conn.connection.dbapi_connection
    if dbapi_connection.autocommit or dbapi_connection.info.transaction_status != TransactionStatus.IDLE:
        return  # in a transaction already (a ping), or autocommit set elsewhere
    dbapi_connection.autocommit = True
    conn.info[_READING] = True


def _could_write(context):
    compiled = getattr(context, "compiled", None)
    statement = getattr(compiled, "statement", None)
    return not getattr(statement, "is_select", False) or getattr(statement, "_for_update_arg", None) is not None


def mark_writes(conn, cursor, statement, parameters, context, executemany):
    """Engine 'before_cursor_execute': anything but a compiled SELECT (writes,
    DDL, text statements, SELECT ... FOR UPDATE) marks the connection's
    transaction as writing, and opens a transaction if it was reading in
    autocommit; so does a streamed (server-side cursor) read."""
    writes = _could_write(context)
    if writes:
        conn.info[_WRITE_FLAG] = True
    if conn.info.get(_READING) and (writes or context.execution_options.get("stream_results")):
        # Idle in autocommit: psycopg sends BEGIN before this statement.
        conn.connection.dbapi_connection.autocommit = False
        del conn.info[_READING]


def forget_writes(conn):
    """Engine 'commit' / 'rollback': a new transaction has written nothing yet."""
    conn.info.pop(_WRITE_FLAG, None)


def end_reading(dbapi_connection, connection_record):
    """Pool 'checkin': the connection goes back to the pool out of autocommit."""
    if connection_record.info.pop(_READING, None) and dbapi_connection is not None:
        try:
            dbapi_connection.autocommit = False
        except Exception:  # a broken connection: the pool discards it
            pass


def commit_read_only_request(exc):
    """Teardown of a GET or HEAD on PostgreSQL that raised nothing and wrote
    nothing in a transaction (one begun before the request could choose
    autocommit): COMMIT instead of the rollback to come (see above)."""
    from flask import request

    if exc is not None or request.method not in _SAFE_METHODS:
        return
    session = db.session()  # this request's
    if not session.in_transaction() or session.new or session.dirty or session.deleted:
        return
    conn = session.connection()
    if conn.dialect.name == "postgresql" and not conn.info.get(_WRITE_FLAG) and not conn.info.get(_READING):
        session.commit()


def no_automatic_prepare(dbapi_connection, connection_record):
    """Engine 'connect': psycopg prepares only the statements that ask for it
    (a threshold no statement reaches; None would refuse those too); its
    cursors describe their columns when asked (_lazy_description_cursor)."""
    if hasattr(dbapi_connection, "prepare_threshold"):
        dbapi_connection.prepare_threshold = sys.maxsize
        dbapi_connection.cursor_factory = _lazy_description_cursor()


# psycopg builds a Column object per result column every time a cursor's
# `description` is read, and SQLAlchemy reads it after every statement only to
# see whether rows came back: with its result metadata cached per compiled
# statement it never looks at the columns again.  The signed-in user's
# statement alone has 44 columns: 0.25 ms of a 3.5 ms page (py-spy).  The
# description below is the same list, made on first use from the result it was
# taken from.


class _ResultView:
    """What psycopg's Column reads from a cursor, frozen at one result."""

    __slots__ = ("pgresult", "_encoding", "adapters")

    def __init__(self, cursor):
        self.pgresult, self._encoding, self.adapters = cursor.pgresult, cursor._encoding, cursor.adapters


class LazyDescription(Sequence):
    __slots__ = ("_view", "_n", "_columns")

    def __init__(self, cursor, n):
        self._view, self._n, self._columns = _ResultView(cursor), n, None

    def _all(self):
        if self._columns is None:
            from psycopg import Column

            self._columns = [Column(self._view, i) for i in range(self._n)]
        return self._columns

    def __len__(self):
        return self._n

    def __getitem__(self, index):
        return self._all()[index]

    def __eq__(self, other):
        return list(self) == list(other)

    def __repr__(self):
        return repr(self._all())


_CURSOR_CLASS = None


def _lazy_description_cursor():
    global _CURSOR_CLASS
    if _CURSOR_CLASS is None:
        import psycopg
        from psycopg.pq import ExecStatus

        with_tuples = (ExecStatus.TUPLES_OK, ExecStatus.SINGLE_TUPLE, ExecStatus.TUPLES_CHUNK)

        class LazyDescriptionCursor(psycopg.Cursor):
            @property
            def description(self):
                # psycopg's own test (BaseCursor.description), then the lazy list.
                res = self.pgresult
                if res and (res.nfields or res.status in with_tuples):
                    return LazyDescription(self, res.nfields)
                return None

        _CURSOR_CLASS = LazyDescriptionCursor
    return _CURSOR_CLASS


def execute_prepared(cursor, statement, parameters, context):
    """Dialect 'do_execute': a statement with the execution option PREPARED is
    prepared on the server (psycopg), once per connection."""
    if context.execution_options.get("ce_prepare") and context.dialect.driver == "psycopg":
        cursor.execute(statement, parameters, prepare=True)
        return True
    return None


def keep_prepared_statements(app):
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    for name, listener in (("connect", no_automatic_prepare), ("do_execute", execute_prepared),
                           ("begin", read_without_transaction), ("before_cursor_execute", mark_writes),
                           ("commit", forget_writes), ("rollback", forget_writes)):
        if not event.contains(Engine, name, listener):
            event.listen(Engine, name, listener)
    if not event.contains(Pool, "checkin", end_reading):
        event.listen(Pool, "checkin", end_reading)
    # Runs before Flask-SQLAlchemy's teardown (app context) closes the session.
    app.teardown_request(commit_read_only_request)


# ---------------------------------------------------------------------------
# Stale connections.  A pooled connection can be dead when it is taken (the
# database restarted, a firewall dropped an idle connection).  SQLAlchemy's
# pool_pre_ping asks the database on every checkout, which is one more round
# trip on every request.  Here only a connection that sat in the pool longer
# than DB_PING_IDLE_SECONDS is asked first; a restart or an idle timeout leaves
# connections idle for longer than that.  A connection that does not answer is
# replaced (DisconnectionError makes the pool connect again).

_CHECKED_IN = "ce_checked_in"


def _remember_checkin(dbapi_connection, connection_record):
    connection_record.info[_CHECKED_IN] = time.monotonic()


def _ping_when_idle(dialect, idle_seconds):
    from sqlalchemy.exc import DisconnectionError

    def checkout(dbapi_connection, connection_record, connection_proxy):
        since = connection_record.info.get(_CHECKED_IN)
        if since is not None and time.monotonic() - since <= idle_seconds:
            return
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as exc:  # what a dead connection raises depends on the driver
            raise DisconnectionError(f"idle connection did not answer: {exc}") from exc
        if not alive:
            raise DisconnectionError("idle connection did not answer")

    return checkout


def ping_idle_connections(app):
    """Pool events on the app's engines: ping a connection idle for longer than
    DB_PING_IDLE_SECONDS before handing it out (None: never)."""
    from sqlalchemy import event

    idle_seconds = app.config.get("DB_PING_IDLE_SECONDS")
    if idle_seconds is None:
        return
    with app.app_context():
        engines = list(db.engines.values())
    for engine in engines:
        event.listen(engine, "connect", _remember_checkin)
        event.listen(engine, "checkin", _remember_checkin)
        event.listen(engine, "checkout", _ping_when_idle(engine.dialect, float(idle_seconds)))
