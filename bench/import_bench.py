"""Import benchmark (issue 4): validate + store a unit file of N rows on SQLite.

    .venv/bin/python bench/import_bench.py [rows=100000]

Prints, for the same file in the same run:
  * bare openpyxl read-only reading every cell (the baseline of the issue),
  * bare python-calamine reading every cell,
  * importer.analyse (read + normalise + validate + persons + duplicates: the preview),
  * importer.store (analyse again + set-based insert in one transaction: the confirm),
and the targets: store >= 20 000 rows/s, analyse <= 2x bare openpyxl.
"""
import datetime
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
PERSONS = max(ROWS // 50, 1)
WORK = tempfile.mkdtemp(prefix="ce-import-bench-")
# IMPORT_BENCH_URL: an empty PostgreSQL database instead of a temporary SQLite file.
os.environ["DATABASE_URL"] = os.environ.get("IMPORT_BENCH_URL") or "sqlite:///" + os.path.join(WORK, "bench.db")
os.environ["CE_VAR_DIR"] = WORK


def make_file(path, people):
    from openpyxl import Workbook

    from app.services.columns import KINDS

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("学时数据")
    ws.append(KINDS["unit"].headers)
    base = datetime.date(2025, 1, 1)
    n = 0
    per = ROWS // len(people) + 1
    for name, number in people:
        for k in range(per):
            if n >= ROWS:
                break
            day = base + datetime.timedelta(days=k % 360)
            ws.append([name, "居民身份证", number, 2025, "专业科目", "培训（面授）", f"专业课程{k:04d}",
                       "东南大学继续教育学院", day.isoformat(), day.isoformat(), 8])
            n += 1
    wb.save(path)


def server_cpu(db):
    """A function returning the CPU seconds used so far by the PostgreSQL backend
    serving this session (read from /proc: the server runs on this machine), or 0
    on SQLite (whose work is in this process's CPU time)."""
    if db.engine.dialect.name != "postgresql":
        return lambda: 0.0
    pid = db.session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
    tick = os.sysconf("SC_CLK_TCK")

    def read():
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return read


def main():
    from sqlalchemy import func, insert, select

    from app import create_app
    from app.extensions import db
    from app.models import CEUser, HourRecord, Person
    from app.services import importer
    from app.services.demo import resident_id
    from app.services.setup import initialize

    app = create_app()
    with app.app_context():
        initialize(demo=True)
        clerk = db.session.execute(select(CEUser).where(CEUser.username == "clerk_a")).scalar_one()
        people = [(f"测试{i:05d}", resident_id("320102", datetime.date(1970, 1, 1) + datetime.timedelta(days=i), i % 1000))
                  for i in range(PERSONS)]
        db.session.execute(insert(Person), [
            {"name": n, "id_number": num, "unit_id": clerk.unit_id, "is_freelancer": False, "unit_confirmed": True}
            for n, num in people])
        db.session.commit()
        path = os.path.join(WORK, "bench.xlsx")
        t = time.perf_counter()
        make_file(path, people)
        print(f"file: {ROWS} rows, {os.path.getsize(path) / 1048576:.1f} MB, written in {time.perf_counter() - t:.1f} s")

        from openpyxl import load_workbook
        from python_calamine import CalamineWorkbook

        t = time.perf_counter()
        wb = load_workbook(path, read_only=True, data_only=True)
        n = sum(1 for _ in wb["学时数据"].iter_rows(values_only=True))
        wb.close()
        t_openpyxl = time.perf_counter() - t
        t = time.perf_counter()
        n2 = sum(1 for _ in CalamineWorkbook.from_path(path).get_sheet_by_name("学时数据").iter_rows())
        t_calamine = time.perf_counter() - t

        t = time.perf_counter()
        res = importer.analyse(path, "unit", clerk, filename="bench.xlsx")
        t_analyse = time.perf_counter() - t
        assert not res.errors and res.rows_new == ROWS, (res.file_error, res.errors[:3])
        server = server_cpu(db)
        t, c, s0 = time.perf_counter(), time.process_time(), server()
        res = importer.store(path, "unit", clerk, filename="bench.xlsx")
        t_store, c_store, s_store = time.perf_counter() - t, time.process_time() - c, server() - s0
        stored = db.session.execute(select(func.count(HourRecord.id)).where(HourRecord.import_batch_id == res.batch_id)).scalar()
        assert stored == ROWS

        print(f"baseline  openpyxl read-only, read only : {t_openpyxl:6.2f} s  ({n / t_openpyxl:9,.0f} rows/s)")
        print(f"          python-calamine, read only    : {t_calamine:6.2f} s  ({n2 / t_calamine:9,.0f} rows/s)")
        print(f"import    analyse (preview, validated)  : {t_analyse:6.2f} s  ({ROWS / t_analyse:9,.0f} rows/s)"
              f"  = {t_analyse / t_openpyxl:.2f}x bare openpyxl  (target <= 2x)")
        print(f"import    store (confirm: persons, dups, insert) : {t_store:6.2f} s  ({ROWS / t_store:9,.0f} rows/s)"
              f"   stored {stored}; CPU of this process {c_store:.2f} s"
              + (f", of the PostgreSQL backend {s_store:.2f} s" if s_store else "") + f"; {db.engine.dialect.name}, "
              f"load average {os.getloadavg()[0]:.1f}")
        both = t_analyse + t_store
        print(f"import    preview + confirm, end to end     : {both:6.2f} s  ({ROWS / both:9,.0f} rows/s)"
              f"  (target >= 20,000 rows/s)")
        import shutil

        shutil.rmtree(os.path.join(app.config["UPLOAD_DIR"], "imports", "validated"), ignore_errors=True)
        app.config["IMPORT_READER"] = "openpyxl"
        t = time.perf_counter()
        importer.analyse(path, "unit", clerk, filename="bench.xlsx")
        print(f"reader    analyse with openpyxl reader   : {time.perf_counter() - t:6.2f} s  (calamine is the default)")


if __name__ == "__main__":
    import shutil

    try:
        main()
    finally:
        if not os.environ.get("IMPORT_BENCH_KEEP"):
            shutil.rmtree(WORK, ignore_errors=True)  # ~70 MB a run
