"""Unbound extensions; create_app() binds them."""
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
# PostgreSQL: prepared statements that outlive a request.
#
# psycopg prepares a statement on the server at its fifth execution on a
# connection, and PostgreSQL then skips planning it (loading the signed-in user
# with its roles, groups, unit and person is a seven-table join: ~1 ms of
# planning, on every request).  But psycopg forgets every prepared statement
# when its connection rolls back, and a request ends by rolling back (the pool
# resets each connection it gets back).  A transaction that wrote nothing
# commits to the same effect: a GET that wrote nothing ends with COMMIT.

_WRITE_FLAG = "ce_wrote"
_SAFE_METHODS = frozenset({"GET", "HEAD"})


def mark_writes(conn, cursor, statement, parameters, context, executemany):
    """Engine 'before_cursor_execute': anything but a compiled SELECT (writes,
    DDL, text statements) marks the connection's transaction as writing."""
    compiled = getattr(context, "compiled", None)
    if compiled is None or not getattr(compiled.statement, "is_select", False):
        conn.info[_WRITE_FLAG] = True


def forget_writes(conn):
    """Engine 'commit' / 'rollback': a new transaction has written nothing yet."""
    conn.info.pop(_WRITE_FLAG, None)


def commit_read_only_request(exc):
    """Teardown of a GET or HEAD on PostgreSQL that raised nothing and wrote
    nothing: COMMIT instead of the rollback to come (see above)."""
    from flask import request

    if exc is not None or request.method not in _SAFE_METHODS:
        return
    session = db.session()  # this request's
    if not session.in_transaction() or session.new or session.dirty or session.deleted:
        return
    conn = session.connection()
    if conn.dialect.name == "postgresql" and not conn.info.get(_WRITE_FLAG):
        session.commit()


def keep_prepared_statements(app):
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    for name, listener in (("before_cursor_execute", mark_writes), ("commit", forget_writes),
                           ("rollback", forget_writes)):
        if not event.contains(Engine, name, listener):
            event.listen(Engine, name, listener)
    # Runs before Flask-SQLAlchemy's teardown (app context) closes the session.
    app.teardown_request(commit_read_only_request)
