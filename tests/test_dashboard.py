"""Compliance dashboard (达标统计): figures equal independent computations, scope refusals,
the unmet list export."""
import datetime
import io
import re
from collections import defaultdict
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from app.extensions import db
from app.models import Category, HourRecord, LearningForm, Person, Source, Status, Unit
from app.security.scope import scope_of
from app.services import dashboard, requirement
from app.services.errors import OutOfScope
from app.services.records import place_record

YEAR = datetime.date.today().year - 1


def _user(app, username):
    return app.appbuilder.sm.find_user(username=username)


def _persons_of(user):
    """The persons a user's dashboard covers, computed without the scope module."""
    persons = db.session.execute(select(Person)).scalars().all()
    roles = {r.name for r in user.roles}
    if "Admin" in roles:
        return persons
    if "Bureau" in roles:
        prefix = user.region_code.rstrip("0")
        if len(prefix) % 2:
            prefix += "0"
        return [p for p in persons if p.unit is not None and p.unit.region_code.startswith(prefix)]
    return [p for p in persons if p.unit_id == user.unit_id]


def _independent(user, year):
    persons = _persons_of(user)
    met = {p.id for p in persons if requirement.year_totals(p.id, year).met}
    ids = {p.id for p in persons}
    cat, src = defaultdict(Decimal), defaultdict(Decimal)
    for r in db.session.execute(select(HourRecord)).unique().scalars():
        if r.year == year and r.status == Status.APPROVED and r.person_id in ids:
            cat[r.category] += r.hours
            src[r.source] += r.hours
    return persons, met, cat, src


def _make_some_meet():
    """Give a few persons enough approved hours (and one only public hours)."""
    persons = db.session.execute(select(Person).order_by(Person.id)).scalars().all()
    for n, p in enumerate(persons[:12:3]):
        for k, (cat, hours) in enumerate([(Category.PRO, 40), (Category.PRO, 30), (Category.PUB, 24)]):
            if n == 3 and cat == Category.PRO:
                cat = Category.PUB  # 94 hours, but not enough 专业科目: not met
            r = HourRecord(person=p, year=YEAR, category=cat, learning_form=LearningForm.TRAIN_ONLINE,
                           course_name=f"达标测试课程{k}", start_date=datetime.date(YEAR, 3, 1 + k),
                           end_date=datetime.date(YEAR, 3, 1 + k), hours=Decimal(hours),
                           source=Source.UNIT_IMPORT, status=Status.APPROVED)
            place_record(r, p)
            db.session.add(r)
    db.session.commit()


@pytest.mark.parametrize("username", ["admin", "bureau_js", "bureau_nj", "bureau_sz", "clerk_a", "agency_clerk"])
def test_figures_equal_independent_queries(app, ctx, username):
    _make_some_meet()
    user = _user(app, username)
    scope = scope_of(user)
    s = dashboard.summary(YEAR, scope=scope)
    persons, met, cat, src = _independent(user, YEAR)
    assert s.persons == len(persons) > 0
    assert s.met == len(met)
    assert {c: h for c, h, _n in s.by_category} == {c: cat.get(c, Decimal(0)) for c in Category}
    assert {c: h for c, h, _n in s.by_source} == {c: src.get(c, Decimal(0)) for c in Source}
    # Groups: one level below the user's region (or the units), each equal to its persons.
    if s.level == "city":
        key_of = lambda p: p.unit.region_code[:4] + "00"  # noqa: E731
    elif s.level == "district":
        key_of = lambda p: p.unit.region_code  # noqa: E731
    else:
        key_of = lambda p: p.unit_id  # noqa: E731
    expected = defaultdict(lambda: [0, 0])
    for p in persons:
        expected[key_of(p)][0] += 1
        expected[key_of(p)][1] += p.id in met
    assert {g.key: [g.persons, g.met] for g in s.groups} == dict(expected)
    # The aggregate over hour_record (what the totals replaced) says the same.
    r = dashboard.summary(YEAR, scope=scope, from_records=True)
    assert [(g.key, g.persons, g.met, g.professional, g.public) for g in r.groups] == \
        [(g.key, g.persons, g.met, g.professional, g.public) for g in s.groups]
    assert (r.by_category, r.by_source) == (s.by_category, s.by_source)
    assert dashboard.unmet_persons(YEAR, scope=scope, page_size=10000, from_records=True) == \
        dashboard.unmet_persons(YEAR, scope=scope, page_size=10000)
    # The unmet list is exactly the persons the requirement service says are short.
    count, rows = dashboard.unmet_persons(YEAR, scope=scope, page_size=10000)
    assert count == len(persons) - len(met)
    # The page (count from the summary, as the dashboard asks) is the same.
    assert dashboard.unmet_persons(YEAR, scope=scope, page_size=10000, summary=s) == (count, rows)
    assert {r.person_id for r in rows} == {p.id for p in persons} - met
    for r in rows[:10]:
        t = requirement.year_totals(r.person_id, YEAR)
        assert (r.professional, r.public, r.missing_total) == (t.professional, t.public, t.missing_total)


def test_levels_and_drill_down(app, ctx):
    scope = scope_of(_user(app, "bureau_js"))
    s = dashboard.summary(YEAR, scope=scope)
    assert s.level == "city" and {g.key for g in s.groups} >= {"320100", "320500"}
    nj = next(g for g in s.groups if g.key == "320100")
    assert nj.name == "南京市" and nj.drill == {"region": "320100"}
    d = dashboard.summary(YEAR, region="320100", scope=scope)
    assert d.level == "district" and all(g.key.startswith("3201") for g in d.groups)
    assert d.persons == nj.persons and d.met == nj.met
    u = dashboard.summary(YEAR, region="320102", scope=scope)
    assert u.level == "unit"
    unit_a = db.session.execute(select(Unit).where(Unit.name == "南京金陵科技有限公司")).scalar_one()
    one = dashboard.summary(YEAR, unit_id=unit_a.id, scope=scope)
    assert [g.key for g in one.groups] == [unit_a.id]


@pytest.mark.parametrize("username, unit_filter", [("clerk_a", False), ("bureau_js", True)])
def test_one_units_unmet_list_keeps_the_lists_order(app, ctx, username, unit_filter):
    """One unit's unmet list is ordered by (name, id) only (the unit's index gives it);
    that is the general order (region, unit, name, id) of the same rows, page by page."""
    scope = scope_of(_user(app, username))
    unit_a = db.session.execute(select(Unit).where(Unit.name == "南京金陵科技有限公司")).scalar_one()
    unit_id = unit_a.id if unit_filter else None
    sel = dashboard.resolve(YEAR, None, unit_id, scope)
    general = [r[0] for r in db.session.execute(
        dashboard._unmet_select(sel, scope).order_by(*dashboard.UNMET_ORDER)).all()]
    assert len(general) > 3
    count, first = dashboard.unmet_persons(YEAR, unit_id=unit_id, scope=scope, page_size=3)
    _, second = dashboard.unmet_persons(YEAR, unit_id=unit_id, scope=scope, page=1, page_size=3)
    assert count == len(general)
    assert [r.person_id for r in first + second] == general[:6]
    assert [s.person_id for s in dashboard.iter_unmet(YEAR, unit_id=unit_id, scope=scope)] == general


def test_thresholds_come_from_the_years_requirement(app, ctx):
    """The requirement is data (year_requirement, seeded from REQUIRED_HOURS_TOTAL):
    setting a year's recomputes the met flags the dashboard reads."""
    scope = scope_of(_user(app, "bureau_js"))
    before = dashboard.summary(YEAR, scope=scope)
    assert before.required_total == Decimal(str(app.config["REQUIRED_HOURS_TOTAL"]))
    requirement.set_requirement(YEAR, 20, app.config["REQUIRED_PROFESSIONAL_RATIO"])
    db.session.commit()
    after = dashboard.summary(YEAR, scope=scope)
    persons, met, _c, _s = _independent(_user(app, "bureau_js"), YEAR)
    assert after.met == len(met) > before.met
    assert after.required_total == Decimal(20)
    assert dashboard.summary(YEAR - 1, scope=scope).required_total == before.required_total  # other years keep it
    # A public floor no one reaches: nobody meets it.
    requirement.set_requirement(YEAR, 20, 0, public=500)
    db.session.commit()
    assert dashboard.summary(YEAR, scope=scope).met == 0


def test_scope_refusals_in_the_service(app, ctx):
    nj = scope_of(_user(app, "bureau_nj"))
    clerk = scope_of(_user(app, "clerk_a"))
    unit_b = db.session.execute(select(Unit).where(Unit.name == "苏州工业园区智造有限公司")).scalar_one()
    with pytest.raises(OutOfScope):
        dashboard.summary(YEAR, region="320500", scope=nj)
    with pytest.raises(OutOfScope):
        dashboard.summary(YEAR, unit_id=unit_b.id, scope=nj)
    with pytest.raises(OutOfScope):
        dashboard.summary(YEAR, unit_id=unit_b.id, scope=clerk)
    with pytest.raises(OutOfScope):
        dashboard.unmet_persons(YEAR, unit_id=unit_b.id, scope=clerk)


def _kpis(html):
    return dict(re.findall(r'id="kpi-([a-z-]+)">([^<]*)<', html))


def _grid_ids(client, url):
    """The record ids the hour grid lists for `url` (one page large enough for all)."""
    html = client.get(url + "&psize_HourRecordView=500").get_data(as_text=True)
    return {int(i) for i in re.findall(r"/hourrecordview/show/(\d+)", html)}


def test_page_shows_the_figures_and_grids_agree(app, login_as):
    with app.app_context():
        _make_some_meet()
        user = _user(app, "bureau_nj")
        persons, met, cat, src = _independent(user, YEAR)
    c = login_as("bureau_nj")
    html = c.get(f"/dashboard/?year={YEAR}").get_data(as_text=True)
    assert "达标统计" in html
    k = _kpis(html)
    assert int(k["persons"]) == len(persons)
    assert int(k["met"]) == len(met)
    assert int(k["not-met"]) == len(persons) - len(met)
    assert float(k["hours"]) == float(sum(cat.values()))
    assert html.count("<svg") >= 4 and "玄武区" in html and "苏州" not in html
    # The bars link to the hour grid with the same filters; the grid shows the same records.
    links = re.findall(r'href="(/hourrecordview/list/\?[^"]+_flt_0_category=PRO[^"]*)"', html)
    assert links
    with app.app_context():
        pro = {r.id for r in db.session.execute(select(HourRecord)).unique().scalars()
               if r.year == YEAR and r.status == Status.APPROVED and r.category == Category.PRO
               and (r.region_code or "").startswith("3201")}
        pro_hours = sum(db.session.get(HourRecord, i).hours for i in pro)
    assert pro and _grid_ids(c, links[0].replace("&amp;", "&")) == pro
    assert pro_hours == cat[Category.PRO]


def test_page_scope_refusals(app, login_as):
    with app.app_context():
        unit_b = db.session.execute(select(Unit).where(Unit.name == "苏州工业园区智造有限公司")).scalar_one().id
    c = login_as("bureau_nj")
    assert c.get(f"/dashboard/?year={YEAR}&region=320500").status_code == 404
    assert c.get(f"/dashboard/?year={YEAR}&unit={unit_b}").status_code == 404
    assert c.get(f"/dashboard/unmet.xlsx?year={YEAR}&unit={unit_b}").status_code == 404
    clerk = login_as("clerk_a")
    html = clerk.get(f"/dashboard/?year={YEAR}").get_data(as_text=True)
    assert "南京金陵科技有限公司" in html and "苏州工业园区智造有限公司" not in html
    assert clerk.get(f"/dashboard/?year={YEAR}&unit={unit_b}").status_code == 404
    # An applicant has no dashboard.
    resp = login_as("zhangsan").get(f"/dashboard/?year={YEAR}")
    assert resp.status_code != 200 or "达标率" not in resp.get_data(as_text=True)


def test_unmet_export_xlsx(app, login_as):
    with app.app_context():
        user = _user(app, "bureau_nj")
        persons, met, _c, _s = _independent(user, YEAR)
        short = {p.id_number: p for p in persons if p.id not in met}
    c = login_as("bureau_nj")
    resp = c.get(f"/dashboard/unmet.xlsx?year={YEAR}")
    assert resp.status_code == 200
    rows = list(load_workbook(io.BytesIO(resp.get_data())).active.values)
    assert rows[0][:3] == ("姓名", "证件类型", "证件号码")
    assert len(rows) - 1 == len(short)
    # Bureau staff see masked ID numbers; the names match the short persons.
    assert sorted(r[0] for r in rows[1:]) == sorted(p.name for p in short.values())
    assert all(r[2] not in short for r in rows[1:])
    # A unit clerk's export holds only its own persons, with full ID numbers.
    with app.app_context():
        clerk_user = _user(app, "clerk_a")
        own, own_met, _c, _s = _independent(clerk_user, YEAR)
        own_short = {p.id_number for p in own if p.id not in own_met}
    rows = list(load_workbook(io.BytesIO(login_as("clerk_a").get(f"/dashboard/unmet.xlsx?year={YEAR}").get_data())).active.values)
    assert {r[2] for r in rows[1:]} == own_short


def test_unmet_export_writes_formula_like_names_as_text(app, login_as):
    """A name that looks like a formula is text in the file, never a live formula."""
    c = login_as("clerk_a")
    first = load_workbook(io.BytesIO(c.get(f"/dashboard/unmet.xlsx?year={YEAR}").get_data())).active
    number = list(first.values)[1][2]
    with app.app_context():
        person = db.session.execute(select(Person).where(Person.id_number == number)).scalar_one()
        person.name = '=HYPERLINK("http://x","y")'
        db.session.commit()
    sheet = load_workbook(io.BytesIO(c.get(f"/dashboard/unmet.xlsx?year={YEAR}").get_data())).active
    name = next(row for row in sheet.iter_rows(min_row=2) if row[2].value == number)[0]
    assert name.data_type != "f" and name.value == "\'=HYPERLINK(\"http://x\",\"y\")"
