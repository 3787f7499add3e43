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
