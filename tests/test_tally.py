"""The unit tally (models.HourTally, migration e7a1c0de0006): the triggers keep
each unit's record count per year, category and status equal to a GROUP BY over
hour_record after every kind of write, on both databases; a failed transaction
leaves it alone; a unit's grid reads its exact count there, and only a grid
whose conditions the tally can answer does."""
import datetime
import re
import threading
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, delete, func, select, text, update

from app.extensions import db
from app.models import Category, HourRecord, HourTally, LearningForm, Person, Source, Status, Unit
from app.services import approval
from app.services.persons import attach_person
from app.services.records import place_record
from app.services.sqlplan import tally_clause
from app.fab.datamodel import CEInterface
from tests.conftest import IS_PG

YEAR = datetime.date.today().year - 1


def counted():
    """{(unit, year, category, status): n} counted from hour_record itself."""
    rows = db.session.execute(
        select(HourRecord.unit_id, HourRecord.year, HourRecord.category, HourRecord.status, func.count())
        .where(HourRecord.unit_id.isnot(None))
        .group_by(HourRecord.unit_id, HourRecord.year, HourRecord.category, HourRecord.status)
    ).all()
    return {tuple(r[:4]): r[4] for r in rows}


def tallied():
    """The same from the tally: the sum of each key's rows."""
    rows = db.session.execute(
        select(HourTally.unit_id, HourTally.year, HourTally.category, HourTally.status, func.sum(HourTally.n))
        .group_by(HourTally.unit_id, HourTally.year, HourTally.category, HourTally.status)
        .having(func.sum(HourTally.n) != 0)
    ).all()
    return {tuple(r[:4]): r[4] for r in rows}


def new_record(person, i, **kw):
    values = dict(
        person=person, year=YEAR, category=Category.PRO, learning_form=LearningForm.TRAIN_ONSITE,
        course_name=f"计数课程{i}", start_date=datetime.date(YEAR, 4, 1) + datetime.timedelta(days=i % 200),
        end_date=datetime.date(YEAR, 4, 2) + datetime.timedelta(days=i % 200), hours=Decimal(4),
        source=Source.UNIT_IMPORT, status=Status.SUBMITTED,
    )
    values.update(kw)
    r = HourRecord(**values)
    place_record(r, person)
    return r


def test_the_demo_world_is_tallied(ctx):
    assert tallied() == counted() and counted()


def test_every_kind_of_write_keeps_the_tally(ctx):
    persons = db.session.query(Person).filter(Person.unit_id.isnot(None)).order_by(Person.id).all()
    # One insert, then many in one flush (one multi-row INSERT).
    db.session.add(new_record(persons[0], 0))
    db.session.commit()
    assert tallied() == counted()
    db.session.add_all([new_record(persons[i % len(persons)], i, category=Category.PUB if i % 3 else Category.PRO)
                        for i in range(1, 40)])
    db.session.commit()
    assert tallied() == counted()
    # A bulk approval (set-based UPDATE ... RETURNING), as the to-do list does.
    ids = db.session.execute(select(HourRecord.id).where(HourRecord.course_name.like("计数课程%"))).scalars().all()
    before = counted()
    result = approval.transition(ids, "approve", user=None, scope=_everything())
    assert result.done_ids and tallied() == counted() != before
    # A person moves to another unit: the records follow (one UPDATE of unit_id).
    person = persons[0]
    other = db.session.query(Unit).filter(Unit.id != person.unit_id, Unit.approved.is_(True)).first()
    attach_person(person, other)
    db.session.commit()
    assert tallied() == counted()
    # An edit that changes no counted column, and one that changes the year (text SQL).
    db.session.execute(update(HourRecord).where(HourRecord.id.in_(ids[:5])).values(course_name=HourRecord.course_name + "（改）"))
    db.session.execute(text("UPDATE hour_record SET year = year - 1 WHERE id IN (%s)" % ",".join(map(str, ids[5:9]))))
    db.session.commit()
    assert tallied() == counted()
    # A record leaves its unit, and deletions: ORM and set-based.
    db.session.execute(update(HourRecord).where(HourRecord.id == ids[9]).values(unit_id=None))
    db.session.delete(db.session.get(HourRecord, ids[10]))
    db.session.flush()
    db.session.execute(delete(HourRecord).where(HourRecord.id.in_(ids[11:20])))
    db.session.commit()
    assert tallied() == counted()


def test_a_failed_transaction_leaves_the_tally_alone(ctx):
    person = db.session.query(Person).filter(Person.unit_id.isnot(None)).first()
    before = tallied()
    db.session.add_all([new_record(person, i) for i in range(5)])
    db.session.flush()
    assert tallied() != before  # counted inside the transaction ...
    db.session.rollback()
    assert tallied() == before == counted()  # ... and gone with it


@pytest.mark.skipif(not IS_PG, reason="TRUNCATE: run by the PostgreSQL pass of scripts/test.sh")
def test_truncate_empties_the_tally(ctx):
    assert tallied()
    db.session.execute(text("TRUNCATE hour_record CASCADE"))
    assert tallied() == {} == counted()
    db.session.rollback()
    assert tallied() == counted() != {}


def _everything():
    from app.security.scope import Scope

    return Scope(everything=True)


@pytest.mark.skipif(not IS_PG, reason="two sessions at once: run by the PostgreSQL pass of scripts/test.sh")
def test_writers_of_one_unit_never_wait_for_each_other(app, backend):
    """A transaction adds a record to a unit and stays open (a long import); a
    second adds one to the same unit, year, category and status and commits at
    once, without waiting.  Both count once each transaction has committed, and
    the next writer folds the key's rows into one."""
    with app.app_context():
        person = db.session.query(Person).filter(Person.unit_id.isnot(None)).first()
        pid, unit_id = person.id, person.unit_id
        before = tallied().get((unit_id, YEAR, Category.PRO, Status.SUBMITTED), 0)
        db.session.remove()
    engine = create_engine(backend.work_url)
    insert = text(
        "INSERT INTO hour_record (person_id, year, category, learning_form, course_name, start_date, end_date, "
        "hours, source, status, unit_id, late_report, created_at, updated_at) VALUES (:p, :y, 'PRO', "
        "'TRAIN_ONSITE', :c, '2025-01-01', '2025-01-02', 2, 'UNIT_IMPORT', 'SUBMITTED', :u, false, now(), now())"
    )
    key = "unit_id = :u AND year = :y AND category = 'PRO' AND status = 'SUBMITTED'"
    total = text(f"SELECT coalesce(sum(n), 0), count(*) FROM hour_tally WHERE {key}")
    first = engine.connect()
    first.execute(insert, {"p": pid, "y": YEAR, "c": "并发一", "u": unit_id})
    done = threading.Event()

    def second():
        with engine.begin() as conn:
            conn.execute(text("SET lock_timeout = '2s'"))
            conn.execute(insert, {"p": pid, "y": YEAR, "c": "并发二", "u": unit_id})
        done.set()

    t = threading.Thread(target=second)
    t.start()
    t.join(10)
    try:
        assert done.is_set(), "the second writer waited for the first"
        with engine.connect() as conn:  # what others see: the second's record only
            assert conn.execute(total, {"u": unit_id, "y": YEAR}).first()[0] == before + 1
        first.commit()
    finally:
        first.close()
    with engine.connect() as conn:
        n, rows = conn.execute(total, {"u": unit_id, "y": YEAR}).first()
        assert n == before + 2 and rows == 2  # the first one's row and the second one's
        conn.execute(insert, {"p": pid, "y": YEAR, "c": "并发三", "u": unit_id})
        conn.commit()
        assert tuple(conn.execute(total, {"u": unit_id, "y": YEAR}).first()) == (before + 3, 1)
    engine.dispose()
    with app.app_context():
        assert tallied() == counted()
        db.session.remove()


def test_a_unit_grid_reads_its_count_from_the_tally(app, login_as, monkeypatch):
    """The count clerk_a's grid shows is the tally's, exact above the cap; a
    bureau's grid (a region, not a unit) still counts its rows."""
    monkeypatch.setattr(CEInterface, "count_cap", 3)
    clerk = login_as("clerk_a")
    html = clerk.get("/hourrecordview/list/").get_data(as_text=True)
    with app.app_context():
        unit_id = db.session.execute(text("SELECT unit_id FROM ab_user WHERE username = 'clerk_a'")).scalar()
        n = db.session.execute(select(func.count()).select_from(HourRecord).where(HourRecord.unit_id == unit_id)).scalar()
        assert n > 3
        assert re.search(r'class="ce-count">%d<' % n, html), "exact above the cap"
        # Proof that the number comes from the tally: change the tally alone.
        db.session.execute(update(HourTally).where(HourTally.unit_id == unit_id, HourTally.n > 0)
                           .values(n=HourTally.n + 1000).execution_options(synchronize_session=False))
        shifted = db.session.execute(select(func.sum(HourTally.n)).where(HourTally.unit_id == unit_id)).scalar()
        db.session.commit()
    html = clerk.get("/hourrecordview/list/").get_data(as_text=True)
    assert re.search(r'class="ce-count">%d<' % shifted, html), re.findall(r'class="ce-count[^<]*<', html)
    # The year + category filter sums the matching tally rows only.
    with app.app_context():
        want = db.session.execute(select(func.sum(HourTally.n)).where(
            HourTally.unit_id == unit_id, HourTally.year == YEAR, HourTally.category == Category.PRO)).scalar()
        db.session.remove()
    html = clerk.get(f"/hourrecordview/list/?_flt_0_year={YEAR}&_flt_0_category=PRO&psize_HourRecordView=5")\
        .get_data(as_text=True)
    assert re.search(r'class="ce-count">%d<' % want, html), re.findall(r'class="ce-count[^<]*<', html)
    # A bureau's region is not a unit: capped count of the rows, tally untouched.
    html = login_as("bureau_nj").get("/hourrecordview/list/?psize_HourRecordView=2").get_data(as_text=True)
    assert "超过 3 条" in html


def test_only_key_equalities_with_a_unit_read_the_tally(ctx):
    t, k = HourRecord.__table__, HourTally.__table__

    def ok(*terms):
        from sqlalchemy import and_

        return tally_clause(and_(*terms), t, k, HourTally.tally_key, ("unit_id",)) is not None

    assert ok(HourRecord.unit_id == 1)
    assert ok(HourRecord.unit_id.in_([1, 2]), HourRecord.year == 2025, HourRecord.category == Category.PRO)
    assert ok(HourRecord.unit_id == 1, HourRecord.status == Status.SUBMITTED)
    assert not ok(HourRecord.year == 2025)  # no unit: records without one are not tallied
    assert not ok(HourRecord.unit_id == 1, HourRecord.year >= 2024)
    assert not ok(HourRecord.unit_id == 1, HourRecord.course_name.like("安全%"))
    assert not ok(HourRecord.unit_id == 1, HourRecord.person_id == 3)
    assert not ok(HourRecord.unit_id != 1)
    assert not ok((HourRecord.unit_id == 1) | (HourRecord.person_id == 3))
    assert not ok(HourRecord.unit_id.in_(select(Unit.id)))
    assert not ok(HourRecord.unit_id == HourRecord.reported_by_unit_id)
    # A join (a filter on the person's name) is counted from the rows.
    iface = CEInterface(HourRecord)
    joined = select(HourRecord.id).join(HourRecord.person).where(HourRecord.unit_id == 1, Person.name == "张三")
    assert iface._tally_count(joined) is None
    assert iface._tally_count(select(HourRecord.id).where(HourRecord.unit_id == 1)) is not None
