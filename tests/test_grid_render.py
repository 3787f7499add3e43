"""The grid page's parts rendered in Python (app/views/gridrender.py) show what
FAB's templates would: the menu follows the user's roles and language, the rows
carry the database's values, the header's sort links flip as FAB's do."""
import html as htmllib
import os
import re
import subprocess
import sys

from sqlalchemy import select

from app.extensions import db
from app.models import CEUser, HourRecord
from app.security.scope import scope_clause, scope_of
from app.views.formatting import id_number_for_list

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def navbar(page):
    return page[page.index('<header class="top"'):page.index("</header>")]


def cells(row_html):
    out = []
    for td in re.findall(r"<td>(.*?)</td>", row_html, re.S):
        out.append(htmllib.unescape(re.sub(r"<[^>]+>", "", td)).strip())
    return out


def test_menu_follows_roles_and_language(app, login_as):
    client = login_as("clerk_a")
    before = navbar(client.get("/hourrecordview/list/").get_data(as_text=True))
    assert "学时记录" in before and "行政区划" not in before
    with app.app_context():
        sm = app.appbuilder.sm
        user = db.session.execute(select(CEUser).where(CEUser.username == "clerk_a")).scalar_one()
        user.roles.append(sm.find_role("Admin"))
        db.session.commit()
        db.session.remove()
    # A role change ends the account's sessions (issue 25): sign in again.
    assert client.get("/hourrecordview/list/", follow_redirects=True).request.path == "/login/"
    client = login_as("clerk_a")
    granted = navbar(client.get("/hourrecordview/list/").get_data(as_text=True))
    assert "行政区划" in granted
    client.get("/lang/en")
    english = navbar(client.get("/hourrecordview/list/").get_data(as_text=True))
    assert "学时记录" not in english and "Hours records" in english, english
    with app.app_context():
        user = db.session.execute(select(CEUser).where(CEUser.username == "clerk_a")).scalar_one()
        user.roles = [r for r in user.roles if r.name != "Admin"]
        db.session.commit()
        db.session.remove()
    client = login_as("clerk_a")  # the role change ended the session
    client.get("/lang/zh")
    again = navbar(client.get("/hourrecordview/list/").get_data(as_text=True))
    assert again == before


def test_rows_show_the_stored_values(app, login_as):
    client = login_as("bureau_nj")
    page = client.get("/hourrecordview/list/").get_data(as_text=True)
    body = page[page.index("</thead>"):]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    assert len(rows) >= 5
    with app.test_request_context():
        user = db.session.execute(select(CEUser).where(CEUser.username == "bureau_nj")).scalar_one()
        scope = scope_of(user)
        records = db.session.execute(
            select(HourRecord).where(scope_clause(HourRecord, scope)).order_by(HourRecord.id.desc()).limit(len(rows))
        ).scalars().all()
        expected = [[
            r.person.name, id_number_for_list(r.person.id_number, scope), str(r.year), r.category.value,
            r.learning_form.value, r.course_name, f"{float(r.hours):g}", str(r.start_date), str(r.end_date),
            r.source.value, r.status.value, r.unit.name if r.unit else "",
        ] for r in records]
        ids = [str(r.id) for r in records]
        db.session.remove()
    shown = [cells(row)[1:] for row in rows]  # the first cell holds the show/edit links
    assert shown == expected
    assert [re.search(r"/hourrecordview/show/(\d+)", row).group(1) for row in rows] == ids
    # bureau staff see masked ID numbers (app.views.formatting)
    assert all("*" in row[1] for row in shown)


def test_header_sort_links_flip_like_fab(login_as):
    client = login_as("bureau_nj")
    page = client.get("/hourrecordview/list/?_flt_0_year=2025").get_data(as_text=True)
    head = page[page.index("<thead>"):page.index("</thead>")]
    href = htmllib.unescape(re.search(r'<a href="([^"]+)">认定年度', head).group(1))
    assert href == "/hourrecordview/list/?_flt_0_year=2025&_oc_HourRecordView=year&_od_HourRecordView=asc"
    assert "<th>姓名</th>" in head  # not orderable: no link
    page = client.get(href).get_data(as_text=True)
    head = page[page.index("<thead>"):page.index("</thead>")]
    flipped = htmllib.unescape(re.search(r'<a href="([^"]+)">认定年度\n<i class="fa ([\w-]+)', head).group(1))
    assert flipped.endswith("_oc_HourRecordView=year&_od_HourRecordView=desc")
    assert 'fa-chevron-up' in head


def test_scope_key_is_the_same_in_every_worker():
    """Page fingerprints (keyset anchors in links) carry the scope's key: another
    gunicorn worker, with another string hash seed, must compute the same."""
    code = ("from app.security.scope import Scope;"
            "print(Scope(region_prefixes=('3201',), roles=frozenset({'Bureau', 'UnitAdmin', 'Applicant', 'Organizer'})).key)")
    keys = set()
    for seed in ("1", "2", "3", "4"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        keys.add(out.stdout.strip())
    assert len(keys) == 1


def test_page_size_menu_and_active_filters_follow_the_request(login_as):
    client = login_as("bureau_js")
    page = client.get("/hourrecordview/list/?_flt_0_year=2025").get_data(as_text=True)
    sizes = re.findall(r'<li( class="active")?><a href="([^"]+psize_HourRecordView=(\d+)[^"]*)">\3</a></li>', page)
    assert [s[2] for s in sizes] == ["25", "50", "75", "100"]
    assert [s[2] for s in sizes if s[0]] == ["25"]
    assert '["year", "\\u7b49\\u4e8e", ["2025"]]' in page  # the active filter, 等于 2025
    fifty = htmllib.unescape(sizes[1][1])
    assert "_flt_0_year=2025" in fifty
    page = client.get(fifty).get_data(as_text=True)
    assert len(re.findall(r'/hourrecordview/show/\d+', page)) == 50
    # the search form shows this request's filters only
    page = client.get("/hourrecordview/list/").get_data(as_text=True)
    assert '["year", "\\u7b49\\u4e8e", ["2025"]]' not in page


def test_a_csp_nonce_is_new_on_every_page(app, login_as, monkeypatch):
    """Scripts carry the request's own nonce (Flask-Talisman's csp_nonce)."""
    counter = iter(range(1000))
    monkeypatch.setitem(app.jinja_env.globals, "csp_nonce", lambda: f"nonce-{next(counter)}")
    # Talisman sets the global at start-up, before any template is loaded: so here.
    app.jinja_env.cache.clear()
    try:
        client = login_as("bureau_js")
        first = client.get("/hourrecordview/list/").get_data(as_text=True)
        second = client.get("/hourrecordview/list/").get_data(as_text=True)
    finally:
        monkeypatch.undo()
        app.jinja_env.cache.clear()
    script = re.compile(r'<script nonce="(nonce-\d+)">\s*\(function\(\$\) \{\s*const filter')
    assert script.search(first).group(1) != script.search(second).group(1)


_TOKENS = re.compile(r'(name="csrf-token" content="|name="csrf_token" value=")([^"]+)"')


def _tokens(page):
    return {m.group(2) for m in _TOKENS.finditer(page)}


def test_a_page_carries_the_sessions_own_csrf_token(app, login_as):
    """Two sessions of one user never share a token: each page carries its own
    session's token, which its POSTs pass and the other session's fail."""
    first, second = login_as("clerk_a"), login_as("clerk_a")
    page_1 = first.get("/review/todo/list/").get_data(as_text=True)
    page_2 = second.get("/review/todo/list/").get_data(as_text=True)
    (token_1,), (token_2,) = _tokens(page_1), _tokens(page_2)
    assert token_1 != token_2 and '<form id="action_form"' in page_2

    def approve_nothing(client, token):
        return client.post("/review/todo/action_post", data={"action": "approve", "csrf_token": token})

    assert approve_nothing(second, token_1).status_code == 400
    assert approve_nothing(second, token_2).status_code == 302


def test_a_page_with_a_message_is_rendered_with_it(app, login_as):
    """A flashed message is shown once, on the next page."""
    client = login_as("clerk_a")
    client.get("/hourrecordview/list/")
    with client.session_transaction() as session:
        session["_flashes"] = [("warning", "测试提示：请核对")]
    assert "测试提示：请核对" in client.get("/hourrecordview/list/").get_data(as_text=True)
    assert "测试提示：请核对" not in client.get("/hourrecordview/list/").get_data(as_text=True)


def test_the_navigation_bar_is_kept_while_scripts_carry_a_nonce(app, login_as):
    """The CSP gives every response its own nonce: the navigation bar carries none,
    so a user's second page reuses its bar (the search form: next test)."""
    from flask import template_rendered

    rendered = []

    def note(sender, template, context, **extra):
        rendered.append(template.name)

    client = login_as("clerk_a")
    first = client.get("/hourrecordview/list/").get_data(as_text=True)
    assert 'nonce="' in first  # the CSP is on
    with template_rendered.connected_to(note, app):
        second = client.get("/hourrecordview/list/").get_data(as_text=True)
    assert navbar(second) == navbar(first)
    assert "appbuilder/navbar.html" not in rendered  # the first page's bar, kept
    client.get("/lang/en")
    assert "Hours records" in navbar(client.get("/hourrecordview/list/").get_data(as_text=True))


def test_the_search_form_is_kept_and_carries_each_responses_own_nonce(app, login_as):
    """The search form's script carries the CSP nonce: the form is kept with a
    placeholder and every response puts its own nonce back, the one its
    Content-Security-Policy header allows."""
    from flask import template_rendered

    rendered = []

    def note(sender, template, context, **extra):
        rendered.append(template.name)

    def nonces(resp):
        allowed = re.findall(r"'nonce-([^']+)'", resp.headers["Content-Security-Policy"])
        used = set(re.findall(r'nonce="([^"]*)"', resp.get_data(as_text=True)))
        return set(allowed), used

    client = login_as("clerk_a")
    first = client.get("/hourrecordview/list/")
    with template_rendered.connected_to(note, app):
        second = client.get("/hourrecordview/list/")
    (allowed_1,), used_1 = nonces(first)
    (allowed_2,), used_2 = nonces(second)
    assert allowed_1 != allowed_2 and used_1 == {allowed_1} and used_2 == {allowed_2}
    form = re.compile(r'<script nonce="[^"]+">\s*\(function\(\$\) \{\s*const filter')
    assert form.search(second.get_data(as_text=True))
    assert not any("search" in name for name in rendered)  # the first page's form, kept
    assert "\x00" not in second.get_data(as_text=True)
