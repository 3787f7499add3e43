"""Checking and rebuilding the yearly totals (migration i19a0001) from the records.

The triggers keep person_year_total and the unit tables exact in the writing
transaction; `rebuild` recomputes every figure from hour_record, person and
year_requirement, compares it with what is stored, and rewrites only the keys
that differ.  When the totals are right it changes nothing and reports 0.
`differences` is the same comparison without writing (tests, monitoring).

`count_import_batch`: on SQLite, whose triggers run once a row, the insert
triggers skip an import batch's records (migration i19a0002) and the importer
counts the batch here, set-based, in its own transaction — as PostgreSQL's
statement triggers count any INSERT."""
from dataclasses import dataclass

from sqlalchemy import (
    case, delete, except_, exists, func, insert, literal_column, or_, select, tuple_, union_all, update,
)

from app.extensions import db
from app.models import (
    Category, HourRecord, HourTally, Person, PersonYearTotal, RegionYearSource, Status, UnitPersons, UnitYearSource,
    UnitYearTotal,
)
from app.services.requirement import COUNTING_STATUSES, met_sql

CHUNK = 500
# Literal SQL, so that PostgreSQL sees the grouped expression and the selected one as equal.
ZERO, NONE = literal_column("0"), literal_column("''")


@dataclass
class Table:
    """One table's comparison: `expected` and `stored` select the same columns,
    the first `key` of them identifying a figure; figures that are all zero
    count as absent."""

    name: str
    model: object
    key: tuple
    expected: object
    stored: object


def _expected_person_years(*where):
    H = HourRecord
    sums = (
        select(H.person_id, H.year,
               func.sum(case((H.category == Category.PRO, H.hours), else_=0)).label("professional"),
               func.sum(case((H.category == Category.PUB, H.hours), else_=0)).label("public"))
        .where(H.status == Status.APPROVED, *where).group_by(H.person_id, H.year).subquery("sums")
    )
    return select(
        sums.c.person_id, sums.c.year, sums.c.professional, sums.c.public,
        met_sql(sums.c.year, sums.c.professional, sums.c.public, sums.c.person_id).label("met"), Person.unit_id,
    ).join(Person, Person.id == sums.c.person_id)


def _nonzero(*cols):
    return or_(*[c != 0 for c in cols])


def tables():
    T, U, P, S, R = PersonYearTotal, UnitYearTotal, UnitPersons, UnitYearSource, RegionYearSource
    people = _expected_person_years().subquery("people")
    met_int = case((people.c.met, 1), else_=0)
    unit_of = func.coalesce(people.c.unit_id, ZERO)
    H = HourRecord
    h_unit, h_region = func.coalesce(H.unit_id, ZERO), func.coalesce(H.region_code, NONE)
    return [
        Table("person_year_total", T, ("person_id", "year"), _expected_person_years(),
              select(T.person_id, T.year, T.professional, T.public, T.met, T.unit_id)
              .where(_nonzero(T.professional, T.public))),
        Table("unit_year_total", U, ("unit_id", "year"),
              select(unit_of.label("unit_id"), people.c.year, func.sum(met_int).label("met"),
                     func.sum(people.c.professional).label("professional"),
                     func.sum(people.c.public).label("public"))
              .group_by(unit_of, people.c.year),
              select(U.unit_id, U.year, func.sum(U.met), func.sum(U.professional), func.sum(U.public))
              .group_by(U.unit_id, U.year)
              .having(_nonzero(func.sum(U.met), func.sum(U.professional), func.sum(U.public)))),
        Table("unit_persons", P, ("unit_id",),
              select(func.coalesce(Person.unit_id, ZERO).label("unit_id"), func.count(Person.id).label("persons"))
              .group_by(func.coalesce(Person.unit_id, ZERO)),
              select(P.unit_id, func.sum(P.persons)).group_by(P.unit_id).having(func.sum(P.persons) != 0)),
        Table("unit_year_source", S, ("unit_id", "region_code", "year", "category", "source"),
              select(h_unit.label("unit_id"), h_region.label("region_code"), H.year, H.category, H.source,
                     func.sum(H.hours).label("hours"), func.count(H.id).label("records"))
              .where(H.status == Status.APPROVED).group_by(h_unit, h_region, H.year, H.category, H.source),
              select(S.unit_id, S.region_code, S.year, S.category, S.source, func.sum(S.hours), func.sum(S.records))
              .group_by(S.unit_id, S.region_code, S.year, S.category, S.source)
              .having(_nonzero(func.sum(S.hours), func.sum(S.records)))),
        Table("region_year_source", R, ("region_code", "year", "category", "source"),
              select(h_region.label("region_code"), H.year, H.category, H.source,
                     func.sum(H.hours).label("hours"), func.count(H.id).label("records"))
              .where(H.status == Status.APPROVED).group_by(h_region, H.year, H.category, H.source),
              select(R.region_code, R.year, R.category, R.source, func.sum(R.hours), func.sum(R.records))
              .group_by(R.region_code, R.year, R.category, R.source)
              .having(_nonzero(func.sum(R.hours), func.sum(R.records)))),
    ]


def _wrong_keys(t):
    n = len(t.key)
    one = except_(t.expected, t.stored).subquery("missing")
    other = except_(t.stored, t.expected).subquery("extra")
    both = union_all(select(*list(one.c)[:n]), select(*list(other.c)[:n]))
    return sorted(set(db.session.execute(both).all()), key=repr)


def differences():
    """{table name: number of keys whose stored figures differ from the records}."""
    return {t.name: len(_wrong_keys(t)) for t in tables()}


def rebuild():
    """Rewrite every key whose stored figures differ from the records (in table
    order: person_year_total first, whose triggers move the unit sums, then the
    unit tables).  Returns {table name: keys rewritten}; the caller commits."""
    changed = {}
    for t in tables():
        keys = _wrong_keys(t)
        changed[t.name] = len(keys)
        model_key = tuple_(*[getattr(t.model, k) for k in t.key])
        exp = t.expected.subquery("exp")
        exp_key = tuple_(*[exp.c[k] for k in t.key])
        cols = [c.name for c in exp.c]
        for i in range(0, len(keys), CHUNK):
            chunk = [tuple(k) for k in keys[i:i + CHUNK]]
            db.session.execute(delete(t.model).where(model_key.in_(chunk)).execution_options(synchronize_session=False))
            db.session.execute(insert(t.model).from_select(cols, select(exp).where(exp_key.in_(chunk))))
    db.session.expire_all()
    return changed


def count_import_batch(batch_id):
    """Count the records of import batch `batch_id`, just inserted in this
    transaction, into hour_tally and the yearly totals (SQLite only: see the
    module docstring; on PostgreSQL the triggers have counted them)."""
    if db.session.get_bind().dialect.name != "sqlite":
        return
    H = HourRecord
    batch = H.import_batch_id == batch_id
    _add_grouped(HourTally, {"unit_id": H.unit_id, "year": H.year, "category": H.category, "status": H.status},
                 {"n": func.count()}, (batch, H.unit_id.is_not(None)))
    _add_grouped(UnitYearSource, {"unit_id": func.coalesce(H.unit_id, ZERO), "region_code": func.coalesce(H.region_code, NONE),
                                  "year": H.year, "category": H.category, "source": H.source},
                 {"hours": func.sum(H.hours), "records": func.count()}, (batch, H.status.in_(COUNTING_STATUSES)))
    _add_grouped(RegionYearSource, {"region_code": func.coalesce(H.region_code, NONE), "year": H.year,
                                    "category": H.category, "source": H.source},
                 {"hours": func.sum(H.hours), "records": func.count()}, (batch, H.status.in_(COUNTING_STATUSES)))
    # The persons' years; their row triggers move the unit sums.
    T, years = PersonYearTotal, _expected_person_years(batch).subquery("batch")
    same = [T.person_id == years.c.person_id, T.year == years.c.year]
    pro, pub = T.professional + years.c.professional, T.public + years.c.public
    db.session.execute(update(T).where(*same).values(professional=pro, public=pub, met=met_sql(T.year, pro, pub, T.person_id))
                       .execution_options(synchronize_session=False))
    db.session.execute(insert(T).from_select([c.name for c in years.c], select(years).where(~exists().where(*same))))


def _add_grouped(model, key, values, where):
    """Add this batch's grouped `values` to `model`'s row of each `key` (one row a
    key on SQLite), inserting the keys it has not got yet."""
    groups = (select(*[e.label(k) for k, e in key.items()], *[e.label(k) for k, e in values.items()])
              .where(*where).group_by(*key.values()).subquery("batch"))
    same = [getattr(model, k) == groups.c[k] for k in key]
    db.session.execute(update(model).where(*same).values({k: getattr(model, k) + groups.c[k] for k in values})
                       .execution_options(synchronize_session=False))
    db.session.execute(insert(model).from_select([*key, *values], select(groups).where(~exists().where(*same))))
