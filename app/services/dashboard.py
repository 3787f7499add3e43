"""Compliance dashboard (达标统计): for a year and the user's scope, how many persons
meet the yearly requirement, the completion rate by city / district / unit, approved
hours by category and by source, and the persons not meeting it yet.

Every figure is read from the yearly totals the database keeps in the writing
transaction (migration i19a0001): a region's figures sum its units' rows of
unit_persons / unit_year_total / unit_year_source (some 20 000 units for a
province, not a million persons), and the unmet list reads each person's
person_year_total row.  The units are chosen by Unit's scope rule and the hours
by HourRecord's columns, as the same filters on the records would.

A scope that is not a set of regions and units (an organizer's reported
records, an applicant's own) is answered by the aggregate over hour_record
(`from_records=True`, also what bench/dashboard_bench.py compares with); it is
the same rule (requirement.met_condition), and the tests check that both agree.
"""
from dataclasses import dataclass, field
from decimal import Decimal

from flask_babel import gettext as _
from sqlalchemy import case, false, func, literal, not_, or_, select, union_all

from app.extensions import db
from app.models import (
    Category, HourRecord, Person, PersonYearTotal, Region, RegionYearSource, Source, Unit, UnitPersons,
    UnitYearSource, UnitYearTotal,
)
from app.models.regions import region_prefix, region_range
from app.security.scope import current_scope, get_scoped, scope_clause
from app.services import requirement
from app.services.errors import OutOfScope, ValidationFailed
from app.services.national import check_region, check_region_in_scope, check_year

ZERO = Decimal(0)


@dataclass
class Group:
    """One bar of the drill-down: a city, a district or a unit."""

    key: object  # region code or unit id (None: persons without a unit)
    name: str
    persons: int
    met: int
    professional: Decimal
    public: Decimal
    drill: dict = field(default_factory=dict)  # query args of the next level down

    @property
    def rate(self):
        return self.met / self.persons if self.persons else 0.0

    @property
    def not_met(self):
        return self.persons - self.met


@dataclass
class Summary:
    year: int
    level: str  # what the groups are: "city" | "district" | "unit"
    region: object  # Region filtered on (None: the whole scope)
    unit: object  # Unit filtered on (None)
    groups: list
    by_category: list  # [(Category, hours, records)]
    by_source: list  # [(Source, hours, records)]
    required_total: Decimal
    required_professional: Decimal
    # {title level: Requirement} of the levels held to a requirement of their own (issue 20)
    by_level: dict = None

    @property
    def persons(self):
        return sum(g.persons for g in self.groups)

    @property
    def met(self):
        return sum(g.met for g in self.groups)

    @property
    def not_met(self):
        return self.persons - self.met

    @property
    def rate(self):
        return self.met / self.persons if self.persons else 0.0

    @property
    def hours_total(self):
        return sum((h for _c, h, _n in self.by_category), ZERO)

    @property
    def records_total(self):
        return sum(n for _c, _h, n in self.by_category)


@dataclass(frozen=True)
class Selection:
    """The resolved filter: a year, a region prefix and/or a unit, all inside the scope."""

    year: int
    prefix: str = None
    region: object = None
    unit: object = None


def resolve(year, region=None, unit_id=None, scope=None):
    """Check the filters against the scope.  Raises ValidationFailed (bad input) or
    OutOfScope (a region or unit the user may not see)."""
    scope = current_scope() if scope is None else scope
    year = check_year(year)
    if year is None:
        raise ValidationFailed(_("请选择认定年度"))
    unit = None
    if unit_id not in (None, ""):
        unit = get_scoped(Unit, unit_id, scope)
        if unit is None:
            raise OutOfScope(_("该单位不存在或不在您的权限范围内"))
    prefix = check_region_in_scope(check_region(region), scope)
    if prefix is None and not scope.everything and len(scope.region_prefixes) == 1 and unit is None:
        prefix = scope.region_prefixes[0]
    region_row = None
    if prefix:
        region_row = db.session.get(Region, prefix.ljust(6, "0"))
        if region_row is None:
            raise ValidationFailed(_("行政区划不存在"))
    return Selection(year, prefix, region_row, unit)


def _person_conditions(sel, scope):
    # The person's current unit must be in scope too: a person merely awaiting a
    # unit's confirmation (pending_unit_id) is not yet that unit's to count.
    conds = [scope_clause(Person, scope), scope_clause(Unit, scope)]
    if sel.prefix:
        conds.append(region_range(Unit.region_code, sel.prefix))
    if sel.unit is not None:
        conds.append(Person.unit_id == sel.unit.id)
    return conds


def _person_totals(sel, scope):
    """Approved hours of the year per person of the population, as a subquery
    (person_id, pro, pub).  Driven by the persons' ids, so that the (person_id, year)
    index serves a unit's or a city's dashboard without reading the province."""
    H = HourRecord
    pro = func.sum(case((H.category == Category.PRO, H.hours), else_=0))
    pub = func.sum(case((H.category == Category.PUB, H.hours), else_=0))
    persons = (
        select(Person.id).select_from(Person)
        .outerjoin(Unit, Unit.id == Person.unit_id).where(*_person_conditions(sel, scope))
    )
    return (
        select(H.person_id, pro.label("pro"), pub.label("pub"))
        .where(H.person_id.in_(persons), H.year == sel.year,
               H.status.in_(requirement.COUNTING_STATUSES))
        .group_by(H.person_id)
        .subquery("totals")
    )


def _population(sel, scope):
    """(select_from clause, where conditions, pro expr, pub expr) of the persons in scope."""
    totals = _person_totals(sel, scope)
    pro = func.coalesce(totals.c.pro, 0)
    pub = func.coalesce(totals.c.pub, 0)
    frm = Person.__table__.outerjoin(Unit.__table__, Unit.id == Person.unit_id).outerjoin(
        totals, totals.c.person_id == Person.id
    )
    return frm, _person_conditions(sel, scope), pro, pub


def _met(pro, pub, year):
    # each person under the requirement of the person's title level (issue 20)
    return requirement.met_condition(pro, pub, year=year, level=Person.title_level)


def _level(sel, scope):
    if sel.unit is not None:
        return "unit"
    if sel.prefix is None:
        return "city" if scope.everything else "unit"
    return {2: "city", 4: "district"}.get(len(sel.prefix), "unit")


def _group_key(level):
    if level == "city":
        return func.substr(Unit.region_code, 1, 4).concat(literal("00"))
    if level == "district":
        return Unit.region_code
    return Unit.id


def from_totals(scope):
    """True when the scope is a set of regions and / or units (or everything):
    its persons are those whose unit the scope holds, which the unit totals
    answer.  Organizers' and applicants' scopes are counted from the records."""
    return scope.everything or (
        (scope.region_prefixes or scope.unit_ids) and not scope.reporter_unit_ids and not scope.person_ids
    )


def summary(year, region=None, unit_id=None, scope=None, *, from_records=False):
    """The dashboard figures for `year` under the filters; see Summary.
    `from_records`: aggregate hour_record instead of reading the totals (the
    figures are the same; the benchmark compares the two)."""
    scope = current_scope() if scope is None else scope
    sel = resolve(year, region, unit_id, scope)
    level = _level(sel, scope)
    if from_records or not from_totals(scope):
        rows = _groups_from_records(sel, scope, level)
        by_category = _hours_by(HourRecord.category, list(Category), sel, scope)
        by_source = _hours_by(HourRecord.source, list(Source), sel, scope)
    else:
        rows = _groups_from_totals(sel, scope, level)
        by_category, by_source = _hours_from_totals(sel, scope)
    return _summary(sel, level, rows, by_category, by_source)


def _groups_from_records(sel, scope, level):
    frm, conds, pro, pub = _population(sel, scope)
    met = case((_met(pro, pub, sel.year), 1), else_=0)
    key = _group_key(level)
    return db.session.execute(
        select(key.label("k"), func.count(Person.id), func.sum(met), func.sum(pro), func.sum(pub))
        .select_from(frm).where(*conds).group_by(key)
    ).all()


def _unit_conditions(sel, scope):
    """The units whose persons the selection counts (Unit's scope rule, the
    region and the unit filtered on)."""
    conds = [scope_clause(Unit, scope)]
    if sel.prefix:
        conds.append(region_range(Unit.region_code, sel.prefix))
    if sel.unit is not None:
        conds.append(Unit.id == sel.unit.id)
    return conds


def _with_no_unit(sel, scope):
    """Persons without a unit are counted only by an unfiltered everything scope."""
    return scope.everything and not sel.prefix and sel.unit is None


def _groups_from_totals(sel, scope, level):
    """[(key, persons, met, professional, public)] from unit_persons and
    unit_year_total (a key's rows summed: PostgreSQL may hold several)."""
    P, T = UnitPersons, UnitYearTotal
    key = _group_key(level)
    conds = _unit_conditions(sel, scope)
    persons = dict(db.session.execute(
        select(key, func.sum(P.persons)).join(Unit, Unit.id == P.unit_id).where(*conds).group_by(key)
    ).all())
    sums = {k: (m, p, q) for k, m, p, q in db.session.execute(
        select(key, func.sum(T.met), func.sum(T.professional), func.sum(T.public))
        .join(Unit, Unit.id == T.unit_id).where(T.year == sel.year, *conds).group_by(key)
    ).all()}
    if _with_no_unit(sel, scope):
        n = db.session.execute(select(func.sum(P.persons)).where(P.unit_id == 0)).scalar()
        if n:
            persons[None] = n
            sums[None] = db.session.execute(
                select(func.sum(T.met), func.sum(T.professional), func.sum(T.public))
                .where(T.unit_id == 0, T.year == sel.year)
            ).one()
    return [(k, n, *sums.get(k, (0, 0, 0))) for k, n in persons.items() if n]


def _source_table(sel, scope):
    """The table the hours by category / source are summed from: the region sums
    (a few rows a region and year) unless the selection or the scope names units."""
    if sel.unit is None and not scope.unit_ids:
        return RegionYearSource
    return UnitYearSource


def _source_conditions(S, sel, scope):
    """hour_conditions on the copies of the record columns in `S` (UnitYearSource
    or RegionYearSource)."""
    conds = [S.year == sel.year]
    if not scope.everything:
        parts = [region_range(S.region_code, p) for p in scope.region_prefixes]
        if scope.unit_ids:
            parts.append(S.unit_id.in_(scope.unit_ids))
        conds.append(or_(*parts) if parts else false())
    if sel.prefix:
        conds.append(region_range(S.region_code, sel.prefix))
    if sel.unit is not None:
        conds.append(S.unit_id == sel.unit.id)
    return conds


def _hours_from_totals(sel, scope):
    S = _source_table(sel, scope)
    rows = db.session.execute(
        select(S.category, S.source, func.sum(S.hours), func.sum(S.records))
        .where(*_source_conditions(S, sel, scope)).group_by(S.category, S.source)
    ).all()
    cat, src = {}, {}
    for c, s_, h, n in rows:
        h, n = Decimal(h or 0), int(n or 0)
        ch, cn = cat.get(c, (ZERO, 0))
        cat[c] = (ch + h, cn + n)
        sh, sn = src.get(s_, (ZERO, 0))
        src[s_] = (sh + h, sn + n)
    return ([(m, *cat.get(m, (ZERO, 0))) for m in Category],
            [(m, *src.get(m, (ZERO, 0))) for m in Source])


def _summary(sel, level, rows, by_category, by_source):
    names = _names(level, [r[0] for r in rows if r[0] is not None])
    groups = []
    for k, n, m, p, q in rows:
        if level == "unit":
            drill = {"unit": k} if k is not None else {}
        else:
            drill = {"region": k} if k is not None else {}
        groups.append(Group(k, names.get(k, _("未归属单位")), int(n), int(m or 0),
                            Decimal(p or 0), Decimal(q or 0), drill))
    groups.sort(key=lambda g: (-g.rate, str(g.key)))
    total, professional = requirement.thresholds(year=sel.year)
    return Summary(
        year=sel.year, level=level, region=sel.region, unit=sel.unit, groups=groups,
        by_category=by_category, by_source=by_source,
        required_total=total, required_professional=professional,
        by_level=requirement.level_requirements(sel.year),
    )


def _names(level, keys):
    if not keys:
        return {}
    if level == "unit":
        return dict(db.session.execute(select(Unit.id, Unit.name).where(Unit.id.in_(keys))).all())
    return {
        code: name
        for code, name in db.session.execute(
            select(Region.code, Region.name).where(Region.code.in_(keys))
        ).all()
    }


def hour_conditions(sel, scope):
    """The approved records of the selection: what the hour grid shows when filtered
    by year, status 已核准 and the region / unit."""
    H = HourRecord
    conds = [scope_clause(H, scope), H.year == sel.year, H.status.in_(requirement.COUNTING_STATUSES),
             # Always true (two categories), but it lets the planner use the
             # (year, category, region) / (unit, year, category) indexes.
             H.category.in_(list(Category))]
    if sel.prefix:
        conds.append(region_range(H.region_code, sel.prefix))
    if sel.unit is not None:
        conds.append(H.unit_id == sel.unit.id)
    return conds


def _hours_by(column, members, sel, scope):
    rows = dict(
        (k, (Decimal(h or 0), int(n)))
        for k, h, n in db.session.execute(
            select(column, func.sum(HourRecord.hours), func.count(HourRecord.id))
            .where(*hour_conditions(sel, scope)).group_by(column)
        ).all()
    )
    return [(m, *rows.get(m, (ZERO, 0))) for m in members]


# ------------------------------------------------------------- persons not met


@dataclass
class Shortfall:
    """A person not meeting the year's requirement; the figures are the person's
    requirement.YearTotals (one rule for totals and shortfalls)."""

    person_id: int
    name: str
    id_type: object
    id_number: str
    unit_name: str
    region_code: str
    totals: requirement.YearTotals

    professional = property(lambda self: self.totals.professional)
    public = property(lambda self: self.totals.public)
    total = property(lambda self: self.totals.total)
    missing_total = property(lambda self: self.totals.missing_total)
    missing_professional = property(lambda self: self.totals.missing_professional)


def _unmet_select(sel, scope, from_records=False):
    if not from_records and from_totals(scope):
        return _unmet_from_totals(sel, scope)
    frm, conds, pro, pub = _population(sel, scope)
    return (
        select(Person.id, Person.name, Person.id_type, Person.id_number, Unit.name,
               Unit.region_code, pro, pub, Person.title_level)
        .select_from(frm)
        .where(*conds, not_(_met(pro, pub, sel.year)))
    )


# Region, unit, name.  The unit's id separates two units of one name, so that the
# (region_code, name, id) index of units and the (unit_id, name, id) index of
# persons give the page in order without sorting the region.
UNMET_ORDER = (Unit.region_code, Unit.name, Unit.id, Person.name, Person.id)


def _unmet_order(sel, scope):
    """UNMET_ORDER; for one unit's persons just (name, id), the same order, which the
    (unit_id, name, id) index gives without sorting the unit (PostgreSQL cannot tell
    that the unit's region and name are the same on every row)."""
    one_unit = sel.unit is not None or (
        not scope.everything and not scope.region_prefixes and len(scope.unit_ids) == 1
        and not scope.reporter_unit_ids and not scope.person_ids)
    return (Person.name, Person.id) if one_unit else UNMET_ORDER


def _unmet_from_totals(sel, scope):
    """The persons of the selection's units whose person_year_total row is
    missing (no approved hours) or not met."""
    T = PersonYearTotal
    conds = _unit_conditions(sel, scope)
    frm = Person.__table__.outerjoin(T.__table__, (T.person_id == Person.id) & (T.year == sel.year))
    if _with_no_unit(sel, scope):
        frm = frm.outerjoin(Unit.__table__, Unit.id == Person.unit_id)
    else:
        frm = frm.join(Unit.__table__, Unit.id == Person.unit_id)
    return (
        select(Person.id, Person.name, Person.id_type, Person.id_number, Unit.name, Unit.region_code,
               func.coalesce(T.professional, 0), func.coalesce(T.public, 0), Person.title_level)
        .select_from(frm).where(*conds, or_(T.met.is_(None), T.met.is_(False)))
    )


def _unmet_count_from_totals(sel, scope):
    """Persons minus persons met of the selection's units, in one statement (the
    units are read once for both sums); the whole province's read every row
    without joining the units."""
    P, T = UnitPersons, UnitYearTotal
    parts = union_all(
        select(P.unit_id.label("unit_id"), P.persons.label("persons"), literal(0).label("met")),
        select(T.unit_id, literal(0), T.met).where(T.year == sel.year),
    ).subquery("parts")
    q = select(func.sum(parts.c.persons), func.sum(parts.c.met)).select_from(parts)
    if not _with_no_unit(sel, scope):
        q = q.join(Unit, Unit.id == parts.c.unit_id).where(*_unit_conditions(sel, scope))
    persons, met = db.session.execute(q).one()
    return int((persons or 0) - (met or 0))


def unmet_persons(year, region=None, unit_id=None, scope=None, page=0, page_size=50, summary=None,
                  from_records=False):
    """(count, [Shortfall]) of the persons in the selection not meeting the year's
    requirement, one page, ordered by region, unit, name.  The count is the
    summary's not_met (the selection's `summary` when given, else the unit
    totals'; counted from the records with `from_records`)."""
    scope = current_scope() if scope is None else scope
    sel = resolve(year, region, unit_id, scope)
    q = _unmet_select(sel, scope, from_records)
    if summary is not None:
        count = summary.not_met
    elif not from_records and from_totals(scope):
        count = _unmet_count_from_totals(sel, scope)
    else:
        count = db.session.execute(select(func.count()).select_from(q.subquery())).scalar_one()
    if not count:
        return 0, []
    rows = db.session.execute(
        q.order_by(*_unmet_order(sel, scope))
        .limit(page_size).offset(max(page, 0) * page_size)
    ).all()
    return count, [_shortfall(r, sel.year) for r in rows]


def iter_unmet(year, region=None, unit_id=None, scope=None):
    """Every Shortfall of the selection, streamed (for the export)."""
    scope = current_scope() if scope is None else scope
    sel = resolve(year, region, unit_id, scope)
    q = _unmet_select(sel, scope).order_by(*_unmet_order(sel, scope))
    for r in db.session.execute(q.execution_options(yield_per=2000)):
        yield _shortfall(r, sel.year)


def _shortfall(row, year):
    pid, name, id_type, id_number, unit_name, region_code, pro, pub, level = row
    return Shortfall(pid, name, id_type, id_number, unit_name or "", region_code or "",
                     requirement.totals_from(year, pro, pub, level=level))


def write_unmet_xlsx(year, out, region=None, unit_id=None, scope=None, id_format=None):
    """The persons not meeting the requirement as .xlsx (streamed, constant memory;
    names as text, never formulas).  `id_format(number)` masks ID numbers for roles
    that see them masked.  Returns the number of persons written."""
    from app.models.enums import label
    from app.services.xlsx_stream import write_xlsx

    id_format = id_format or (lambda v: v)
    headers = [
        _("姓名"), _("证件类型"), _("证件号码"), _("所在单位"), _("所在区划"), _("专业科目学时"),
        _("公需科目学时"), _("合计学时"), _("尚缺总学时"), _("尚缺专业科目学时"),
    ]
    rows = ([
        s.name, label(s.id_type), id_format(s.id_number), s.unit_name, s.region_code,
        float(s.professional), float(s.public), float(s.total),
        float(s.missing_total), float(s.missing_professional),
    ] for s in iter_unmet(year, region, unit_id, scope))
    return write_xlsx(out, headers, rows, title=_("未达标人员"), text_columns=(2, 4))


def breadcrumbs(sel_region, scope):
    """[(code, name)] from the top of the user's scope down to `sel_region`."""
    if sel_region is None:
        return []
    chain = []
    node = sel_region
    top = None if scope.everything else set(scope.region_prefixes)
    while node is not None:
        chain.append((node.code, node.name))
        if top is not None and region_prefix(node.code) in top:
            break
        node = node.parent
    return list(reversed(chain))
