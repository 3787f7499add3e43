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


audit = AppGroup("audit", help="tamper-evident audit log: verify the chains, archive old rows")
ce.add_command(audit)


@audit.command("verify")
@click.option("--record", is_flag=True,
              help="run as the nightly job: record the outcome (shown to the auditors when it fails)")
def audit_verify_cmd(record):
    """Check every HMAC-SM3 chain; exit 1 naming the first row changed, removed or inserted."""
    if record:
        from app.services import audit_checks

        job = audit_checks.submit(audit_checks.NIGHTLY, inline=True)
        check = audit_checks.check_of_job(job.id)
        if check is None:  # the job itself failed (its reason is on the job)
            click.echo(f"TAMPERED or unchecked: job {job.id} {job.state}: {job.message}", err=True)
            sys.exit(1)
        for f in audit_checks.findings_of(check):
            click.echo("TAMPERED: " + f["message"], err=True)
        if not check.ok:
            sys.exit(1)
        click.echo(f"audit log ok: {check.rows_checked} rows in their chains (check {check.id}, job {job.id})")
        return
    from app.services.audit_chain import verify

    checked, findings = verify()
    for f in findings:
        click.echo("TAMPERED: " + str(f), err=True)
    if findings:
        sys.exit(1)
    click.echo(f"audit log ok: {checked} rows in their chains")


@audit.command("archive")
@click.option("--out", "out_dir", required=True, help="folder for the sealed file")
def audit_archive_cmd(out_dir):
    """Write the rows older than AUDIT_KEEP_DAYS (>= 180) to a sealed file, then remove them."""
    from app.services.audit_chain import archive

    path, count = archive(out_dir)
    click.echo(f"archived {count} rows to {path}" if path else "nothing older than AUDIT_KEEP_DAYS")


@audit.command("check-archive")
@click.argument("path")
def audit_check_archive_cmd(path):
    """Check a sealed archive file (exit 1 when it was altered)."""
    from app.services.audit_chain import check_archive_file

    if not check_archive_file(path):
        click.echo(f"TAMPERED: {path} does not match its seal", err=True)
        sys.exit(1)
    click.echo(f"{path}: seal ok")


totals = AppGroup("totals", help="per-person and per-unit yearly totals (达标)")
ce.add_command(totals)


@totals.command("rebuild")
def totals_rebuild_cmd():
    """Recompute the totals from the records; rewrite only what differs (0 when right)."""
    from app.extensions import db
    from app.services.totals import rebuild

    changed = rebuild()
    db.session.commit()
    for name, n in changed.items():
        click.echo(f"{name}: {n} changed")
    click.echo(f"total changes: {sum(changed.values())}")


@totals.command("check")
def totals_check_cmd():
    """Compare the totals with the records without writing; exit 1 when they differ."""
    from app.services.totals import differences

    diff = differences()
    for name, n in diff.items():
        click.echo(f"{name}: {n} differ")
    if any(diff.values()):
        raise SystemExit(1)


@ce.group("sessions")
def sessions_group():
    """Server-side sessions."""


@sessions_group.command("sweep")
def sessions_sweep_cmd():
    """End the sessions past their idle or absolute limit (each recorded once in the
    audit log as 登录超时) and delete long-ended ones; run every few minutes (cron)."""
    from app.security import sessions

    ended = sessions.end_expired()
    deleted = sessions.purge()
    click.echo(f"timed out: {ended}  deleted: {deleted}")


@ce.command("purge")
def purge_cmd():
    """Nightly (cron): sessions past their limits ended and audited, long-ended ones
    deleted; job result files, import files and export leftovers older than
    JOB_KEEP_DAYS deleted."""
    from app.security import sessions
    from app.services import jobs

    ended = sessions.end_expired()
    deleted = sessions.purge()
    jobs.purge_old_results()  # and jobs.purge_old_files()
    click.echo(f"sessions timed out: {ended}  sessions deleted: {deleted}  ok")


keys = AppGroup("keys", help="personal data keys (SM4 / HMAC-SM3, DATA_KEY_FILE)")
ce.add_command(keys)


@keys.command("rotate")
@click.option("--batch", default=2000, show_default=True, help="rows re-encrypted per transaction")
@click.option("--settle", type=float, default=None,
              help="seconds to wait for every process to read the new key (default: 2 x DATA_KEY_RELOAD_SECONDS)")
def keys_rotate_cmd(batch, settle):
    """Make a new data key active and re-encrypt every value with it, in batches, while the app serves."""
    from app.services.data_keys import rotate

    kid, n = rotate(batch=batch, settle_seconds=settle, echo=click.echo)
    click.echo(f"ok: {n} values now under key {kid}; keep the old keys in the file for older backups")


@keys.command("status")
def keys_status_cmd():
    """The active key and how many stored values each key encrypts."""
    from app.services.data_keys import status

    st = status()
    click.echo(f"active: {st['active']}  keys: {', '.join(st['keys'])}")
    for name, counts in st["rows"].items():
        click.echo(f"{name}: " + (", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "empty"))


@ce.command("requirement")
@click.option("--year", type=int, required=True, help="认定年度 (0: every year without its own)")
@click.option("--total", required=True, help="年度总学时")
@click.option("--ratio", required=True, help="专业科目比例 (e.g. 0.6667)")
@click.option("--public", default=None, help="公需科目最低学时 (optional)")
def requirement_cmd(year, total, ratio, public):
    """Set a year's requirement and recompute the met flags."""
    from app.extensions import db
    from app.services.requirement import set_requirement

    n = set_requirement(year, total, ratio, public)
    db.session.commit()
    click.echo(f"met flags changed: {n}")


national_account = AppGroup("national-account", help="部省对接 machine accounts (role NationalSync)")
ce.add_command(national_account)


@national_account.command("create")
@click.option("--region", required=True, help="region code of the account's scope (32, 3201, 320102)")
@click.option("--username", default=None, help="default: national_<region>")
def national_account_create(region, username):
    """Create the national system's account; print its password once."""
    from app.services.accounts import create_national_account
    from app.services.errors import DomainError

    try:
        user, password = create_national_account(region, username)
    except DomainError as e:
        raise click.ClickException(str(e))
    click.echo(f"username: {user.username}")
    click.echo(f"region:   {user.region_code}")
    click.echo(f"password: {password}")
    click.echo("The password is shown once and stored only as a hash: hand it over now.")


@national_account.command("reset")
@click.argument("username")
def national_account_reset(username):
    """Give a national account a new password (printed once)."""
    from app.services.accounts import reset_national_account
    from app.services.errors import DomainError

    try:
        user, password = reset_national_account(username)
    except DomainError as e:
        raise click.ClickException(str(e))
    click.echo(f"username: {user.username}")
    click.echo(f"password: {password}")
    click.echo("The password is shown once and stored only as a hash: hand it over now.")


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
