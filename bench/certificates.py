"""Certificate printing speed (issue 5), beside plain xhtml2pdf in the same run.

    .venv/bin/python bench/certificates.py                 # 1 000 persons, fresh SQLite
    .venv/bin/python bench/certificates.py --persons 200   # quicker
    .venv/bin/python bench/certificates.py --url postgresql+psycopg://...   # an empty database

What it measures
* one certificate: `certificates.certificate_pdf()` for one person and year, the
  whole path (approved records from the database, content hash, registry look-up,
  Jinja template, QR code, xhtml2pdf with the embedded TrueType CJK font, resource
  policy), median after warm-up, reprinting a rotating set of persons.  Baselines
  in the same run: plain `pisa.CreatePDF` of the very same HTML; of that HTML with
  @font-face naming the font file (xhtml2pdf's own font loading); and of that with
  the QR code drawn by `<pdf:barcode type="qr">` -- the straightforward version.
* batch: `certificates.batch_pdf()` for every person, one PDF, with render
  processes and in this process, time and peak RSS growth of this process.
  Baseline: plain `pisa.CreatePDF` of the same certificates as ONE document.
Targets: one certificate <= 60 ms; 1 000 certificates <= 60 s, memory bounded.
"""
import argparse
import datetime
import io
import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

YEAR = datetime.date.today().year - 1


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRSS:
    """Samples the resident set every 50 ms; `.growth` is peak minus start (MB)."""

    def __enter__(self):
        self.start = self.peak = rss_mb()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss_mb())
        self.growth = self.peak - self.start


def make_app(url):
    from app import create_app
    from config import Config

    class BenchConfig(Config):
        SQLALCHEMY_DATABASE_URI = url
        SQLALCHEMY_ENGINE_OPTIONS = {}
        SERVER_NAME = "localhost"

    return create_app(BenchConfig)


def populate(n_persons):
    """n persons in the demo unit A, each with 2-6 approved records in YEAR."""
    from app.extensions import db
    from app.models import Category, HourRecord, IdType, LearningForm, Person, Source, Status, Unit
    from app.services.demo import COURSES_PRO, COURSES_PUB, GIVEN, ORGANIZERS, SURNAMES, resident_id
    from app.services.records import place_record

    rnd = random.Random(5)
    unit = db.session.query(Unit).filter_by(name="南京金陵科技有限公司").one()
    persons = []
    for i in range(n_persons):
        # Unique ID numbers: resident IDs with distinct sequence numbers.
        number = resident_id("320102", datetime.date(1960 + i % 40, 1 + i % 12, 1 + i % 28), i % 1000)
        p = Person(name=rnd.choice(SURNAMES) + "".join(rnd.choice(GIVEN) for _ in range(rnd.choice([1, 2]))),
                   id_type=IdType.RESIDENT, id_number=number if i < 1000 else f"BENCH{i:08d}",
                   unit=unit, title="工程师")
        if i >= 1000:
            p.id_type = IdType.PASSPORT
        db.session.add(p)
        persons.append(p)
    db.session.flush()
    for p in persons:
        for k in range(rnd.randint(2, 6)):
            cat = Category.PUB if k == 0 else Category.PRO
            start = datetime.date(YEAR, rnd.randint(1, 12), rnd.randint(1, 20))
            r = HourRecord(
                person=p, year=YEAR, category=cat,
                learning_form=LearningForm.TRAIN_ONLINE if cat == Category.PUB else rnd.choice(list(LearningForm)),
                course_name=f"{rnd.choice(COURSES_PUB if cat == Category.PUB else COURSES_PRO)}（第{k + 1}期）",
                organizer_name=rnd.choice(ORGANIZERS), start_date=start,
                end_date=start + datetime.timedelta(days=rnd.randint(0, 4)),
                hours=Decimal(rnd.choice([8, 12, 16, 24, 30])), source=Source.UNIT_IMPORT, status=Status.APPROVED,
            )
            place_record(r, p)
            db.session.add(r)
    db.session.commit()
    return [p.id for p in persons]


class Ms:
    """Median wall time and median CPU time of this process, in ms.  On a busy
    shared machine the CPU time is the better guide to the wall time on an idle one."""

    def __init__(self, wall, cpu):
        self.wall, self.cpu = wall, cpu

    def __format__(self, spec):
        return f"{self.wall:7.1f} ms  (CPU {self.cpu:5.1f} ms)"


def median_ms(fn, runs, warmup=5):
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return Ms(statistics.median(walls) * 1000, statistics.median(cpus) * 1000)


def cpu_seconds():
    """CPU seconds of this process and of its finished children (render processes)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="an EMPTY database (default: a fresh SQLite file)")
    ap.add_argument("--persons", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--parallel-only", action="store_true", help="time the batch only with render processes")
    ap.add_argument("--skip-baseline-batch", action="store_true",
                    help="skip the one-document baseline of the batch (slow, memory-hungry)")
    args = ap.parse_args()

    tmpdir = tempfile.mkdtemp(prefix="certbench-")
    url = args.url or "sqlite:///" + os.path.join(tmpdir, "bench.db")
    app = make_app(url)
    with app.app_context():
        from xhtml2pdf import pisa

        from app.extensions import db
        from app.models import Person
        from app.services import certificates as certs
        from app.services.setup import initialize

        t = time.perf_counter()
        initialize(demo=True)
        ids = populate(args.persons)
        print(f"setup: {len(ids)} persons with approved hours in {YEAR} ({time.perf_counter() - t:.1f} s)")
        base = "https://ce.example.gov.cn/"

        # ---------------------------------------------------- one certificate
        sample = [db.session.get(Person, i) for i in ids[:10]]
        state = {"i": 0}

        def one():
            p = sample[state["i"] % len(sample)]
            state["i"] += 1
            certs.certificate_pdf(p, YEAR, full_id=True, base_url=base)
            db.session.commit()

        ours = median_ms(one, args.runs)

        content = certs.gather(sample[0], YEAR)
        cert = certs.issue(sample[0], YEAR, content=content)
        db.session.commit()
        html = certs.render_html([(content, cert)], full_id=True, base_url=base)
        plain = median_ms(lambda: pisa.CreatePDF(html, dest=io.BytesIO()), args.runs)
        url_qr = certs.verify_url(cert.verify_code, base)
        # What a straightforward xhtml2pdf certificate does: @font-face naming the
        # font file itself (xhtml2pdf keeps the parsed face, but reads and hashes
        # the 5 MB file on every render), and the QR code as <pdf:barcode>.
        from pathlib import Path

        from xhtml2pdf.config.resources import ResourceAccessPolicy

        from app.services import certificate_render

        font = certs.checked_font_path()
        html_font_file = html.replace(certificate_render.stand_in_path(certs.asset_dir()), font).replace(
            "font-family: cecjk", "font-family: plaincjk").replace("family: cecjk", "family: plaincjk")
        assert html_font_file != html and "plaincjk" in html_font_file
        font_policy = ResourceAccessPolicy.server(base_dir=certs.asset_dir(), extra_roots=(Path(font),),
                                                  allow_remote=False)
        html_naive = re.sub(
            r'<img src="data:image/png;base64,[^"]+" width="96" height="96">',
            f'<pdf:barcode type="qr" value="{url_qr}" barwidth="34mm" barheight="34mm"></pdf:barcode>',
            html_font_file,
        )
        assert html_naive != html_font_file
        font_file = median_ms(lambda: pisa.CreatePDF(html_font_file, dest=io.BytesIO(), resource_policy=font_policy),
                              args.runs)
        naive = median_ms(lambda: pisa.CreatePDF(html_naive, dest=io.BytesIO(), resource_policy=font_policy),
                          args.runs)
        cold_qr = median_ms(lambda: certs.qr_data_uri.__wrapped__(url_qr + str(random.random())), 20, warmup=2)

        print("\none certificate (median of %d after warm-up)" % args.runs)
        print(f"  certificate_pdf() end to end (DB, hash, registry, template, QR, PDF)  {ours}   target <= 60 ms")
        print(f"  baseline: plain pisa.CreatePDF of the same HTML                        {plain}")
        print(f"  baseline: same HTML, @font-face src = the font file                    {font_file}")
        print(f"  baseline: that, and the QR as <pdf:barcode type=\"qr\">                 {naive}")
        print(f"  (a QR PNG not yet cached, first print of a certificate, adds           {cold_qr})")

        # ---------------------------------------------------- batch
        chunks = -(-len(ids) // app.config["CERT_BATCH_CHUNK"])
        print(f"\nbatch: {len(ids)} certificates in one PDF, chunks of {app.config['CERT_BATCH_CHUNK']}   target <= 60 s")
        for procs in ([certs.render_processes(chunks), 1] if not args.parallel_only else [certs.render_processes(chunks)]):
            out_path = os.path.join(tmpdir, f"batch-{procs}.pdf")
            with PeakRSS() as mem, open(out_path, "wb") as out:
                t, (c0, k0) = time.perf_counter(), cpu_seconds()
                printed, skipped = certs.batch_pdf(ids, YEAR, out, full_id=True, base_url=base, processes=procs)
                batch_s = time.perf_counter() - t
                c1, k1 = cpu_seconds()
            size = os.path.getsize(out_path) / 2**20
            where = f"{procs} render processes" if procs > 1 else "rendered in this process"
            print(f"  batch_pdf(), {where:26s} {batch_s:6.1f} s  ({batch_s / printed * 1000:.0f} ms each; "
                  f"CPU {c1 - c0:.1f} s here + {k1 - k0:.1f} s in render processes)   "
                  f"{size:.1f} MB PDF, {skipped} skipped   peak RSS of this process +{mem.growth:.0f} MB")

        if not args.skip_baseline_batch:
            persons = db.session.query(Person).filter(Person.id.in_(ids)).order_by(Person.id).all()
            contents = certs.gather_many(persons, YEAR)
            entries = [(contents[p.id], certs.issue(p, YEAR, content=contents[p.id])) for p in persons]
            db.session.commit()
            big = certs.render_html(entries, full_id=True, base_url=base)
            del entries, contents
            with PeakRSS() as mem:
                t, c = time.perf_counter(), time.process_time()
                buf = io.BytesIO()
                pisa.CreatePDF(big, dest=buf)
                plain_s, plain_cpu = time.perf_counter() - t, time.process_time() - c
            print(f"  baseline: plain pisa.CreatePDF, the same HTML as ONE document  {plain_s:6.1f} s  "
                  f"({plain_s / printed * 1000:.0f} ms each; CPU {plain_cpu:.1f} s)   peak RSS +{mem.growth:.0f} MB")
        db.session.remove()
    print(f"\n(files in {tmpdir})")


if __name__ == "__main__":
    main()
