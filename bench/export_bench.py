"""Export benchmark (issue 4): the hour-record grid's export of N rows on SQLite.

    .venv/bin/python bench/export_bench.py [rows=1000000]

Each measurement runs in its own process so that its peak memory (VmHWM) is its own:
  * baseline: bare openpyxl write-only writing N rows of the same 12 cells (no database);
  * export:   app.services.exporter.export_view on HourRecordView as admin (request
              parsing, scope, Core query with yield_per, cell conversion, the streaming
              writer app.services.xlsx_stream).
Targets: >= 50 000 rows/s, peak memory < 150 MB, within 1.5x of the baseline.
"""
import datetime
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))


def peak_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def prepare(rows, work):
    os.environ["DATABASE_URL"] = "sqlite:///" + os.path.join(work, "bench.db")
    os.environ["CE_VAR_DIR"] = work
    from sqlalchemy import insert, select

    from app import create_app
    from app.extensions import db
    from app.models import Category, HourRecord, LearningForm, Person, Source, Status, Unit
    from app.services.demo import resident_id
    from app.services.setup import initialize

    app = create_app()
    with app.app_context():
        initialize(demo=True)
        unit = db.session.execute(select(Unit).where(Unit.name == "南京金陵科技有限公司")).scalar_one()
        persons = max(rows // 50, 1)
        conn = db.session.connection()
        conn.execute(insert(Person.__table__), [
            {"name": f"测试{i:06d}", "id_type": "RESIDENT",
             "id_number": resident_id("320102", datetime.date(1960, 1, 1) + datetime.timedelta(days=i), i % 1000),
             "unit_id": unit.id, "is_freelancer": False, "unit_confirmed": True}
            for i in range(persons)])
        ids = [r[0] for r in conn.execute(select(Person.id).where(Person.name.like("测试%")).order_by(Person.id))]
        now = datetime.datetime(2026, 1, 1)
        batch = []
        n = 0
        for pid in ids:
            for k in range(50):
                if n >= rows:
                    break
                d = datetime.date(2025, 1, 1) + datetime.timedelta(days=k * 7)
                batch.append({
                    "person_id": pid, "year": 2025, "category": Category.PRO, "learning_form": LearningForm.TRAIN_ONSITE,
                    "course_name": f"专业课程{k:03d}", "organizer_name": "东南大学", "start_date": d, "end_date": d,
                    "hours": 8, "source": Source.UNIT_IMPORT, "status": Status.APPROVED, "unit_id": unit.id,
                    "region_code": "320102", "late_report": False, "created_at": now, "updated_at": now,
                })
                n += 1
                if len(batch) == 50000:
                    conn.execute(insert(HourRecord.__table__), batch)
                    batch = []
        if batch:
            conn.execute(insert(HourRecord.__table__), batch)
        db.session.commit()


def baseline(rows, work):
    from openpyxl import Workbook

    t = time.perf_counter()
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("学时记录")
    ws.append(["姓名", "证件号码", "认定年度", "科目类别", "学习形式", "课程（项目）名称", "学时", "开始日期",
               "结束日期", "来源", "状态", "所在单位"])
    d0 = datetime.datetime(2025, 1, 1)
    for i in range(rows):
        d = d0 + datetime.timedelta(days=(i % 50) * 7)
        ws.append([f"测试{i // 50:06d}", "320102196001010011", 2025, "专业科目", "培训（面授）",
                   f"专业课程{i % 50:03d}", 8, d, d, "单位导入", "已核准", "南京金陵科技有限公司"])
    wb.save(os.path.join(work, "baseline.xlsx"))
    return time.perf_counter() - t


def export(rows, work):
    os.environ["DATABASE_URL"] = "sqlite:///" + os.path.join(work, "bench.db")
    os.environ["CE_VAR_DIR"] = work
    from flask_login import login_user
    from sqlalchemy import select

    from app import create_app
    from app.extensions import db
    from app.models import CEUser
    from app.services import exporter

    app = create_app()
    view = next(v for v in app.appbuilder.baseviews if v.__class__.__name__ == "HourRecordView")
    with app.test_request_context("/hourrecordview/export/?_flt_0_year=2025"):
        login_user(db.session.execute(select(CEUser).where(CEUser.username == "admin")).scalar_one())
        t = time.perf_counter()
        n = exporter.export_view(view, os.path.join(work, "export.xlsx"))
        seconds = time.perf_counter() - t
    assert n >= rows, n
    return seconds, n


def main():
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    if len(sys.argv) > 3:
        mode, work = sys.argv[2], sys.argv[3]
        if mode == "prepare":
            prepare(rows, work)
            print("ok")
        elif mode == "baseline":
            print(f"{baseline(rows, work):.3f} {rows} {peak_mb():.1f}")
        else:
            seconds, n = export(rows, work)
            print(f"{seconds:.3f} {n} {peak_mb():.1f}")
        return
    # EXPORT_BENCH_WORK=<dir of a previous run> reuses its prepared database.
    work = os.environ.get("EXPORT_BENCH_WORK") or tempfile.mkdtemp(prefix="ce-export-bench-")
    me = os.path.abspath(__file__)

    def run(mode):
        out = subprocess.run([sys.executable, me, str(rows), mode, work], capture_output=True, text=True)
        if out.returncode:
            sys.stderr.write(out.stderr[-3000:])
            raise SystemExit(1)
        return out.stdout.strip().splitlines()[-1]

    if not os.path.exists(os.path.join(work, "bench.db")):
        t = time.perf_counter()
        run("prepare")
        print(f"prepared {rows} hour records in {time.perf_counter() - t:.0f} s  ({work})")
    b_s, b_n, b_mb = map(float, run("baseline").split())
    e_s, e_n, e_mb = map(float, run("export").split())
    print(f"baseline  bare openpyxl write-only : {b_s:7.2f} s  {b_n / b_s:9,.0f} rows/s  peak {b_mb:6.1f} MB")
    print(f"export    HourRecordView export    : {e_s:7.2f} s  {e_n / e_s:9,.0f} rows/s  peak {e_mb:6.1f} MB"
          f"  = {e_s / b_s:.2f}x baseline  (targets: >= 50,000 rows/s, < 150 MB, <= 1.5x)")
    print(f"files: baseline {os.path.getsize(os.path.join(work, 'baseline.xlsx')) / 1048576:.1f} MB, "
          f"export {os.path.getsize(os.path.join(work, 'export.xlsx')) / 1048576:.1f} MB")


if __name__ == "__main__":
    main()
