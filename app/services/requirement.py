"""The yearly requirement (SPEC §4) and each person's yearly totals.

A year is met (达标) with at least the requirement's total of approved hours, of
which 专业科目 at least total × professional ratio (one decimal), and 公需科目 at
least the public floor when one is set.  The requirement is data
(models.YearRequirement: a row per year, year 0 for every other year), seeded
from REQUIRED_HOURS_TOTAL / REQUIRED_PROFESSIONAL_RATIO by migration i19a0001;
database triggers read it for the met flags of person_year_total, and
`set_requirement` changes a year and recomputes those flags set-based.  It is
deliberately small: issue 20 turns it into a rules model.

A person's approved hours of a year are read from models.PersonYearTotal, kept
by the triggers in the transaction of every change to hour_record."""
import datetime
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from flask import current_app, g
from flask_babel import gettext as _
from sqlalchemy import and_, case, false, func, or_, select, true, update

from app.extensions import db
from app.models import Person, PersonYearTotal, Status, YearRequirement, YearRequirementLevel
from app.models.person import TITLE_LEVELS

# Only approved records count; revoked ones never do.  (The triggers of
# migration i19a0001 count status 'APPROVED': change both together.)
COUNTING_STATUSES = (Status.APPROVED,)

DEFAULT_YEAR = 0  # year_requirement's row for every year without its own
ONE = Decimal("0.1")


@dataclass(frozen=True)
class Requirement:
    year: int  # the row it comes from (0: the default)
    total: Decimal
    ratio: Decimal
    professional: Decimal
    public: Decimal = None  # the 公需 floor, None: none
    level: str = None  # the title level it is for (None: every person without a row of their level)


@dataclass(frozen=True)
class YearTotals:
    year: int
    professional: Decimal
    public: Decimal
    required_total: Decimal
    required_professional: Decimal
    required_public: Decimal = None
    level: str = None  # the title level whose own requirement applies (None: the year's)

    @property
    def total(self):
        return self.professional + self.public

    @property
    def met(self):
        """达标: total and professional share (and the public floor, if any) reach the thresholds."""
        return (self.total >= self.required_total and self.professional >= self.required_professional
                and (self.required_public is None or self.public >= self.required_public))

    @property
    def missing_total(self):
        return max(self.required_total - self.total, Decimal(0))

    @property
    def missing_professional(self):
        return max(self.required_professional - self.professional, Decimal(0))

    @property
    def missing_public(self):
        return max((self.required_public or Decimal(0)) - self.public, Decimal(0))


def _professional_of(total, ratio):
    return (Decimal(total) * Decimal(str(ratio))).quantize(ONE, rounding=ROUND_HALF_UP)


def _from_config(config):
    total = Decimal(str(config["REQUIRED_HOURS_TOTAL"]))
    ratio = Decimal(str(config["REQUIRED_PROFESSIONAL_RATIO"]))
    return Requirement(DEFAULT_YEAR, total, ratio, _professional_of(total, config["REQUIRED_PROFESSIONAL_RATIO"]))


def _cache():
    try:
        return g.setdefault("_ce_requirements", {})
    except RuntimeError:  # no app context
        return {}


def requirement_for(year=None, level=None):
    """The Requirement that applies to `year` (None: the default row) for a
    person of title `level` (初级 / 中级 / 高级; None: no level): the year's row
    of that level in year_requirement_level, else the year's requirement."""
    year = DEFAULT_YEAR if year is None else int(year)
    cache = _cache()
    if level is not None and year != DEFAULT_YEAR:
        levels = level_requirements(year)
        if level in levels:
            return levels[level]
    if year in cache:
        return cache[year]
    row = db.session.execute(
        select(YearRequirement).where(YearRequirement.year.in_((year, DEFAULT_YEAR)))
        .order_by(YearRequirement.year.desc()).limit(1)
    ).scalar_one_or_none()
    if row is None:  # a database from before migration i19a0001's seed
        req = _from_config(current_app.config)
    else:
        req = Requirement(row.year, Decimal(row.required_total), Decimal(row.professional_ratio),
                          Decimal(row.required_professional),
                          None if row.required_public is None else Decimal(row.required_public))
    cache[year] = req
    return req


def level_requirements(year):
    """{level: Requirement} of the levels that have their own requirement in `year`."""
    year = int(year)
    cache = _cache()
    key = ("levels", year)
    if key not in cache:
        rows = db.session.execute(select(YearRequirementLevel).where(YearRequirementLevel.year == year)).scalars()
        cache[key] = {r.level: Requirement(r.year, Decimal(r.required_total), Decimal(r.professional_ratio),
                                           Decimal(r.required_professional),
                                           None if r.required_public is None else Decimal(r.required_public), r.level)
                      for r in rows}
    return cache[key]


def thresholds(config=None, year=None):
    """(required total, required professional) as Decimals with one decimal place:
    from `config` when given, else the requirement of `year`."""
    req = _from_config(config) if config is not None else requirement_for(year)
    return req.total, req.professional


def _cond(req, professional, public):
    cond = and_(professional + public >= req.total, professional >= req.professional)
    if req.public is not None:
        cond = and_(cond, public >= req.public)
    return cond


def met_condition(professional, public, config=None, year=None, level=None):
    """`YearTotals.met` as a SQL condition over two summed-hours expressions (the
    aggregate over hour_record); the same thresholds, the same rule.  `level` is
    the SQL expression of the person's title level (Person.title_level): a level
    with a requirement of its own in `year` is held to it."""
    if config is not None:
        return _cond(_from_config(config), professional, public)
    base = _cond(requirement_for(year), professional, public)
    levels = level_requirements(year) if (level is not None and year is not None) else {}
    if not levels:
        return base
    # `level IS NOT NULL` first: without it a person with no level made `level = lv`
    # NULL, the whole condition NULL, and NOT(...) left the person out of the unmet list.
    return or_(*[and_(level.is_not(None), level == lv, _cond(req, professional, public))
                 for lv, req in levels.items()],
               and_(or_(level.is_(None), level.notin_(list(levels))), base))


def totals_from(year, professional, public, config=None, level=None):
    req = _from_config(config) if config is not None else requirement_for(year, level)
    return YearTotals(int(year), Decimal(professional or 0), Decimal(public or 0), req.total,
                      req.professional, req.public, level if req.level else None)


def levels_of(person_ids):
    """{person id: title level} (None: no level)."""
    out = {}
    ids = list(person_ids)
    for i in range(0, len(ids), 1000):
        out.update(db.session.execute(select(Person.id, Person.title_level).where(Person.id.in_(ids[i:i + 1000]))).all())
    return out


def totals_of(person_ids, year):
    """{person id: YearTotals of `year`} for these persons (from person_year_total),
    each under the requirement of the person's title level."""
    T = PersonYearTotal
    found = {}
    ids = list(person_ids)
    for i in range(0, len(ids), 1000):
        found.update((pid, (pro, pub)) for pid, pro, pub in db.session.execute(
            select(T.person_id, T.professional, T.public).where(T.person_id.in_(ids[i:i + 1000]), T.year == int(year))
        ).all())
    levels = levels_of(ids) if level_requirements(year) else {}
    return {pid: totals_from(year, *found.get(pid, (0, 0)), level=levels.get(pid)) for pid in ids}


def year_totals(person_id, year):
    """Approved hours of one person in one year, per category, with 达标 under
    the requirement of the person's title level."""
    row = db.session.execute(
        select(PersonYearTotal.professional, PersonYearTotal.public)
        .where(PersonYearTotal.person_id == person_id, PersonYearTotal.year == int(year))
    ).first()
    return totals_from(year, *(row or (0, 0)), level=levels_of([person_id]).get(person_id))


def has_hours():
    """SQL condition on PersonYearTotal: the year has approved hours."""
    return or_(PersonYearTotal.professional != 0, PersonYearTotal.public != 0)


def totals_by_year(person_id):
    """{year: YearTotals} for every year with approved hours, newest first."""
    T = PersonYearTotal
    rows = db.session.execute(
        select(T.year, T.professional, T.public).where(T.person_id == person_id, has_hours())
        .order_by(T.year.desc())
    ).all()
    level = levels_of([person_id]).get(person_id)
    return {y: totals_from(y, pro, pub, level=level) for y, pro, pub in rows}


# ------------------------------------------------------------ changing a year


def met_sql(year, professional, public, person_id=None):
    """The met flag of person_year_total as the triggers compute it: for person
    `person_id` (an SQL expression) the row of the person's title level in
    year_requirement_level, else the row of `year` in year_requirement, else
    year 0's (an SQL expression; migrations i19a0001 and i20a0002)."""
    R = YearRequirement
    rule = (
        select(case((and_(professional + public >= R.required_total, professional >= R.required_professional,
                          or_(R.required_public.is_(None), public >= R.required_public)), true()), else_=false()))
        .where(R.year.in_((year, DEFAULT_YEAR))).order_by(R.year.desc()).limit(1).scalar_subquery()
    )
    if person_id is None:
        return func.coalesce(rule, false())
    L = YearRequirementLevel
    P = Person.__table__.alias("level_person")
    own = (
        select(case((and_(professional + public >= L.required_total, professional >= L.required_professional,
                          or_(L.required_public.is_(None), public >= L.required_public)), true()), else_=false()))
        .select_from(L.__table__.join(P, P.c.title_level == L.level))
        .where(P.c.id == person_id, L.year == year).scalar_subquery()
    )
    return func.coalesce(own, rule, false())


def _check_requirement(year, total, ratio, public):
    errors = []
    try:
        year = int(year)
    except (TypeError, ValueError):
        year = None
    if year is None or not (year == DEFAULT_YEAR or 2000 <= year <= datetime.date.today().year + 1):
        errors.append(_("认定年度不正确"))
    try:
        total = Decimal(str(total)).quantize(ONE, rounding=ROUND_HALF_UP)
        if not Decimal(0) < total <= Decimal(1000):
            raise ValueError
    except Exception:
        errors.append(_("年度总学时须大于0且不超过1000"))
    try:
        ratio = Decimal(str(ratio))
        if not Decimal(0) <= ratio <= Decimal(1):
            raise ValueError
    except Exception:
        errors.append(_("专业科目比例须在0到1之间"))
    if public not in (None, ""):
        try:
            public = Decimal(str(public)).quantize(ONE, rounding=ROUND_HALF_UP)
            if public < 0:
                raise ValueError
        except Exception:
            errors.append(_("公需科目最低学时无效"))
    else:
        public = None
    if errors:
        from app.services.errors import ValidationFailed

        raise ValidationFailed("；".join(errors))
    return year, total, ratio, public


def _recompute(year):
    """Recompute the met flags of the years `year`'s row applies to (0: every year
    without its own), set-based, each person under the requirement of the
    person's title level; the triggers carry the change into the unit totals.
    Returns the number of person-years whose flag changed."""
    T = PersonYearTotal
    new_met = met_sql(T.year, T.professional, T.public, T.person_id)
    if year == DEFAULT_YEAR:
        applies = T.year.notin_(select(YearRequirement.year).where(YearRequirement.year != DEFAULT_YEAR))
    else:
        applies = T.year == year
    return db.session.execute(
        update(T).where(applies, T.met != new_met).values(met=new_met)
        .execution_options(synchronize_session=False)
    ).rowcount


def set_requirement(year, total, ratio, public=None, *, user=None, level=None):
    """Set the requirement of `year` (0: every year without its own) — or, with
    `level` (初级 / 中级 / 高级), the year's requirement for persons of that title
    level — and recompute the met flags of the years it applies to, set-based.
    Returns the number of person-years whose flag changed.  Raises
    ValidationFailed.  The caller commits."""
    from app.services import audit
    from app.services.errors import ValidationFailed

    if level is not None:
        if level not in TITLE_LEVELS:
            raise ValidationFailed(_("职称级别应为初级、中级或高级"))
        if int(year or 0) == DEFAULT_YEAR:
            raise ValidationFailed(_("按职称级别的学时要求须指定年度"))
    year, total, ratio, public = _check_requirement(year, total, ratio, public)
    model = YearRequirementLevel if level is not None else YearRequirement
    row = db.session.get(model, (year, level) if level is not None else year)
    old = None
    if row is None:
        row = model(year=year, level=level) if level is not None else model(year=year)
        db.session.add(row)
    else:
        old = {"total": row.required_total, "ratio": row.professional_ratio, "public": row.required_public}
    row.required_total = total
    row.professional_ratio = ratio.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    row.required_professional = _professional_of(total, ratio)
    row.required_public = public
    row.updated_at = datetime.datetime.utcnow()
    db.session.flush()
    _cache().clear()
    changed = _recompute(year)
    audit.record("set_requirement", "YearRequirement", year, old=old,
                 new={"total": total, "ratio": ratio, "public": public, "flags_changed": changed,
                      **({"level": level} if level else {})}, user=user)
    return changed


def clear_level_requirement(year, level, *, user=None):
    """Remove `year`'s own requirement for title `level` (its persons follow the
    year's requirement again) and recompute the flags.  Returns the number of
    person-years whose flag changed (0 when there was none)."""
    from app.services import audit

    row = db.session.get(YearRequirementLevel, (int(year), level))
    if row is None:
        return 0
    old = {"total": row.required_total, "ratio": row.professional_ratio, "public": row.required_public}
    db.session.delete(row)
    db.session.flush()
    _cache().clear()
    changed = _recompute(int(year))
    audit.record("set_requirement", "YearRequirement", int(year), old=old,
                 new={"level": level, "removed": True, "flags_changed": changed}, user=user)
    return changed
