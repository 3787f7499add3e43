"""A city bureau's hour records through the city-code indexes (issue 7).

The scope of a 4-digit (city) prefix adds substr(region_code, 1, 4) = prefix to the
region range, so that the grid's newest-first pages read ix_hr_city /
ix_hr_year_cat_city in id order.  These tests check that the scope still holds
exactly the records whose region code starts with the prefix (at the edges of the
city's range too), that the grid's pages, typed deep ones included, are those of a
plain ordered list, and that the database really uses the indexes for the grid's
statement (which it does only while the expression is rendered as the index's).
"""
import datetime
import re
from decimal import Decimal

import pytest
from sqlalchemy import event, select

from app.extensions import db
from app.models import Category, CEUser, HourRecord, LearningForm, Person, Source, Status
from app.security.scope import Scope, scope_clause, scope_of
from app.fab.datamodel import CEInterface
from tests.conftest import IS_PG

YEAR = datetime.date.today().year - 1
# Around the edges of 南京 (3201): its first and last district codes, the codes
# just before and after its range, another province's city and a record without one.
EDGE_CODES = ["320099", "320100", "320101", "320199", "320200", "320201", "321001", "310101", "320000", None]


def _add_records(n, codes):
    """`n` records cycling through `codes` (region codes set as given), every
    fourth a public-subject one, spread over three years."""
    persons = db.session.query(Person).order_by(Person.id).all()
    for i in range(n):
        year = YEAR - (i % 3)
        db.session.add(HourRecord(
            person=persons[i % len(persons)], year=year, category=Category.PRO if i % 4 else Category.PUB,
            learning_form=LearningForm.TRAIN_ONLINE, course_name=f"城市范围测试课程{i}",
            start_date=datetime.date(year, 5, 1), end_date=datetime.date(year, 5, 2), hours=Decimal(6),
            source=Source.UNIT_IMPORT, status=Status.APPROVED, region_code=codes[i % len(codes)],
        ))
    db.session.commit()


def _starting_with(prefix, where=lambda r: True):
    """Ids of the records whose region code starts with `prefix`, newest first,
    filtered in Python: the reference the SQL scope must agree with."""
    rows = db.session.query(HourRecord).all()
    return sorted((r.id for r in rows if r.region_code and r.region_code.startswith(prefix) and where(r)),
                  reverse=True)


@pytest.mark.parametrize("prefix", ["3201", "3202", "32", "320102"])
def test_region_scope_is_exactly_the_codes_starting_with_the_prefix(app, ctx, prefix):
    _add_records(len(EDGE_CODES) * 3, EDGE_CODES + ["320102", "320105"])
    want = _starting_with(prefix)
    assert want
    scope = Scope(region_prefixes=(prefix,))
    got = db.session.execute(
        select(HourRecord.id).where(scope_clause(HourRecord, scope)).order_by(HourRecord.id.desc())
    ).scalars().all()
    assert got == want


def test_city_bureau_scope_edges(app, ctx):
    """bureau_nj (南京, 320100) sees 320100-320199 and nothing at either side."""
    _add_records(len(EDGE_CODES), EDGE_CODES)
    nj = scope_of(db.session.query(CEUser).filter_by(username="bureau_nj").one())
    seen = set(db.session.execute(
        select(HourRecord.region_code).where(scope_clause(HourRecord, nj),
                                             HourRecord.course_name.like("城市范围测试课程%"))
    ).scalars())
    assert seen == {"320100", "320101", "320199"}


@pytest.fixture
def city_app(app, monkeypatch):
    """Enough 南京 and neighbouring records for many pages, and a low count cap so
    that the grid takes its many-rows path (as for a real city)."""
    monkeypatch.setattr(CEInterface, "count_cap", 60)
    with app.app_context():
        _add_records(300, ["320102", "320199", "320200", "320105", "320099", "320506", "320100"])
        db.session.remove()
    return app


def _page(client, args, n):
    """The record ids the grid shows on page `n`, typed as a page number."""
    html = client.get(f"/hourrecordview/list/?{args}&page_HourRecordView={n}").get_data(as_text=True)
    return list(dict.fromkeys(re.findall(r"/hourrecordview/show/(\d+)", html)))


@pytest.mark.parametrize("args, where", [
    ("", lambda r: True),
    (f"_flt_0_year={YEAR}&_flt_0_category=PRO", lambda r: r.year == YEAR and r.category == Category.PRO),
])
def test_typed_pages_of_a_city_bureau_match_a_plain_list(city_app, login_as, args, where):
    with city_app.app_context():
        want = [str(i) for i in _starting_with("3201", where)]
        db.session.remove()
    pages = (len(want) + 24) // 25
    assert pages >= 3
    client = login_as("bureau_nj")
    # Typed deep pages first (no anchor in the URL: offset paging), then every page.
    for n in [pages - 1, pages // 2] + list(range(pages)):
        assert _page(client, args, n) == want[n * 25:(n + 1) * 25], (args, n)
    assert _page(client, args, pages) == []


def _grid_statements(app, client, url):
    """The newest-first id statements the grid runs for `url` (statement, parameters)."""
    seen = []

    def grab(conn, cursor, statement, parameters, context, executemany):
        if "ORDER BY hour_record.id DESC" in statement and "LIMIT" in statement:
            seen.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", grab)
    try:
        assert client.get(url).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    return seen


def _plan(statement, parameters):
    conn = db.session.connection()
    if IS_PG:
        # A demo-sized table is read whole cheaper than through any index: forbid
        # that, so the plan shows which index can serve the statement.
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        # Nor sort a few hundred rows: the question is which index serves the
        # newest-first order, which a real city's size settles the same way.
        conn.exec_driver_sql("SET LOCAL enable_sort = off")
        return "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
    return "\n".join(r[3] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))


@pytest.mark.parametrize("args, index", [
    ("", "ix_hr_city"),
    (f"_flt_0_year={YEAR}&_flt_0_category=PRO", "ix_hr_year_cat_city"),
])
def test_deep_city_page_reads_the_city_code_index(city_app, login_as, args, index):
    client = login_as("bureau_nj")
    statements = _grid_statements(city_app, client, f"/hourrecordview/list/?{args}&page_HourRecordView=4")
    assert statements, "the grid ran no newest-first id query"
    with city_app.app_context():
        for statement, parameters in statements:
            # The index's own expression, with literal 1 and 4 (bound parameters
            # would not match the index on either database).
            assert "substr(hour_record.region_code, 1, 4)" in statement, statement
            plan = _plan(statement, parameters)
            # On PostgreSQL's demo-sized statistics the planner may also walk the
            # primary key newest first (no sort either); what must never happen is
            # a sort of the city's rows read through another index.
            walks_key = IS_PG and "Backward using hour_record_pkey" in plan and "Sort" not in plan
            assert index in plan or walks_key, plan
        db.session.rollback()
        db.session.remove()
