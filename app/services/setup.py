"""First start: schema, roles, reference data, demo data."""
from flask import current_app
from flask_migrate import upgrade


def initialize(demo=True):
    """Idempotent: run pending migrations, sync roles, load regions, and the demo
    world when asked and not yet present."""
    from app.services.demo import load_demo
    from app.services.reference import load_regions
    from app.services.roles_sync import sync_roles

    upgrade(directory=current_app.extensions["migrate"].directory)
    sync_roles()
    load_regions()
    if demo:
        load_demo()
