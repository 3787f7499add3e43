"""The Content-Security-Policy (issue 25) in a real browser: every main page of
every demo role (its menu, and from each grid the add form and the first row's
show and edit pages), with the policy on, in Chromium; any CSP violation (a
`securitypolicyviolation` event or a console message about the policy) fails.
Beside it, the headers themselves: a nonce per response, no unsafe-inline or
unsafe-eval for scripts, frame-ancestors and object-src 'none', HSTS over HTTPS
when the cookies are Secure."""
import re

import pytest
from flask import Flask

from tests.conftest import browser_login
from tests.test_a11y_browser import ANONYMOUS_PAGES, key_forms, menu_pages

ROLE_ACCOUNTS = ["admin", "sysadmin", "secadmin", "auditor", "bureau_nj", "unitadmin_a", "clerk_a", "organizer",
                 "zhangsan"]
# Every violation the page reports, kept on the window from the first script on.
LISTEN = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline') + ' ' +
                              (e.sourceFile || '') + ':' + (e.lineNumber || 0));
});
"""


def _context(browser, console):
    context = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900})
    context.add_init_script(LISTEN)
    context.on("console", lambda msg: console.append(msg.text)
               if "Content Security Policy" in msg.text or "Content-Security-Policy" in msg.text else None)
    return context


def _visit(page, base, urls, console):
    problems = {}
    for url in urls:
        start = len(console)
        resp = page.goto(base + url)
        assert resp is not None and resp.status < 400, (url, resp and resp.status)
        policy = resp.headers.get("content-security-policy", "")
        assert "'nonce-" in policy and "frame-ancestors 'none'" in policy, (url, policy)
        page.wait_for_load_state("networkidle")
        found = page.evaluate("window.__cspViolations || []") + console[start:]
        if found:
            problems[url] = found
    return problems


def test_anonymous_pages_break_no_policy(live_server, _browser):
    console = []
    context = _context(_browser, console)
    try:
        problems = _visit(context.new_page(), live_server, ANONYMOUS_PAGES, console)
        assert not problems, problems
    finally:
        context.close()


@pytest.mark.parametrize("username", ROLE_ACCOUNTS)
def test_every_main_page_of_the_role_breaks_no_policy(live_server, _browser, username):
    console = []
    context = _context(_browser, console)
    try:
        page = context.new_page()
        browser_login(page, live_server, username)
        assert "/login" not in page.url
        pages = ["/"] + [u for u in menu_pages(page) if u != "/"]
        assert len(pages) >= 2, pages
        forms = []
        for url in pages:
            if "/list/" in url:
                page.goto(live_server + url)
                forms += [f for f in key_forms(page) if f not in forms]
        problems = _visit(page, live_server, pages + forms, console)
        assert not problems, problems
        # The policy blocks what it must: an injected inline script does not run.
        page.goto(live_server + "/")
        page.evaluate("""() => { const s = document.createElement('script');
                                  s.textContent = 'window.__injected = 1'; document.body.appendChild(s); }""")
        assert page.evaluate("window.__injected") is None
        assert page.evaluate("window.__cspViolations.length") >= 1
    finally:
        context.close()


def test_policy_headers(app, client):
    resp = client.get("/login/")
    policy = dict(part.strip().split(" ", 1) for part in resp.headers["Content-Security-Policy"].split(";")
                  if part.strip())
    nonce = re.search(r"'nonce-([^']+)'", policy["script-src"]).group(1)
    assert f'nonce="{nonce}"' in resp.get_data(as_text=True)  # the page's scripts carry it
    assert "unsafe-inline" not in policy["script-src"] and "unsafe-eval" not in policy["script-src"]
    assert "unsafe-inline" not in policy["style-src"]
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    again = client.get("/login/").headers["Content-Security-Policy"]
    assert nonce not in again  # a new nonce per response
    assert resp.headers["X-Frame-Options"] == "DENY" and resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "Strict-Transport-Security" not in resp.headers  # SESSION_COOKIE_SECURE off
    assert app.config["SESSION_COOKIE_SECURE"] is False  # Talisman left the cookie flag to config.py


def test_hsts_when_cookies_are_secure():
    from app.web import content_policy

    for secure in (True, False):
        flask_app = Flask("hsts")
        flask_app.config["SESSION_COOKIE_SECURE"] = secure
        content_policy(flask_app)
        flask_app.add_url_rule("/", "x", lambda: "ok")
        resp = flask_app.test_client().get("/", base_url="https://localhost")
        assert ("max-age=31536000" in resp.headers.get("Strict-Transport-Security", "")) is secure
        assert flask_app.config["SESSION_COOKIE_SECURE"] is secure
        # No redirect to HTTPS by the app (the proxy's business).
        assert flask_app.test_client().get("/").status_code == 200
