"""Fill a database with a realistic province (issue 7).

    .venv/bin/python bench/generate.py --url sqlite:////tmp/province.db            # 5 M records
    .venv/bin/python bench/generate.py --url postgresql+psycopg://... --scale 0.1    # 500 000

The schema comes from the migrations (app.services.setup.initialize(demo=True), so
the demo accounts exist), then 13 cities' districts get 20 000 units, 1 000 000
persons and 5 000 000 hour records over 5 years (times --scale), skewed as real
data is: large cities hold more units, unit sizes follow a Pareto law, and the
demo unit 南京金陵科技有限公司 (clerk_a) becomes a large employer.  Same --seed,
same database.  One in three persons has an applicant account and every unit an
administrator (some 350 000 accounts at scale 1.0): the account tables are read
on every request.  `--accounts-only` adds them to a province generated before.

Loading: COPY on PostgreSQL, executemany on SQLite; the hour-record indexes are
dropped during the load and rebuilt afterwards, then the planner statistics are
refreshed (ANALYZE; VACUUM on PostgreSQL so that index-only scans work).
Generated rows are appended to an existing demo database; run on an empty one.
"""
import argparse
import bisect
import datetime
import itertools
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Jiangsu's 13 cities, weighted by their share of professional technical personnel
# (population and economy: 苏州 and 南京 far ahead, 宿迁 / 镇江 behind).
CITY_WEIGHTS = {
    "320100": 16, "320200": 11, "320300": 9, "320400": 7, "320500": 18, "320600": 9,
    "320700": 4, "320800": 4, "320900": 6, "321000": 5, "321100": 3.5, "321200": 4.5,
    "321300": 3,
}
UNITS = 20_000
PERSONS = 1_000_000
RECORDS_PER_PERSON_YEAR = (0.30, 0.45, 0.20, 0.05)  # P(0), P(1), P(2), P(3): mean 1.0
YEARS = 5
# The demo unit of clerk_a / unitadmin_a grows into a large employer.
DEMO_UNIT_PERSONS = 800
# One in this many persons has registered an applicant account.
APPLICANT_SHARE = 3

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红波辉鹏斌宇浩凯健俊帆帅旭宁琳晨欣悦"
UNIT_KINDS_OF_NAME = [
    ("{city}{n}医院", 1), ("{city}{n}中学", 1), ("{city}建筑设计研究院第{n}分院", 1),
    ("江苏{n}科技有限公司", 4), ("{city}{n}工程有限公司", 2), ("{city}{n}会计师事务所", 1),
    ("{city}{n}软件有限公司", 2), ("{city}{n}检测中心", 1),
]
NAME_WORDS = "金陵华润恒达宏远长江东方新城博远中天瑞丰苏宁扬子汇通锦程同创卓越鼎盛永安泰和"
TITLES = ["助理工程师", "工程师", "高级工程师", "主治医师", "副主任医师", "会计师", "高级会计师", "讲师", "副教授", "经济师"]
SPECIALTIES = ["土木工程", "计算机", "临床医学", "会计", "电气工程", "机械工程", "护理", "教育", "化学工程", "经济"]
COURSES_PRO = [
    "建筑结构抗震设计新规范解读", "人工智能在制造业中的应用", "临床护理质量管理", "智能电网运行与维护",
    "工程造价数字化管理", "大数据分析方法与实践", "新型材料检测技术", "环境监测新技术研修",
    "会计准则最新变化", "软件工程与敏捷开发", "水利工程安全评估", "医学影像诊断进展",
]
COURSES_PUB = [
    "专业技术人员职业道德与诚信建设", "数字经济与创新驱动发展", "知识产权保护与运用",
    "心理健康与压力管理", "法治思维与依法行政", "绿色低碳发展专题",
]
ORGANIZERS = ["江苏省人才继续教育指导服务中心", "东南大学继续教育学院", "南京大学", "苏州大学继续教育学院", "省工程师学会"]
FORMS_PRO = ["TRAIN_ONSITE", "TRAIN_ONLINE", "CONFERENCE", "DEGREE", "STUDY", "RESEARCH", "OTHER"]
FORMS_PRO_W = [30, 30, 10, 5, 10, 5, 10]
HOURS = [4, 8, 12, 16, 24, 30, 32, 40]

_USCC = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_W = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_RIC_W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def uscc_code(seq, region):
    """An 18-character unified social credit code with a valid check digit (GB 32100)."""
    body = f"91{region}{seq:09d}"[:17]
    body = body[:8] + "".join(_USCC[int(c)] for c in body[8:])
    total = sum(_USCC.index(c) * w for c, w in zip(body, _USCC_W))
    return body + _USCC[(31 - total % 31) % 31]


def resident_id(region, birth, seq):
    """An 18-character resident ID number with a valid check digit (GB 11643)."""
    body = f"{region}{birth:%Y%m%d}{seq:03d}"
    total = sum(int(c) * w for c, w in zip(body, _RIC_W))
    return body + "10X98765432"[total % 11]


def cum(weights):
    return list(itertools.accumulate(weights))


def pick(rnd, cumw):
    return bisect.bisect_right(cumw, rnd.random() * cumw[-1])


# ----------------------------------------------------------------- generation


def build_units(rnd, n, districts, start_id, start_seq):
    """Units over the districts: cities by CITY_WEIGHTS, districts Zipf-like inside."""
    by_city = {}
    for code, name, parent in districts:
        by_city.setdefault(parent, []).append((code, name))
    slots = []  # (district code, city name, weight)
    for city, weight in CITY_WEIGHTS.items():
        ds = list(by_city.get(city, []))
        rnd.shuffle(ds)
        zipf = [1 / (i + 1) ** 0.8 for i in range(len(ds))]
        total = sum(zipf)
        for (code, _name), z in zip(ds, zipf):
            slots.append((code, city, weight * z / total))
    cw = cum([s[2] for s in slots])
    kinds_cw = cum([k[1] for k in UNIT_KINDS_OF_NAME])
    units = []
    for i in range(n):
        code, city, _ = slots[pick(rnd, cw)]
        fmt = UNIT_KINDS_OF_NAME[pick(rnd, kinds_cw)][0]
        word = rnd.choice(NAME_WORDS) + rnd.choice(NAME_WORDS)
        name = fmt.format(city=CITY_NAMES[city], n=word + str(i + 1))
        kind = "AGENCY" if i % 97 == 0 else "EMPLOYER"
        units.append((start_id + i, name, uscc_code(start_seq + i, code), kind, code))
    return units


CITY_NAMES = {}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("DATABASE_URL", "sqlite:////tmp/ce_province.db"))
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 20k units, 1M persons, 5M records")
    parser.add_argument("--seed", type=int, default=336)
    parser.add_argument("--years", type=int, default=YEARS)
    parser.add_argument("--accounts-only", action="store_true",
                        help="only add the accounts to a province generated without them")
    args = parser.parse_args(argv)
    os.environ["DATABASE_URL"] = args.url
    os.environ.setdefault("CE_VAR_DIR", "/tmp/ce-bench-var")
    started = time.time()

    from app import create_app
    from app.extensions import db
    from app.models.person import title_level_of
    from app.services.setup import initialize
    from sqlalchemy import text

    app = create_app()
    if args.accounts_only:
        with app.app_context():
            initialize(demo=True)
            engine = db.engine
        n = add_accounts(engine)
        print(f"done: {n} accounts in {time.time() - started:.0f}s")
        return
    with app.app_context():
        initialize(demo=True)
        conn = db.session.connection()
        is_pg = db.engine.dialect.name == "postgresql"
        if conn.execute(text("SELECT count(*) FROM hour_record")).scalar() > 2000:
            sys.exit("the database already holds generated data; use an empty one")
        regions = conn.execute(text("SELECT code, name, parent_code FROM region")).all()
        for code, name, parent in regions:
            if code in CITY_WEIGHTS:
                CITY_NAMES[code] = name
        districts = [r for r in regions if r.parent_code in CITY_WEIGHTS]
        unit_a = conn.execute(text("SELECT id FROM unit WHERE name = '南京金陵科技有限公司'")).scalar()
        max_unit = conn.execute(text("SELECT max(id) FROM unit")).scalar() or 0
        max_person = conn.execute(text("SELECT max(id) FROM person")).scalar() or 0
        max_record = conn.execute(text("SELECT max(id) FROM hour_record")).scalar() or 0
        reviewer = conn.execute(text("SELECT id FROM ab_user WHERE username = 'clerk_a'")).scalar()
        db.session.commit()
        engine = db.engine

    rnd = random.Random(args.seed)
    n_units = max(50, int(UNITS * args.scale))
    n_persons = max(500, int(PERSONS * args.scale))
    units = build_units(rnd, n_units, districts, max_unit + 1, 100_000)
    unit_region = {u[0]: u[4] for u in units}
    unit_region[unit_a] = "320102"
    # Pareto unit sizes: a few hospitals and groups with thousands, most with dozens.
    sizes = [min(rnd.paretovariate(1.3), 300.0) for _ in units]
    unit_cw = cum(sizes)
    unit_ids = [u[0] for u in units]

    today = datetime.date.today()
    first_year = today.year - args.years + 1
    years = list(range(first_year, today.year + 1))
    n_demo_unit = int(DEMO_UNIT_PERSONS * args.scale) or 1

    step = max(1, n_persons // n_demo_unit)
    ring = app.extensions["data_keys"]
    person_rows = []
    for i in range(n_persons):
        pid = max_person + 1 + i
        uid = unit_a if i % step == 0 and i // step < n_demo_unit else unit_ids[pick(rnd, unit_cw)]
        region = unit_region[uid]
        birth = datetime.date(1960, 1, 1) + datetime.timedelta(days=i % 14600)
        name = rnd.choice(SURNAMES) + rnd.choice(GIVEN) + (rnd.choice(GIVEN) if rnd.random() < 0.6 else "")
        # Sequence numbers from 500 up: the demo persons use 11-35 and 100 up (same
        # regions and birth dates), and --scale 5 needs 343 of them (at most 34 fit).
        number = resident_id(region, birth, 500 + i // 14600)
        # Stored as the application stores it: SM4-GCM and the HMAC-SM3 blind index (app/models/crypto.py).
        title = rnd.choice(TITLES)
        person_rows.append((
            pid, name, "RESIDENT", ring.encrypt(number, "person.id_number"), ring.blind_index(number, "person.id_number"),
            uid, title, title_level_of(title), rnd.choice(SPECIALTIES), False, True,
        ))
    print(f"generated {len(units)} units, {len(person_rows)} persons ({time.time() - started:.0f}s)", flush=True)

    k_cw = cum(RECORDS_PER_PERSON_YEAR)
    forms_cw = cum(FORMS_PRO_W)
    person_unit = [(p[0], p[5]) for p in person_rows]

    stamp_limit = datetime.datetime.utcnow() - datetime.timedelta(hours=1)

    def records():
        rid = max_record
        for year in years:  # chronological, as records arrive: ids grow with time
            current = year == today.year
            last_month = today.month if current else 12
            for pid, uid in person_unit:
                k = pick(rnd, k_cw)
                for j in range(k):
                    rid += 1
                    cat = "PUB" if j == 2 or (j == 1 and rnd.random() < 0.3) else "PRO"
                    if cat == "PRO":
                        course = COURSES_PRO[(pid + j * 5 + year) % len(COURSES_PRO)]
                        form = FORMS_PRO[pick(rnd, forms_cw)]
                    else:
                        course = COURSES_PUB[(pid + j + year) % len(COURSES_PUB)]
                        form = "TRAIN_ONLINE"
                    month = rnd.randint(1, last_month)
                    start = datetime.date(year, month, rnd.randint(1, 20))
                    if start > today:
                        start = datetime.date(year, 1, 5 + j)
                    end = min(start + datetime.timedelta(days=rnd.randint(0, 5)), datetime.date(year, 12, 31))
                    roll = rnd.random()
                    source = "DECLARED" if roll < 0.55 else "UNIT_IMPORT" if roll < 0.8 else "BUREAU_IMPORT" if roll < 0.95 else "INDUSTRY_IMPORT"
                    if current and source == "DECLARED":
                        s = rnd.random()
                        status = "SUBMITTED" if s < 0.35 else "APPROVED" if s < 0.85 else "RETURNED" if s < 0.95 else "DRAFT"
                    else:
                        status = "REVOKED" if rnd.random() < 0.002 else "APPROVED"
                    submitted = min(datetime.datetime.combine(end, datetime.time(9)), stamp_limit) if status != "DRAFT" else None
                    reviewed = min(datetime.datetime.combine(end, datetime.time(15)), stamp_limit) if status in ("APPROVED", "RETURNED", "REVOKED") else None
                    # (never in the future: a row cannot have been written after now,
                    # and the national feed reads nothing stamped after its horizon)
                    created = min(datetime.datetime.combine(end, datetime.time(8)), stamp_limit)
                    yield (
                        rid, pid, year, cat, form, course, ORGANIZERS[(pid + j) % len(ORGANIZERS)], start, end,
                        HOURS[(pid * 7 + j + year) % len(HOURS)], source, status, uid, unit_region[uid],
                        False, submitted, reviewer if reviewed and uid == unit_a else None, reviewed,
                        "证明材料不清晰，请重新上传" if status == "RETURNED" else None,
                        "核查发现证明材料不实" if status == "REVOKED" else None, created, created,
                    )

    unit_cols = ("id", "name", "credit_code", "kind", "region_code", "contact_name", "contact_phone", "approved")
    unit_rows = [u + ("联系人", ring.encrypt("025-%08d" % u[0], "unit.contact_phone"), True) for u in units]
    person_cols = ("id", "name", "id_type", "id_number", "id_number_bidx", "unit_id", "title", "title_level", "specialty",
                   "is_freelancer", "unit_confirmed")
    record_cols = (
        "id", "person_id", "year", "category", "learning_form", "course_name", "organizer_name", "start_date",
        "end_date", "hours", "source", "status", "unit_id", "region_code", "late_report", "submitted_at",
        "reviewer_id", "reviewed_at", "review_comment", "revoke_reason", "created_at", "updated_at",
    )

    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        indexes = _drop_indexes(cur, is_pg, "hour_record")
        raw.commit()
        loader = _copy if is_pg else _executemany
        if not is_pg:
            cur.execute("PRAGMA journal_mode=OFF")
            cur.execute("PRAGMA synchronous=OFF")
            cur.execute("PRAGMA cache_size=-400000")
        loader(cur, "unit", unit_cols, unit_rows)
        loader(cur, "person", person_cols, person_rows)
        raw.commit()
        print(f"loaded units and persons ({time.time() - started:.0f}s)", flush=True)
        n = loader(cur, "hour_record", record_cols, records(), progress=started)
        raw.commit()
        print(f"loaded {n} hour records ({time.time() - started:.0f}s); rebuilding indexes", flush=True)
        if is_pg:
            cur.execute("SET maintenance_work_mem = '512MB'")
        for ddl in indexes:
            cur.execute(ddl)
        raw.commit()
        if is_pg:
            for table in ("unit", "person", "hour_record"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            raw.commit()
            pg = raw.driver_connection
            pg.autocommit = True
            pg.execute("VACUUM ANALYZE")
            pg.autocommit = False
        else:
            cur.execute("ANALYZE")
            raw.commit()
    finally:
        raw.close()
    accounts = add_accounts(engine)
    print(f"done: {len(units)} units, {len(person_rows)} persons, {n} hour records, {accounts} accounts "
          f"in {time.time() - started:.0f}s")


def add_accounts(engine):
    """The accounts of a province: one in APPLICANT_SHARE generated persons has
    registered (an applicant account bound to the person) and every generated unit
    has an administrator.  All share the demo password.  Returns how many were
    added (none when the database already has them)."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        is_pg = engine.dialect.name == "postgresql"
        cur.execute("SELECT count(*) FROM ab_user")
        if cur.fetchone()[0] > 1000:
            return 0
        cur.execute("SELECT max(id) FROM ab_user")
        max_user = cur.fetchone()[0] or 0
        cur.execute("SELECT max(id) FROM ab_user_role")
        max_link = cur.fetchone()[0] or 0
        cur.execute("SELECT password FROM ab_user WHERE username = 'clerk_a'")
        password = cur.fetchone()[0]
        cur.execute("SELECT name, id FROM ab_role")
        role = dict(cur.fetchall())
        cur.execute(f"SELECT id, name FROM person p WHERE id % {APPLICANT_SHARE} = 0 AND NOT EXISTS "
                    "(SELECT 1 FROM ab_user u WHERE u.person_id = p.id) ORDER BY id")
        persons = cur.fetchall()
        cur.execute("SELECT id, name FROM unit n WHERE NOT EXISTS (SELECT 1 FROM ab_user u WHERE u.unit_id = n.id) "
                    "ORDER BY id")
        units = cur.fetchall()
        now = datetime.datetime(2026, 1, 5, 9, 0)
        user_cols = ("id", "first_name", "last_name", "username", "password", "active", "email", "login_count",
                     "fail_login_count", "created_on", "changed_on", "unit_id", "person_id", "must_change_password")
        users, links = [], []
        uid, lid = max_user, max_link
        for pid, name in persons:
            uid += 1
            lid += 1
            users.append((uid, name, "", f"p{pid}", password, True, f"p{pid}@bench.invalid", 0, 0, now, now,
                          None, pid, False))
            links.append((lid, uid, role["Applicant"]))
        for unit_id, name in units:
            uid += 1
            lid += 1
            users.append((uid, name[:64], "", f"u{unit_id}", password, True, f"u{unit_id}@bench.invalid", 0, 0,
                          now, now, unit_id, None, False))
            links.append((lid, uid, role["UnitAdmin"]))
        loader = _copy if is_pg else _executemany
        loader(cur, "ab_user", user_cols, users)
        loader(cur, "ab_user_role", ("id", "user_id", "role_id"), links)
        if is_pg:
            for table in ("ab_user", "ab_user_role"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            raw.commit()
            pg = raw.driver_connection
            pg.autocommit = True
            pg.execute("VACUUM ANALYZE ab_user")
            pg.execute("VACUUM ANALYZE ab_user_role")
            pg.autocommit = False
        else:
            cur.execute("ANALYZE ab_user")
            cur.execute("ANALYZE ab_user_role")
            raw.commit()
        return len(users)
    finally:
        raw.close()


def _drop_indexes(cur, is_pg, table):
    """Drop the table's plain (non-constraint) indexes; return the DDL to rebuild them."""
    if is_pg:
        cur.execute(
            "SELECT indexname, indexdef FROM pg_indexes i WHERE tablename = %s AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)", (table,)
        )
    else:
        cur.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (table,))
    rows = cur.fetchall()
    for name, _ddl in rows:
        cur.execute(f'DROP INDEX "{name}"')
    return [ddl for _name, ddl in rows]


def _batches(rows, size=50_000):
    it = iter(rows)
    while True:
        chunk = list(itertools.islice(it, size))
        if not chunk:
            return
        yield chunk


def _executemany(cur, table, cols, rows, progress=None):
    sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    n = 0
    for chunk in _batches(rows):
        cur.executemany(sql, [_sqlite_row(r) for r in chunk])
        n += len(chunk)
        if progress and n % 1_000_000 < 50_000:
            print(f"  {n} rows ({time.time() - progress:.0f}s)", flush=True)
    return n


def _sqlite_row(row):
    # SQLAlchemy stores Date / DateTime as ISO text on SQLite; booleans as 0/1.
    return tuple(
        v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime.datetime)
        else v.isoformat() if isinstance(v, datetime.date)
        else v
        for v in row
    )


def _copy(cur, table, cols, rows, progress=None):
    n = 0
    with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
            if progress and n % 1_000_000 == 0:
                print(f"  {n} rows ({time.time() - progress:.0f}s)", flush=True)
    return n


if __name__ == "__main__":
    main()
