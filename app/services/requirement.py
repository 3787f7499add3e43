"""The yearly requirement (SPEC §4): at least REQUIRED_HOURS_TOTAL hours of
approved records in a year, of which 专业科目 at least REQUIRED_PROFESSIONAL_RATIO
of the requirement.  Thresholds come from configuration."""
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from flask import current_app
from sqlalchemy import and_, func, select

from app.extensions import db
from app.models import Category, HourRecord, Status

# Only approved records count; revoked ones never do.
COUNTING_STATUSES = (Status.APPROVED,)


@dataclass(frozen=True)
class YearTotals:
    year: int
    professional: Decimal
    public: Decimal
    required_total: Decimal
    required_professional: Decimal

    @property
    def total(self):
        return self.professional + self.public

    @property
    def met(self):
        """达标: total and professional share both reach the thresholds."""
        return self.total >= self.required_total and self.professional >= self.required_professional

    @property
    def missing_total(self):
        return max(self.required_total - self.total, Decimal(0))

    @property
    def missing_professional(self):
        return max(self.required_professional - self.professional, Decimal(0))


def thresholds(config=None):
    """(required total, required professional) as Decimals with one decimal place."""
    config = config or current_app.config
    total = Decimal(str(config["REQUIRED_HOURS_TOTAL"]))
    pro = (total * Decimal(str(config["REQUIRED_PROFESSIONAL_RATIO"]))).quantize(
        Decimal("0.1"), rounding=ROUND_HALF_UP
    )
    return total, pro


def met_condition(professional, public, config=None):
    """`YearTotals.met` as a SQL condition over two summed-hours expressions, for
    set-based statistics (the dashboard); the same thresholds, the same rule."""
    total, pro = thresholds(config)
    return and_(professional + public >= total, professional >= pro)


def totals_from(year, professional, public, config=None):
    total, pro = thresholds(config)
    return YearTotals(int(year), Decimal(professional or 0), Decimal(public or 0), total, pro)


def year_totals(person_id, year):
    """Approved hours of one person in one year, per category, with 达标."""
    rows = db.session.execute(
        select(HourRecord.category, func.sum(HourRecord.hours))
        .where(HourRecord.person_id == person_id, HourRecord.year == year,
               HourRecord.status.in_(COUNTING_STATUSES))
        .group_by(HourRecord.category)
    ).all()
    by_cat = {c: s for c, s in rows}
    return totals_from(year, by_cat.get(Category.PRO), by_cat.get(Category.PUB))


def totals_by_year(person_id):
    """{year: YearTotals} for every year with approved hours, newest first."""
    rows = db.session.execute(
        select(HourRecord.year, HourRecord.category, func.sum(HourRecord.hours))
        .where(HourRecord.person_id == person_id, HourRecord.status.in_(COUNTING_STATUSES))
        .group_by(HourRecord.year, HourRecord.category)
    ).all()
    acc = {}
    for year, cat, s in rows:
        acc.setdefault(year, {})[cat] = s
    return {
        y: totals_from(y, acc[y].get(Category.PRO), acc[y].get(Category.PUB))
        for y in sorted(acc, reverse=True)
    }
