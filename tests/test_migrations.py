"""The migrations own the schema: they build an empty database from scratch
(FAB's tables included), agree with the models, and go back down to base.

On SQLite each test uses its own file; with TEST_DATABASE_URL=postgresql...
each uses its own freshly created database on that server.
"""
import os
import subprocess
import sys
import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from app import create_app
from app.extensions import db
from tests.conftest import IS_PG, PG_URL, _config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAB_TABLES = {"ab_user", "ab_role", "ab_permission", "ab_view_menu", "ab_permission_view",
              "ab_permission_view_role", "ab_user_role", "ab_register_user"}
OUR_TABLES = {"region", "unit", "person", "person_unit_history", "hour_record", "attachment",
              "audit_log", "import_batch", "person_review"}


@pytest.fixture
def empty_db(tmp_path):
    """URL of an empty database, dropped afterwards."""
    if not IS_PG:
        yield "sqlite:///" + str(tmp_path / "empty.db")
        return
    base = make_url(PG_URL)
    name = f"{base.database}_mig_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def fresh_app(empty_db):
    application = create_app(_config(empty_db))
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def tables(app):
    with app.app_context():
        names = set(inspect(db.engine).get_table_names())
        db.engine.dispose()
    return names


def test_upgrade_builds_every_table_from_scratch(fresh_app):
    assert tables(fresh_app) == set()
    with fresh_app.app_context():
        upgrade()
    built = tables(fresh_app)
    assert FAB_TABLES <= built, FAB_TABLES - built
    assert OUR_TABLES <= built, OUR_TABLES - built
    # every table the models declare, whoever added it
    assert set(db.metadata.tables) <= built, set(db.metadata.tables) - built
    assert "alembic_version" in built


def test_models_and_migrations_agree(fresh_app):
    """`flask db check`: autogenerate against the migrated database finds nothing to do."""
    with fresh_app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            mc = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(mc, db.metadata)
        db.engine.dispose()
    assert diff == [], "models and migrations differ:\n" + "\n".join(map(repr, diff))


def test_downgrade_to_base_and_up_again(fresh_app):
    with fresh_app.app_context():
        upgrade()
        downgrade(revision="base")
    assert tables(fresh_app) <= {"alembic_version"}
    with fresh_app.app_context():
        upgrade()
    assert OUR_TABLES | FAB_TABLES <= tables(fresh_app)


def test_the_schema_holds_the_demo_world(fresh_app):
    """The first start (migrations, roles, regions, demo) works on the migrated schema."""
    from app.models import CEUser, HourRecord, Region
    from app.services.setup import initialize

    with fresh_app.app_context():
        initialize(demo=True)
        initialize(demo=True)  # idempotent
        assert db.session.query(Region).filter(Region.code.like("32%")).count() > 100
        assert db.session.query(HourRecord).count() > 200
        assert db.session.query(CEUser).count() >= 12
        db.session.remove()
        db.engine.dispose()


def test_flask_db_upgrade_command(empty_db):
    """The command the README gives, in a subprocess, on an empty database."""
    env = dict(os.environ, FLASK_APP="run.py", DATABASE_URL=empty_db, DEMO="0")
    env.pop("TEST_DATABASE_URL", None)
    out = subprocess.run([sys.executable, "-m", "flask", "db", "upgrade"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    heads = subprocess.run([sys.executable, "-m", "flask", "db", "heads"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert heads.returncode == 0, heads.stderr[-3000:]
    assert len([line for line in heads.stdout.splitlines() if "(head)" in line]) == 1, heads.stdout
    current = subprocess.run([sys.executable, "-m", "flask", "db", "current"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    assert "(head)" in current.stdout, current.stdout + current.stderr
    engine = create_engine(empty_db)
    names = set(inspect(engine).get_table_names())
    engine.dispose()
    assert FAB_TABLES | OUR_TABLES <= names


def test_foreign_keys_are_enforced_on_every_database(app):
    """SQLite ignores foreign keys unless each connection asks: the app asks, so a
    unit with persons cannot vanish on the embedded database either."""
    from sqlalchemy import delete
    from sqlalchemy.exc import IntegrityError

    from app.models import Unit

    with app.app_context():
        with pytest.raises(IntegrityError):
            db.session.execute(delete(Unit).where(Unit.id == 1))
            db.session.flush()
        db.session.rollback()
        assert db.session.get(Unit, 1) is not None
