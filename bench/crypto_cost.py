"""What personal-data encryption (SM4-GCM + HMAC-SM3 index, app/models/crypto.py) costs
on import, export and the grid, against a baseline in the same run.

    .venv/bin/python bench/crypto_cost.py [rows=20000]

One SQLite database, the demo world.  The same work runs twice with the key ring
switched: "off" stores values as plain text (a ring whose encrypt / decrypt / blind
index are the identity), "on" is the real ring.  Each mode imports its own unit
file (ROWS rows of ROWS/20 persons new to the system, so the importer encrypts
and indexes them), exports its year from the hour-record grid (every row's ID
number decrypted), and renders the grid pages of that year (person grid
searched by a full ID number, hour-record grid) REPEAT times.  CPU seconds
(time.process_time) are printed with the ratio on / off.
"""
import datetime
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
REPEAT = 20
WORK = tempfile.mkdtemp(prefix="ce-crypto-bench-")
os.environ["DATABASE_URL"] = "sqlite:///" + os.path.join(WORK, "bench.db")
os.environ["CE_VAR_DIR"] = WORK
os.environ.pop("DATA_KEY_FILE", None)

PLAIN = "p$"


class SwitchRing:
    """The real ring, or (off) the identity; values written "off" read back either way."""

    def __init__(self, real):
        self.real, self.on = real, True

    def encrypt(self, value, purpose):
        return self.real.encrypt(value, purpose) if self.on else PLAIN + value

    def decrypt(self, stored, purpose):
        return stored[len(PLAIN):] if stored.startswith(PLAIN) else self.real.decrypt(stored, purpose)

    def blind_index(self, value, purpose):
        return self.real.blind_index(value, purpose) if self.on else "p" + value

    def __getattr__(self, name):
        return getattr(self.real, name)


def make_file(path, people, year):
    from openpyxl import Workbook

    from app.services.columns import KINDS

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("学时数据")
    ws.append(KINDS["unit"].headers)
    per = ROWS // len(people)
    for name, number in people:
        for k in range(per):
            day = datetime.date(year, 1, 1) + datetime.timedelta(days=k % 360)
            ws.append([name, "居民身份证", number, year, "专业科目", "培训（面授）", f"专业课程{k:04d}",
                       "东南大学继续教育学院", day.isoformat(), day.isoformat(), 8])
    wb.save(path)


def main():
    from flask_login import login_user
    from sqlalchemy import select

    from app import create_app
    from app.extensions import db
    from app.models import CEUser
    from app.services import exporter, importer
    from app.services.demo import resident_id
    from app.services.setup import initialize

    app = create_app()
    ring = SwitchRing(app.extensions["data_keys"])
    app.extensions["data_keys"] = ring
    with app.app_context():
        initialize(demo=True)
    view = next(v for v in app.appbuilder.baseviews if v.__class__.__name__ == "HourRecordView")
    results = {}
    for mode, year, seq0 in (("off", 2024, 500), ("on", 2025, 700)):
        ring.on = mode == "on"
        people = [(f"测{mode}{i:05d}", resident_id("320102", datetime.date(1960, 1, 1) + datetime.timedelta(days=i),
                                                   seq0 + i // 20000)) for i in range(ROWS // 20)]
        path = os.path.join(WORK, f"{mode}.xlsx")
        make_file(path, people, year)
        with app.app_context():
            clerk = db.session.execute(select(CEUser).where(CEUser.username == "clerk_a")).scalar_one()
            c = time.process_time()
            res = importer.store(path, "unit", clerk, filename=f"{mode}.xlsx", today=datetime.date(2026, 11, 27))
            imp = time.process_time() - c
            assert res.rows_stored == len(people) * (ROWS // len(people)), (res.rows_stored, res.errors[:3])
        with app.test_request_context(f"/hourrecordview/export/?_flt_0_year={year}"):
            login_user(db.session.execute(select(CEUser).where(CEUser.username == "admin")).scalar_one())
            c = time.process_time()
            n = exporter.export_view(view, os.path.join(WORK, f"{mode}-export.xlsx"))
            exp = time.process_time() - c
        client = app.test_client()
        html = client.get("/login/").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
        client.post("/login/", data={"username": "clerk_a", "password": "Demo@2026", "csrf_token": token})
        urls = [f"/hourrecordview/list/?_flt_0_year={year}", f"/personview/list/?_flt_0_id_number={people[7][1]}"]
        assert people[7][0] in client.get(urls[1]).get_data(as_text=True)
        c = time.process_time()
        for _ in range(REPEAT):
            for url in urls:
                assert client.get(url).status_code == 200
        grid = (time.process_time() - c) / (REPEAT * len(urls)) * 1000
        results[mode] = (imp, res.rows_stored, exp, n, grid)
    print(f"{'':8}{'import CPU s':>14}{'rows/s':>10}{'export CPU s':>14}{'rows':>8}{'grid CPU ms/page':>18}")
    for mode, (imp, rows, exp, n, grid) in results.items():
        print(f"{mode:8}{imp:14.2f}{rows / imp:10.0f}{exp:14.2f}{n:8d}{grid:18.1f}")
    off, on = results["off"], results["on"]
    print(f"{'on/off':8}{on[0] / off[0]:14.2f}{'':10}{on[2] / off[2]:14.2f}{'':8}{on[4] / off[4]:18.2f}")


if __name__ == "__main__":
    main()
