"""Fast grid paging (issue 7) keeps results correct: walking the hour-record grid
page by page, by its own links (keyset anchors) or by typed page numbers, shows
exactly the rows a plain scoped query gives, in the same order, for every scope
and filter; the count is exact below the cap and "超过 N 条" above it (exact
for a scope of units, from the unit tally)."""
import datetime
import re
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Category, CEUser, HourRecord, LearningForm, Person, Source, Status
from app.security.scope import scope_clause, scope_of
from app.services.records import place_record
from app.fab.datamodel import CEInterface

USERS = ["admin", "bureau_js", "bureau_nj", "bureau_sz", "clerk_a", "clerk_b", "agency_clerk", "organizer", "zhangsan"]
CAP = 60
YEAR = datetime.date.today().year - 1

_SHOW = re.compile(r"/hourrecordview/show/(\d+)")
_NEXT = re.compile(r'<li><a href="([^"]+)">&gt;</a></li>')
_PREV = re.compile(r'<li><a href="([^"]+)">&lt;</a></li>')


@pytest.fixture
def grid_app(app, monkeypatch):
    """The demo world plus enough records to span many pages, and a low count cap
    so that the capped count and the planner guard run too."""
    monkeypatch.setattr(CEInterface, "count_cap", CAP)
    with app.app_context():
        persons = db.session.query(Person).order_by(Person.id).all()
        for i in range(240):
            p = persons[i % len(persons)]
            year = YEAR - (i % 3)
            r = HourRecord(
                person=p, year=year, category=Category.PRO if i % 4 else Category.PUB,
                learning_form=LearningForm.TRAIN_ONLINE, course_name=f"分页测试课程{i}",
                start_date=datetime.date(year, 3, 1), end_date=datetime.date(year, 3, 2),
                hours=Decimal(8), source=Source.UNIT_IMPORT, status=Status.APPROVED,
            )
            place_record(r, p)
            db.session.add(r)
        db.session.commit()
        db.session.remove()
    return app


def expected_ids(app, username, where=(), order=None):
    with app.app_context():
        user = db.session.query(CEUser).filter_by(username=username).one()
        q = select(HourRecord.id).where(scope_clause(HourRecord, scope_of(user)), *where)
        q = q.order_by(*(order or [HourRecord.id.desc()]))
        ids = [str(i) for i in db.session.execute(q).scalars()]
        db.session.remove()
        return ids


def units_only_scope(app, username):
    with app.app_context():
        scope = scope_of(db.session.query(CEUser).filter_by(username=username).one())
        db.session.remove()
    return bool(scope.unit_ids) and not (scope.everything or scope.region_prefixes or scope.reporter_unit_ids
                                         or scope.person_ids)


def shown_ids(html):
    seen = []
    for pk in _SHOW.findall(html):
        if pk not in seen:
            seen.append(pk)
    return seen


def walk(client, url, limit=200):
    """Follow the grid's own "next page" links from `url`; every page's rows."""
    pages = []
    while url and len(pages) < limit:
        html = client.get(url).get_data(as_text=True)
        pages.append((url, html, shown_ids(html)))
        m = _NEXT.search(html)
        url = m.group(1).replace("&amp;", "&") if m else None
    return pages


FILTERS = [
    ("", ()),
    (f"_flt_0_year={YEAR}&_flt_0_category=PRO", (HourRecord.year == YEAR, HourRecord.category == Category.PRO)),
    ("_flt_0_status=APPROVED", (HourRecord.status == Status.APPROVED,)),
]


@pytest.mark.parametrize("username", USERS)
def test_pages_by_links_and_by_number_match_a_plain_scoped_query(grid_app, login_as, username):
    client = login_as(username)
    for args, where in FILTERS:
        want = expected_ids(grid_app, username, where)
        pages = walk(client, "/hourrecordview/list/?" + args)
        got = [pk for _, _, ids in pages for pk in ids]
        assert got == want, (username, args)
        # Each page's count: exact below the cap and on the last page, "超过 N" otherwise;
        # always exact for a scope of units (read from the unit tally, models.HourTally).
        tallied = units_only_scope(grid_app, username)
        for n, (_, html, _) in enumerate(pages):
            exact = re.search(r'class="ce-count">(\d+)<', html)
            if tallied or len(want) <= CAP or n == len(pages) - 1:
                assert exact and int(exact.group(1)) == len(want), (username, args, n)
            else:
                assert not exact and re.search(r'class="ce-count-capped">超过 \d+ 条<', html), (username, args, n)
        assert all(len(ids) == 25 for _, _, ids in pages[:-1])
        # The same pages typed as page numbers (no anchor: offset paging).
        for n, (_, _, ids) in enumerate(pages):
            html = client.get(f"/hourrecordview/list/?{args}&page_HourRecordView={n}").get_data(as_text=True)
            assert shown_ids(html) == ids, (username, args, n)
        # Walking back by the "previous page" links (anchors before the page).
        if len(pages) > 2:
            html = pages[-1][1]
            for n in range(len(pages) - 2, -1, -1):
                prev = _PREV.search(html).group(1).replace("&amp;", "&")
                html = client.get(prev).get_data(as_text=True)
                assert shown_ids(html) == pages[n][2], (username, args, n)


def test_count_is_exact_below_the_cap_and_capped_above(grid_app, login_as):
    total = len(expected_ids(grid_app, "bureau_js"))
    assert total > CAP
    client = login_as("bureau_js")
    html = client.get("/hourrecordview/list/").get_data(as_text=True)
    assert f"超过 {CAP} 条" in html
    exact = re.search(r'href="([^"]*count_HourRecordView=exact[^"]*)"', html).group(1).replace("&amp;", "&")
    html = client.get(exact).get_data(as_text=True)
    assert re.search(r'class="ce-count">%d<' % total, html)
    # A small scope (an applicant's own records) counts exactly.
    few = len(expected_ids(grid_app, "zhangsan"))
    assert few <= CAP
    html = login_as("zhangsan").get("/hourrecordview/list/").get_data(as_text=True)
    assert re.search(r'class="ce-count">%d<' % few, html) and "超过" not in html


def test_anchor_of_another_filter_is_ignored(grid_app, login_as):
    client = login_as("bureau_js")
    pages = walk(client, "/hourrecordview/list/", limit=3)
    anchored = pages[2][0]
    assert "anchor_HourRecordView=" in anchored
    # Same anchor, different filter: the page is what the filter gives, not the anchor's.
    url = anchored + f"&_flt_0_year={YEAR}"
    want = expected_ids(grid_app, "bureau_js", (HourRecord.year == YEAR,))[50:75]
    assert shown_ids(client.get(url).get_data(as_text=True)) == want


def test_other_sort_orders_page_like_a_plain_query(grid_app, login_as):
    client = login_as("bureau_nj")
    want = expected_ids(grid_app, "bureau_nj", order=[HourRecord.year.asc(), HourRecord.id.asc()])
    got = []
    for n in range(0, (len(want) + 24) // 25):
        html = client.get(
            f"/hourrecordview/list/?_oc_HourRecordView=year&_od_HourRecordView=asc&page_HourRecordView={n}"
        ).get_data(as_text=True)
        got += shown_ids(html)
    assert got == want


def test_a_related_column_order_keeps_fab_paging_in_scope(grid_app, login_as):
    """An order by a related column (typed into the URL; the header offers none)
    leaves the fast path for FAB's own list widget (ce/widgets/list.html): the
    page still shows rows of the scope only, with their links."""
    client = login_as("bureau_nj")
    resp = client.get("/hourrecordview/list/?_oc_HourRecordView=person.name&_od_HourRecordView=asc")
    assert resp.status_code == 200
    ids = shown_ids(resp.get_data(as_text=True))
    assert len(ids) == 25 and set(ids) <= set(expected_ids(grid_app, "bureau_nj"))


def test_person_filter_takes_a_typed_id_number_and_stays_in_scope(grid_app, login_as):
    with grid_app.app_context():
        zhangsan = db.session.query(Person).filter_by(name="张三").one()
        lisi = db.session.query(Person).filter_by(name="李四").one()
        z_number, l_number, z_id = zhangsan.id_number, lisi.id_number, zhangsan.id
        db.session.remove()
    client = login_as("clerk_a")
    want = expected_ids(grid_app, "clerk_a", (HourRecord.person_id == z_id,))
    assert want
    html = client.get(f"/hourrecordview/list/?_flt_0_person={z_number}").get_data(as_text=True)
    assert shown_ids(html) == want[:25]
    # The search form offers a text box, not a drop-down of every person.
    assert re.search(r'input[^>]*id=[\\"]+person', html.replace("\\u003c", "<").replace("\\u003e", ">"))
    assert not re.search(r'select[^>]*id=[\\"]+person', html.replace("\\u003c", "<").replace("\\u003e", ">"))
    # 李四 works in Suzhou: clerk_a's grid shows nothing for him.
    html = client.get(f"/hourrecordview/list/?_flt_0_person={l_number}").get_data(as_text=True)
    assert shown_ids(html) == []
    # By id, as other pages link to it.
    html = client.get(f"/hourrecordview/list/?_flt_0_person={z_id}").get_data(as_text=True)
    assert shown_ids(html) == want[:25]


def test_a_page_past_the_end_shows_no_rows_and_the_count(grid_app, login_as):
    """A typed page number past the last page: no rows, and the count is still the
    scope's (with no row to show, the page cannot tell it from its own rows)."""
    few = len(expected_ids(grid_app, "zhangsan"))
    assert 0 < few <= 25  # one page; the second page still lies below the count cap
    client = login_as("zhangsan")
    html = client.get("/hourrecordview/list/?page_HourRecordView=1").get_data(as_text=True)
    assert shown_ids(html) == []
    assert re.search(r'class="ce-count">%d<' % few, html)
    html = client.get("/hourrecordview/list/?page_HourRecordView=40&count_HourRecordView=exact").get_data(as_text=True)
    assert shown_ids(html) == [] and re.search(r'class="ce-count">%d<' % few, html)


def test_reloading_a_list_page_leaves_the_session_cookie_alone(app, login_as):
    """FAB's back history records each new list URL (the session changes, a new
    cookie is sent); a reload of the same URL changes nothing and sends none, and
    an edit still returns to the list it came from."""
    from app.models.security import UserSession
    from app.security.sessions import sid_hash

    client = login_as("clerk_a")

    def stored():  # the server-side session's data (issue 25: the cookie carries only its id)
        with app.app_context():
            return db.session.execute(select(UserSession.data).where(
                UserSession.sid_hash == sid_hash(client.get_cookie("session").value))).scalar_one()

    url = "/hourrecordview/list/?_flt_0_year=%d" % YEAR
    before = stored()
    first = client.get(url)
    assert first.status_code == 200
    after_first = stored()
    assert after_first != before
    again = client.get(url)
    assert again.status_code == 200
    assert stored() == after_first
    assert not any(h.startswith("session=") for h in again.headers.getlist("Set-Cookie"))
    other = client.get("/hourrecordview/list/")
    assert other.status_code == 200 and stored() != after_first
    with client.session_transaction() as sess:
        assert sess["page_history"][-2:] == ["http://localhost" + url, "http://localhost/hourrecordview/list/"]


def _page_ids(dm, username, *filters):
    """query_page's ids for `username`, as its list page would ask (page 0, newest
    first), with the scope and these (column, filter class, value) filters."""
    from flask_login import login_user

    from app.security.scope import ScopeFilter

    user = db.session.query(CEUser).filter_by(username=username).one()
    login_user(user)
    flt = dm.get_filters().add_filter("id", ScopeFilter, None)
    for column, cls, value in filters:
        flt = flt.add_filter(column, cls, value)
    return [r.id for r in dm.query_page(flt, "id", "desc", page=0, page_size=25).items]


def test_pages_follow_the_data_and_each_filter_class(grid_app):
    """A page reloaded after a change shows the change, and two filters that
    differ only in their class (待核准 / 已核准 on the status column) give
    their own rows."""
    from app.views.workflow import ApprovedFilter, PendingFilter

    dm = CEInterface(HourRecord)
    with grid_app.test_request_context("/hourrecordview/list/"):
        approved = _page_ids(dm, "bureau_js", ("status", ApprovedFilter, None))
        assert approved == [int(i) for i in expected_ids(grid_app, "bureau_js", (HourRecord.status == Status.APPROVED,))][:25]
        pending = _page_ids(dm, "bureau_js", ("status", PendingFilter, None))
        want = [int(i) for i in expected_ids(grid_app, "bureau_js", (HourRecord.status == Status.SUBMITTED,))][:25]
        assert pending == want and set(pending).isdisjoint(approved)
        # The three newest approved records go back to 待核准: the same pages show
        # them moved.
        for record in db.session.query(HourRecord).filter(HourRecord.id.in_(approved[:3])):
            record.status = Status.SUBMITTED
        db.session.commit()
        again = _page_ids(dm, "bureau_js", ("status", ApprovedFilter, None))
        assert again == [int(i) for i in expected_ids(grid_app, "bureau_js", (HourRecord.status == Status.APPROVED,))][:25]
        assert again[:22] == approved[3:]
        assert _page_ids(dm, "bureau_js", ("status", PendingFilter, None))[:3] == approved[:3]
        db.session.remove()


def test_many_rows_are_paged_walking_the_key_on_sqlite(grid_app, login_as):
    """Over the count cap, a region's page is read walking the primary key
    (services.sqlplan): on SQLite the region's range is hidden from the index
    chooser and the plan sorts nothing; PostgreSQL gets the statement unchanged."""
    from sqlalchemy import event

    client = login_as("bureau_js")
    seen = []
    with grid_app.app_context():
        engine = db.engine
    grab = lambda conn, cursor, statement, parameters, *rest: seen.append((statement, parameters))  # noqa: E731
    event.listen(engine, "before_cursor_execute", grab)
    try:
        html = client.get("/hourrecordview/list/").get_data(as_text=True)
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    assert "超过 %d 条" % CAP in html
    statement, parameters = next((s, p) for s, p in seen
                                 if "SELECT hour_record.id" in s and "ORDER BY hour_record.id DESC" in s)
    with grid_app.app_context():
        if db.engine.dialect.name == "sqlite":
            assert "(hour_record.region_code || '') >=" in statement, statement
            plan = [r[3] for r in db.session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
            assert not any("TEMP B-TREE" in line for line in plan), plan
        else:
            assert "|| ''" not in statement
        db.session.remove()


def test_filters_of_one_request_never_reach_another(grid_app, login_as, monkeypatch):
    """Two list requests at once (threads of one worker): the second arrives while
    the first is reading its filters.  Each shows its own filter's rows (FAB kept
    the active filters on the view instance shared by the threads)."""
    from flask_appbuilder.models.filters import Filters

    want = {y: expected_ids(grid_app, "bureau_js", (HourRecord.year == y,))[:25] for y in (YEAR, YEAR - 1)}
    assert want[YEAR] and want[YEAR] != want[YEAR - 1]
    client, other = login_as("bureau_js"), login_as("bureau_js")
    seen = {}
    real = Filters.add_filter_index

    def interleaved(self, column_name, filter_instance_index, value):
        real(self, column_name, filter_instance_index, value)
        if value == [str(YEAR)] and "other" not in seen:
            seen["other"] = other.get(f"/hourrecordview/list/?_flt_0_year={YEAR - 1}").get_data(as_text=True)

    monkeypatch.setattr(Filters, "add_filter_index", interleaved)
    html = client.get(f"/hourrecordview/list/?_flt_0_year={YEAR}").get_data(as_text=True)
    assert shown_ids(seen["other"]) == want[YEAR - 1]
    assert shown_ids(html) == want[YEAR]


def _hour_statements(app, client, url):
    """The statements reading hour_record or hour_tally that one request of `url` ran, and its page."""
    from sqlalchemy import event

    seen = []
    with app.app_context():
        engine = db.engine
    grab = lambda conn, cursor, statement, *rest: seen.append(statement)  # noqa: E731
    event.listen(engine, "before_cursor_execute", grab)
    try:
        html = client.get(url).get_data(as_text=True)
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    return [s for s in seen if "FROM hour_record" in s or "FROM hour_tally" in s], html


@pytest.mark.parametrize("query", ["", f"?_flt_0_year={YEAR}&_flt_0_category=PRO"])
def test_a_units_page_counts_from_the_tally(grid_app, login_as, query):
    """A unit's grid (conditions that are equalities on the tally's key) counts
    exactly by summing its tally rows instead of counting its records; the page
    shows its newest rows and that count.  A region's grid counts its rows."""
    clerk = login_as("clerk_a")
    statements, html = _hour_statements(grid_app, clerk, "/hourrecordview/list/" + query)
    assert any("sum(hour_tally.n)" in s for s in statements), statements
    assert not any("count(" in s for s in statements), statements
    where = (HourRecord.year == YEAR, HourRecord.category == Category.PRO) if query else ()
    ids = expected_ids(grid_app, "clerk_a", where)
    assert shown_ids(html)[:5] == ids[:5] and re.search(r"记录数\s*:?\s*(?:<[^>]+>\s*)*%d\b" % len(ids), html)
    bureau_statements, _html = _hour_statements(grid_app, login_as("bureau_nj"), "/hourrecordview/list/" + query)
    assert not any("hour_tally" in s for s in bureau_statements), bureau_statements
    assert any("count(" in s for s in bureau_statements), bureau_statements
