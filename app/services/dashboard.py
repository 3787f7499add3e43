"""Compliance dashboard (达标统计): for a year and the user's scope, how many persons
meet the yearly requirement, the completion rate by city / district / unit, approved
hours by category and by source, and the persons not meeting it yet.

Every figure is one set-based SQL aggregate (no per-person loop), read through the
row scope: persons through Person's rule, hours through HourRecord's rule.  The
requirement's thresholds and counting statuses come from app.services.requirement;
`_met` is requirement.met_condition, YearTotals.met as SQL (tests check they agree person by person).
"""
from dataclasses import dataclass, field
from decimal import Decimal

from flask_babel import gettext as _
from sqlalchemy import case, func, literal, not_, select

from app.extensions import db
from app.models import Category, HourRecord, Person, Region, Source, Unit
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


_met = requirement.met_condition


def _level(sel, scope):
    if sel.unit is not None:
        return "unit"
    if sel.prefix is None:
        return "city" if scope.everything else "unit"
    return {2: "city", 4: "district"}.get(len(sel.prefix), "unit")


def summary(year, region=None, unit_id=None, scope=None):
    """The dashboard figures for `year` under the filters; see Summary."""
    scope = current_scope() if scope is None else scope
    sel = resolve(year, region, unit_id, scope)
    level = _level(sel, scope)
    frm, conds, pro, pub = _population(sel, scope)
    met = case((_met(pro, pub), 1), else_=0)
    if level == "city":
        key = func.substr(Unit.region_code, 1, 4).concat(literal("00"))
    elif level == "district":
        key = Unit.region_code
    else:
        key = Unit.id
    rows = db.session.execute(
        select(key.label("k"), func.count(Person.id), func.sum(met), func.sum(pro), func.sum(pub))
        .select_from(frm).where(*conds).group_by(key)
    ).all()
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
    total, professional = requirement.thresholds()
    return Summary(
        year=sel.year, level=level, region=sel.region, unit=sel.unit, groups=groups,
        by_category=_hours_by(HourRecord.category, list(Category), sel, scope),
        by_source=_hours_by(HourRecord.source, list(Source), sel, scope),
        required_total=total, required_professional=professional,
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


def _unmet_select(sel, scope):
    frm, conds, pro, pub = _population(sel, scope)
    return (
        select(Person.id, Person.name, Person.id_type, Person.id_number, Unit.name,
               Unit.region_code, pro, pub)
        .select_from(frm)
        .where(*conds, not_(_met(pro, pub)))
    )


def unmet_persons(year, region=None, unit_id=None, scope=None, page=0, page_size=50, summary=None):
    """(count, [Shortfall]) of the persons in the selection not meeting the year's
    requirement, one page, ordered by region, unit, name.  With the selection's
    `summary` its not_met is the count (the same persons, the same condition):
    each count reads every person's hours of the year, seconds for a province."""
    scope = current_scope() if scope is None else scope
    sel = resolve(year, region, unit_id, scope)
    q = _unmet_select(sel, scope)
    if summary is not None:
        count = summary.not_met
        if not count:
            return 0, []
    else:
        count = db.session.execute(select(func.count()).select_from(q.subquery())).scalar_one()
    rows = db.session.execute(
        q.order_by(Unit.region_code, Unit.name, Person.name, Person.id)
        .limit(page_size).offset(max(page, 0) * page_size)
    ).all()
    return count, [_shortfall(r, sel.year) for r in rows]


def iter_unmet(year, region=None, unit_id=None, scope=None):
    """Every Shortfall of the selection, streamed (for the export)."""
    scope = current_scope() if scope is None else scope
    sel = resolve(year, region, unit_id, scope)
    q = _unmet_select(sel, scope).order_by(Unit.region_code, Unit.name, Person.name, Person.id)
    for r in db.session.execute(q.execution_options(yield_per=2000)):
        yield _shortfall(r, sel.year)


def _shortfall(row, year):
    pid, name, id_type, id_number, unit_name, region_code, pro, pub = row
    return Shortfall(pid, name, id_type, id_number, unit_name or "", region_code or "",
                     requirement.totals_from(year, pro, pub))


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
