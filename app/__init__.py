"""Application factory."""
import os

from flask import Flask


def create_app(config_class=None):
    from config import Config

    app = Flask(__name__)
    app.config.from_object(config_class or Config)
    from app.security.roles import fab_roles

    app.config.setdefault("FAB_ROLES", fab_roles())
    os.makedirs(app.config["VAR_DIR"], exist_ok=True)
    hops = int(app.config.get("TRUSTED_PROXY_HOPS") or 0)
    if hops > 0:
        # The client's address and scheme as the trusted proxies saw them (the audit
        # log, the rate limits and the failed-login limits read request.remote_addr).
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)

    from flask_appbuilder import AppBuilder

    from app.extensions import csrf, db, migrate
    from app import models  # noqa: F401  (every mapper, before FAB security models are used)

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from app.extensions import enforce_sqlite_foreign_keys, ping_idle_connections

    if not event.contains(Engine, "connect", enforce_sqlite_foreign_keys):
        event.listen(Engine, "connect", enforce_sqlite_foreign_keys)
    from app.models import crypto

    crypto.init_app(app)
    db.init_app(app)
    ping_idle_connections(app)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(app.root_path), "migrations"))
    csrf.init_app(app)

    appbuilder = AppBuilder(update_perms=False)
    with app.app_context():
        appbuilder.init_app(app, db.session)
        from app import views
        from app.api import national as national_api

        views.register(appbuilder)
        national_api.register(appbuilder)
        appbuilder.post_init()
        from app.security import sessions

        sessions.init_app(app)  # server-side sessions, the second factor's gate, API token checks
        from app.services import sessions as session_services

        session_services.init_app(app)  # timeouts into the audit log

    from app.services import audit_chain

    audit_chain.init_app(app)

    from app import cli, web

    cli.register(app)
    web.register(app)
    return app
