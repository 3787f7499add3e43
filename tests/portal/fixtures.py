"""Fixtures of the portal login tests: the ticket-scheme test portal (Python,
tests/portal/ticket_portal.py) and a real OpenID Connect provider (the npm
package oidc-provider, tests/oidc/provider.mjs, run by node), both on loopback,
and the app configured for one or the other.

Import them into a test module: `from tests.portal.fixtures import *`.
"""
import datetime
import json
import os
import select
import shutil
import subprocess
import time

import pytest

from app.services.demo import credit_code, resident_id
from tests.portal.ticket_portal import PortalServer, make_portal

__all__ = ["ticket_portal", "oidc_op", "ticket_login", "oidc_login"]

HERE = os.path.dirname(os.path.abspath(__file__))
OIDC_DIR = os.path.join(os.path.dirname(HERE), "oidc")

SERVICE_CODE = "ce-hours-test"
SERVICE_PWD = "portal-servicepwd-5f1c9a"  # must never appear in a log or a request
OIDC_CLIENT_ID = "ce-hours"
OIDC_SECRET = "oidc-client-secret-7d2e41"

ZHANGSAN_ID = resident_id("320102", datetime.date(1988, 5, 12), 11)  # demo person with an account
NEW_PERSON_ID = resident_id("320105", datetime.date(1993, 6, 18), 521)  # nobody yet
UNIT_A_CODE = credit_code(1, "320102")  # 南京金陵科技有限公司, admin unitadmin_a
NEW_UNIT_CODE = credit_code(99, "320105")
BAD_ID = NEW_PERSON_ID[:-1] + ("0" if NEW_PERSON_ID[-1] != "0" else "1")  # wrong check digit


def ticket_accounts():
    """The test portal's accounts, field names as the provincial portal's."""
    return {
        "zhangsan": {"username": "张三", "idnum": ZHANGSAN_ID, "mobile": "13800000011"},
        "newperson": {"username": "周新人", "idnum": NEW_PERSON_ID, "mobile": "13900000521"},
        "unit_a": {"username": "金陵科技法人", "corname": "南京金陵科技有限公司", "uscc": UNIT_A_CODE,
                   "mobile": "13700000001"},
        "newunit": {"username": "建邺法人", "corname": "南京建邺数字科技有限公司", "uscc": NEW_UNIT_CODE,
                    "mobile": "13700000099"},
        "badid": {"username": "错号码", "idnum": BAD_ID, "mobile": "13900000000"},
        "noname": {"idnum": NEW_PERSON_ID},
        "nocode": {"username": "无代码", "corname": "某公司"},
    }


def oidc_accounts():
    return {
        "zhangsan": {"name": "张三", "id_card": ZHANGSAN_ID, "phone_number": "13800000011"},
        "newperson": {"name": "周新人", "id_card": NEW_PERSON_ID, "phone_number": "13900000521"},
        "unit_a": {"name": "金陵科技法人", "org_name": "南京金陵科技有限公司", "credit_code": UNIT_A_CODE},
        "newunit": {"name": "建邺法人", "org_name": "南京建邺数字科技有限公司", "credit_code": NEW_UNIT_CODE},
    }


@pytest.fixture(scope="session")
def ticket_portal():
    portal = make_portal({SERVICE_CODE: SERVICE_PWD}, ticket_accounts())
    server = PortalServer(portal, int(os.environ.get("CE_TEST_TICKET_PORTAL_PORT", "0")))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def oidc_op(_server, tmp_path_factory):
    """A real OpenID Connect provider (oidc-provider under node) for the live server.
    Yields {"issuer", "accounts_file", "skew(seconds)"}; its accounts are re-read
    from the file at every login, so a test may add some."""
    node = shutil.which("node")
    assert node, "node is needed for the OpenID Connect tests (scripts/system-deps.sh installs it)"
    if not os.path.isdir(os.path.join(OIDC_DIR, "node_modules", "oidc-provider")):
        # scripts/test.sh runs `npm ci` first; this is for a single test run.
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=OIDC_DIR, check=True, timeout=300,
                       stdout=subprocess.DEVNULL)
    accounts_file = tmp_path_factory.mktemp("oidc") / "accounts.json"
    accounts_file.write_text(json.dumps(oidc_accounts(), ensure_ascii=False), encoding="utf-8")
    env = dict(os.environ, OIDC_PORT=os.environ.get("CE_TEST_OIDC_PORT", "0"),
               OIDC_REDIRECT_URIS=f"{_server}/portal/callback/oidc",
               OIDC_POST_LOGOUT_URIS=f"{_server}/login/", OIDC_CLIENT_SECRET=OIDC_SECRET,
               OIDC_ACCOUNTS_FILE=str(accounts_file))
    # stdin is a pipe the provider watches: it exits when this process ends, however it ends.
    proc = subprocess.Popen([node, os.path.join(OIDC_DIR, "provider.mjs")], cwd=OIDC_DIR, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 30
        issuer = None
        while time.monotonic() < deadline and issuer is None:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                line = proc.stdout.readline()
                if not line:
                    break
                if line.startswith("{"):
                    issuer = json.loads(line)["issuer"]
        assert issuer, "the OpenID Connect test provider did not start"

        def skew(seconds):
            import urllib.request

            urllib.request.urlopen(urllib.request.Request(f"{issuer}/__test/skew?seconds={int(seconds)}",
                                                          method="POST"), timeout=5).read()

        yield {"issuer": issuer, "accounts_file": accounts_file, "skew": skew}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _configure(app, settings):
    before = {k: app.config.get(k) for k in settings}
    app.config.update(settings)
    return before


@pytest.fixture
def ticket_login(app, ticket_portal):
    """The app with portal login by the ticket scheme, against the test portal."""
    url = ticket_portal.url
    before = _configure(app, {
        "PORTAL_PROVIDER": "ticket",
        "PORTAL_TICKET_LOGIN_URL": f"{url}/sso/login",
        "PORTAL_TICKET_TOKEN_URL": f"{url}/sso/token",
        "PORTAL_TICKET_USERINFO_URL": f"{url}/sso/userinfo",
        "PORTAL_TICKET_LOGOUT_URL": f"{url}/sso/logout",
        "PORTAL_TICKET_SERVICE_CODE": SERVICE_CODE,
        "PORTAL_TICKET_SECRET": SERVICE_PWD,
    })
    ticket_portal.app.config["calls"].clear()
    yield ticket_portal
    app.config.update(before)


@pytest.fixture
def oidc_login(app, oidc_op):
    """The app with portal login by OpenID Connect, against oidc-provider."""
    before = _configure(app, {
        "PORTAL_PROVIDER": "oidc",
        "PORTAL_OIDC_DISCOVERY_URL": oidc_op["issuer"] + "/.well-known/openid-configuration",
        "PORTAL_OIDC_CLIENT_ID": OIDC_CLIENT_ID,
        "PORTAL_OIDC_CLIENT_SECRET": OIDC_SECRET,
    })
    oidc_op["skew"](0)
    yield oidc_op
    oidc_op["skew"](0)
    app.config.update(before)
