"""Unbound extensions; create_app() binds them."""
import time

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
