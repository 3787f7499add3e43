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
