"""Exploration only (not collected): print axe violations of every page of every role."""
import json
import os
import sys
import time

from tests.conftest import browser_login

AXE = os.path.join(os.path.dirname(__file__), "a11y", "node_modules", "axe-core", "axe.min.js")
ROLES = ["admin", "bureau_nj", "unitadmin_a", "clerk_a", "organizer", "zhangsan"]


def run_axe(page):
    return page.evaluate("""async () => {
      const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a','wcag2aa','wcag21a','wcag21aa']}});
      return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
          nodes: v.nodes.slice(0, 4).map(n => n.target.join(' ') + ' :: ' + (n.failureSummary || '').slice(0, 160))}));
    }""")


def menu_pages(page):
    return page.eval_on_selector_all(
        ".navbar a[href]", "as => as.map(a => a.getAttribute('href'))")


def test_explore(app, live_server, _browser):
    out = {}
    ctx = _browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 900})
    ctx.add_init_script(path=AXE)
    page = ctx.new_page()
    for url in ["/login/", "/register/", "/register/unit", "/register/person", "/verify/"]:
        page.goto(live_server + url)
        out["anon " + url] = run_axe(page)
    ctx.close()
    for user in ROLES:
        ctx = _browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 900})
        ctx.add_init_script(path=AXE)
        page = ctx.new_page()
        browser_login(page, live_server, user)
        urls = [u for u in menu_pages(page) if u and u.startswith("/") and "logout" not in u and "/lang/" not in u]
        urls = list(dict.fromkeys(["/"] + urls))
        extra = []
        for u in urls:
            t = time.time()
            page.goto(live_server + u)
            out[f"{user} {u}"] = run_axe(page)
            print(user, u, round(time.time() - t, 2), file=sys.stderr)
            if "/list" in u:
                links = page.eval_on_selector_all(
                    "a[href*='/show/'], a[href*='/edit/'], a[href*='/add']",
                    "as => as.map(a => a.getAttribute('href'))")
                seen = set()
                for l in links:
                    kind = "show" if "/show/" in l else "edit" if "/edit/" in l else "add"
                    if kind not in seen:
                        seen.add(kind)
                        extra.append(l)
        for u in extra:
            page.goto(live_server + u)
            out[f"{user} {u}"] = run_axe(page)
        from app.extensions import db
        from app.models import CEUser
        from sqlalchemy import select
        with app.app_context():
            db.session.execute(select(CEUser).where(CEUser.username == user)).scalar_one().large_text = True
            db.session.commit()
        for u in urls + extra:
            page.goto(live_server + u)
            out[f"LARGE {user} {u}"] = run_axe(page)
            w = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth, Array.from(document.querySelectorAll('.table-responsive')).map(t => t.scrollWidth - t.clientWidth)]")
            if w[0] > w[1] or any(x > 1 for x in w[2]):
                out[f"LARGE {user} {u}"].append({"id": "overflow", "impact": "serious", "nodes": [str(w)]})
        ctx.close()
    with open("/tmp/a11y27.json", "w") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
