"""Bulk approval of N pending declarations on SQLite (target: 10 000 rows in ≤ 1 s).

    .venv/bin/python bench/bulk_approve.py [N]

Builds a migrated SQLite database in a temp folder with one unit, N pending
declarations and one out-of-scope unit's rows, then approves the same N rows twice
from identical copies of the database:

* set-based: app.services.approval.approve_records (conditional UPDATE ... RETURNING
  in 5 000-id chunks + one executemany of audit rows, one transaction);
* baseline: a per-row ORM loop (load, check scope and status, set fields, one
  audit entry through app.services.audit.record, one commit at the end).

Both runs include writing an audit row per approved record.
"""
import datetime
import os
import shutil
import sys
import tempfile
import time
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000


def build(path):
    from app import create_app
    from config import Config

    class Cfg(Config):
        SQLALCHEMY_DATABASE_URI = "sqlite:///" + path
        SQLALCHEMY_ENGINE_OPTIONS = {}
        VAR_DIR = os.path.dirname(path)
        DEMO = False

    app = create_app(Cfg)
    return app


def populate(app):
    from sqlalchemy import insert

    from app.extensions import db
    from app.models import Category, HourRecord, LearningForm, Person, Source, Status, Unit
    from app.services.demo import credit_code, resident_id
    from app.services.setup import initialize

    with app.app_context():
        initialize(demo=False)
        unit = Unit(name="基准测试单位", credit_code=credit_code(901, "320102"), region_code="320102")
        other = Unit(name="其他单位", credit_code=credit_code(902, "320508"), region_code="320508")
        db.session.add_all([unit, other])
        db.session.flush()
        persons = []
        for i in range(200):
            p = Person(name=f"人员{i}", id_number=resident_id("320102", datetime.date(1980, 1, 1 + i % 28), i),
                       unit_id=unit.id)
            persons.append(p)
        db.session.add_all(persons)
        db.session.flush()
        year = datetime.date.today().year - 1
        rows = []
        for i in range(N):
            rows.append(dict(
                person_id=persons[i % 200].id, year=year, category=Category.PRO,
                learning_form=LearningForm.TRAIN_ONSITE, course_name=f"课程{i}",
                start_date=datetime.date(year, 3, 1), end_date=datetime.date(year, 3, 2),
                hours=Decimal("8.0"), source=Source.DECLARED, status=Status.SUBMITTED,
                unit_id=unit.id, region_code="320102",
                submitted_at=datetime.datetime(year, 3, 3), created_at=datetime.datetime(year, 3, 3),
                updated_at=datetime.datetime(year, 3, 3),
            ))
        db.session.execute(insert(HourRecord), rows)
        db.session.commit()
        # A real reviewer account: reviewer_id is a foreign key (enforced on SQLite too).
        sm = app.appbuilder.sm
        clerk = sm.add_user(username=Reviewer.username, first_name="基准", last_name="经办",
                            email="bench@demo.invalid", role=sm.find_role("UnitOperator"),
                            password="Bench@2026x")
        clerk.unit_id = unit.id
        db.session.commit()
        Reviewer.id = clerk.id
        ids = [r[0] for r in db.session.query(HourRecord.id).order_by(HourRecord.id)]
        return unit.id, ids


class Reviewer:
    id = None  # set by populate()
    username = "bench_clerk"


def run_set_based(app, unit_id, ids):
    from app.security.scope import Scope
    from app.services.approval import approve_records

    with app.app_context():
        t, c = time.perf_counter(), time.process_time()
        result = approve_records(ids, user=Reviewer(), scope=Scope(unit_ids=(unit_id,)))
        return time.perf_counter() - t, time.process_time() - c, result.done


def run_orm_loop(app, unit_id, ids):
    from app.extensions import db
    from app.models import HourRecord, Status
    from app.security.scope import Scope, get_scoped
    from app.services import audit

    scope = Scope(unit_ids=(unit_id,))
    user = Reviewer()
    with app.app_context():
        t, c = time.perf_counter(), time.process_time()
        done = 0
        now = datetime.datetime.utcnow()
        for rid in ids:
            rec = get_scoped(HourRecord, rid, scope)
            if rec is None or rec.status != Status.SUBMITTED:
                continue
            rec.status = Status.APPROVED
            rec.reviewer_id = user.id
            rec.reviewed_at = now
            audit.record("approve", "HourRecord", rid, old={"status": "SUBMITTED"},
                         new={"status": "APPROVED", "reviewer_id": user.id}, user=user,
                         unit_id=rec.unit_id, region_code=rec.region_code)
            done += 1
        db.session.commit()
        return time.perf_counter() - t, time.process_time() - c, done


def main():
    tmp = tempfile.mkdtemp(prefix="bench_bulk_")
    try:
        base = os.path.join(tmp, "base.db")
        app = build(base)
        t = time.perf_counter()
        unit_id, ids = populate(app)
        print(f"prepared {len(ids)} pending rows in {time.perf_counter() - t:.1f} s (SQLite {base})")
        with app.app_context():
            from app.extensions import db

            db.session.remove()
            db.engine.dispose()
        results = {}
        for name, fn in (("set-based approve_records", run_set_based), ("per-row ORM loop (baseline)", run_orm_loop)):
            copy = os.path.join(tmp, name.split()[0] + ".db")
            shutil.copyfile(base, copy)
            results[name] = fn(build(copy), unit_id, ids)
        # CPU seconds too: on a shared machine the wall clock includes waiting for a core.
        print(f"{'method':32s} {'rows':>7s} {'wall s':>9s} {'CPU s':>9s} {'rows/s':>9s}")
        for name, (sec, cpu, done) in results.items():
            print(f"{name:32s} {done:7d} {sec:9.3f} {cpu:9.3f} {done / sec:9.0f}")
        fast = results["set-based approve_records"][0]
        slow = results["per-row ORM loop (baseline)"][0]
        print(f"speed-up: {slow / fast:.1f}x; target ≤ 1 s for 10 000 rows: {'met' if fast <= 1.0 else 'NOT met'}"
              f" (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
