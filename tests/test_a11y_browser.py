"""Accessibility of every page (issue 27; WCAG 2.1 AA, GB/T 37668-2019), checked by
axe-core in Chromium.

axe-core is the npm package pinned in tests/a11y/package.json (installed there by
`npm ci`, scripts/test.sh) and handed to the browser from that file: nothing comes
from a CDN.  For every demo role (one login each, one shared browser) the pages are
the role's own menu as the navigation bar shows it, plus the key forms reached from
each grid (add, the first row's show and edit), and the anonymous pages.  Each page
is checked against axe's WCAG 2.0 / 2.1 A and AA rules in 标准 and again in 大字版
(switched on through the user menu); any serious or critical violation fails, and
in 大字版 a page that scrolls sideways on a 1366-pixel-wide screen fails too.
"""
import os

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import CEUser
from tests.conftest import browser_login, screenshot

AXE = os.path.join(os.path.dirname(__file__), "a11y", "node_modules", "axe-core", "axe.min.js")
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
FAILING = ("serious", "critical")
# One account per demo role (README): Admin, Bureau, UnitAdmin, UnitOperator, Organizer, Applicant.
ROLE_ACCOUNTS = ["admin", "bureau_nj", "unitadmin_a", "clerk_a", "organizer", "zhangsan"]
ANONYMOUS_PAGES = ["/login/", "/register/", "/register/unit", "/register/person", "/verify/"]
SCREEN = {"width": 1366, "height": 900}


def axe_context(browser):
    """A browser context whose every page carries axe-core from the project's files."""
    assert os.path.exists(AXE), "axe-core missing: run `npm ci --prefix tests/a11y` (scripts/test.sh does)"
    context = browser.new_context(locale="zh-CN", viewport=SCREEN, accept_downloads=True)
    context.add_init_script(path=AXE)
    return context


def violations(page):
    """axe's serious and critical WCAG A/AA violations on the page, as short texts."""
    found = page.evaluate(
        """async (tags) => {
            const r = await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
            return r.violations.map(v => ({id: v.id, impact: v.impact,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
        }""",
        WCAG_TAGS,
    )
    return [f"{v['id']} ({v['impact']}): {', '.join(v['nodes'])}" for v in found if v["impact"] in FAILING]


def sideways_scroll(page):
    """How far the page, or a grid inside it, is wider than the screen (0: not at all)."""
    return page.evaluate(
        """() => Math.max(document.documentElement.scrollWidth - document.documentElement.clientWidth,
                          ...Array.from(document.querySelectorAll('.table-responsive'))
                                  .map(t => t.scrollWidth - t.clientWidth), 0)"""
    )


def menu_pages(page):
    """The pages of the signed-in user's menu (navigation bar and user menu), in order."""
    hrefs = page.eval_on_selector_all(".navbar a[href]", "as => as.map(a => a.getAttribute('href'))")
    return [h for h in dict.fromkeys(hrefs)
            if h.startswith("/") and not h.startswith("/lang/") and "logout" not in h]


def key_forms(page):
    """From a grid: its add form and the first row's show and edit pages."""
    links = page.eval_on_selector_all(
        "#ce-main a[href]", "as => as.map(a => a.getAttribute('href'))")
    found = {}
    for href in links:
        for kind in ("/show/", "/edit/", "/add"):
            if kind in href and kind not in found and href.startswith("/"):
                found[kind] = href
    return list(found.values())


def check_pages(page, base, urls, large=False):
    problems = {}
    for url in urls:
        resp = page.goto(base + url)
        assert resp is not None and resp.status < 400, (url, resp and resp.status)
        assert page.evaluate("document.documentElement.lang") in ("zh-CN", "en"), url
        if large:
            assert page.evaluate("document.documentElement.classList.contains('ce-large')"), url
            wider = sideways_scroll(page)
            if wider > 0:
                problems.setdefault(url, []).append(f"scrolls sideways by {wider}px at 1366px")
        found = violations(page)
        if found:
            problems.setdefault(url, []).extend(found)
    return problems


def report(problems, mode):
    return "\n".join(f"[{mode}] {url}: " + "; ".join(vs) for url, vs in problems.items())


def test_anonymous_pages_have_no_serious_violations(live_server, _browser):
    context = axe_context(_browser)
    try:
        page = context.new_page()
        problems = check_pages(page, live_server, ANONYMOUS_PAGES)
        assert not problems, report(problems, "标准")
    finally:
        context.close()


@pytest.mark.parametrize("username", ROLE_ACCOUNTS)
def test_every_page_of_the_role_in_both_sizes(app, live_server, _browser, username):
    context = axe_context(_browser)
    try:
        page = context.new_page()
        browser_login(page, live_server, username)
        assert "/login" not in page.url
        pages = ["/"] + [u for u in menu_pages(page) if u != "/"]
        assert len(pages) >= 4, pages  # a role's menu, not an empty bar
        forms = []
        for url in pages:
            if "/list/" in url:
                page.goto(live_server + url)
                forms += [f for f in key_forms(page) if f not in forms]
        # A grid with an active filter: FAB's search form draws a row of fields per filter.
        filtered = [u + "?_flt_0_year=2025" for u in pages if u.startswith("/hourrecordview/list")]
        urls = pages + forms + filtered

        problems = check_pages(page, live_server, urls)
        assert not problems, report(problems, "标准")

        # 大字版 through the user menu, as a user switches it on.
        page.goto(live_server + "/")
        page.click("#ce-user-menu > a.dropdown-toggle")
        with page.expect_navigation():
            page.click("#ce-large-text")
        assert page.evaluate("document.documentElement.classList.contains('ce-large')")
        with app.app_context():
            assert db.session.execute(select(CEUser.large_text).where(CEUser.username == username)).scalar_one()
        problems = check_pages(page, live_server, urls, large=True)
        assert not problems, report(problems, "大字版")
        if username in ("clerk_a", "bureau_nj"):
            page.goto(live_server + ("/dashboard/" if username == "bureau_nj" else "/hourrecordview/list/"))
            screenshot(page, f"a11y_large_{username}")
    finally:
        context.close()
