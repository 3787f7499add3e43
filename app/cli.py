"""`flask ce ...` (setup) and `flask translate ...` (pybabel workflow)."""
import os
import subprocess
import sys

import click
from flask import current_app
from flask.cli import AppGroup

ce = AppGroup("ce", help="继续教育学时管理系统: setup commands")
translate = AppGroup("translate", help="pybabel workflow: extract, update, compile")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@ce.command("sync-roles")
def sync_roles_cmd():
    """Create / update the roles and their permissions."""
    from app.services.roles_sync import sync_roles

    click.echo("roles: " + ", ".join(sync_roles()))


@ce.command("load-regions")
def load_regions_cmd():
    from app.services.reference import load_regions

    click.echo(f"regions added: {load_regions()}")


@ce.command("load-demo")
def load_demo_cmd():
    from app.services.demo import load_demo

    result = load_demo()
    click.echo("demo data already present" if result is False else f"demo records: {result}")


@ce.command("init")
@click.option("--demo/--no-demo", default=None, help="load demo data (default: config DEMO)")
def init_cmd(demo):
    """Migrate, sync roles, load regions (and demo data)."""
    from app.services.setup import initialize

    initialize(demo=current_app.config["DEMO"] if demo is None else demo)
    click.echo("ok")


@ce.group("admins")
def admins():
    """三员分立: the system, security and audit administrators."""


@admins.command("create")
def admins_create():
    """Create sysadmin / secadmin / auditor with one-time passwords (printed once,
    to be changed at first login)."""
    from app.services.admins import create_administrators

    for username, label, password in create_administrators():
        if password is None:
            click.echo(f"{username} ({label}): already exists, left unchanged")
        else:
            click.echo(f"{username} ({label}): one-time password {password}")


def _pybabel(*args):
    subprocess.check_call([sys.executable, "-m", "babel.messages.frontend", *args], cwd=ROOT)


def _extract():
    _pybabel("extract", "-F", "babel.cfg", "-k", "_l", "-k", "lazy_gettext", "-k", "N_",
             "-o", "translations/messages.pot", ".")


@translate.command("extract")
def extract():
    """Write translations/messages.pot from the code and templates."""
    _extract()


@translate.command("update")
def update():
    """Extract, then merge new strings into the zh and en catalogs."""
    _extract()
    _pybabel("update", "-i", "translations/messages.pot", "-d", "translations", "--no-fuzzy-matching", "-w", "120")


@translate.command("compile")
def compile_():
    _pybabel("compile", "-d", "translations")


def register(app):
    app.cli.add_command(ce)
    app.cli.add_command(translate)
