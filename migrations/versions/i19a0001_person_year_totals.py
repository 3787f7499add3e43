"""person and unit yearly totals (达标), kept by triggers; the yearly requirement as a table

Revision ID: i19a0001
Revises: e7a1c0de0006
Create Date: 2026-12-06 02:30:00

Every 达标 figure re-aggregated every person's approved hours of the year: 1.4 s
for the province summary at 1 M records.  These tables hold the answer, kept
in the transaction that changes the records, whatever wrote it (ORM, set-based
UPDATEs, imports, COPY):

- year_requirement: the yearly requirement (year 0: every year without its own
  row), seeded from REQUIRED_HOURS_TOTAL / REQUIRED_PROFESSIONAL_RATIO.  The
  triggers read it for the met flag; services.requirement.set_requirement
  changes a year and recomputes the flags set-based.  Deliberately small: a
  later rules model (issue 20) extends it.
- person_year_total: one row per person and year with approved hours: 专业 /
  公需 hours, met, and the person's unit (the current one: the dashboard counts
  a person where the person is now, as it always did).  Updated in place: two
  writers wait for each other only when they touch the same person's year.
- unit_year_total: per unit (0: no unit) and year, the sum of its persons'
  rows: persons met, 专业 / 公需 hours.  Fed by person_year_total's triggers.
- unit_persons: persons per unit (0: no unit), every year alike.  Fed by
  person's triggers.
- unit_year_source: approved hours and records per record unit (0: none),
  record region ('' none), year, category and source.  Fed by hour_record.

The three unit tables are what a province reads (some 20 000 units, not a
million persons), and what every writer of a unit touches.  As in hour_tally
(e7a1c0de0006), on PostgreSQL they take a row per key plus one per transaction
open at the time: a statement trigger (transition tables) computes the
statement's change per key, deletes the key's rows no other open transaction
holds (FOR UPDATE SKIP LOCKED) and inserts their sum with the change.  A writer
never waits on another writer of the same unit; readers sum a key's rows.
SQLite has one writer at a time: row triggers update one row per key.

On PostgreSQL the hour_record trigger takes FOR SHARE on the persons whose
totals it changes, so that a person moving unit concurrently (which updates the
person row, then that person's totals) cannot leave a total under the old unit.

Note for later migrations: SQLite's batch mode rebuilds a table by copying it,
which drops its triggers: a migration that alters hour_record, person or
person_year_total in batch mode must create them again (create_triggers).
"""
from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa
from alembic import op

revision = "i19a0001"
down_revision = "e7a1c0de0006"
branch_labels = None
depends_on = None

APPROVED = "'APPROVED'"  # requirement.COUNTING_STATUSES

# --------------------------------------------------------------- the met rule


def met_sql(year, pro, pub, true="1", false="0"):
    """达标 of (pro, pub) hours in `year` under year_requirement (the year's row,
    else year 0's; no row: not met).  services.requirement.met_condition is the
    same rule for SQLAlchemy."""
    return (
        f"COALESCE((SELECT CASE WHEN ({pro}) + ({pub}) >= r.required_total "
        f"AND ({pro}) >= r.required_professional "
        f"AND (r.required_public IS NULL OR ({pub}) >= r.required_public) THEN {true} ELSE {false} END "
        f"FROM year_requirement r WHERE r.year IN ({year}, 0) ORDER BY r.year DESC LIMIT 1), {false})"
    )


PG_MET_FUNCTION = f"""
CREATE FUNCTION ce_met(y integer, pro numeric, pub numeric) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT {met_sql("y", "pro", "pub", "true", "false")}
$$
"""

# ------------------------------------------------------------- PostgreSQL fold


def _fold(table, key, values, moved):
    """hour_tally's fold for `table`: the statement's change per key, plus the
    key's rows no other transaction holds (deleted), inserted as one row."""
    k = ", ".join(key)
    v = ", ".join(values)
    sums = ", ".join(f"sum({c})" for c in values)
    nonzero = " OR ".join(f"sum({c}) <> 0" for c in values)
    return f"""
        WITH moved AS ({moved}),
        free AS (
            SELECT t.id FROM {table} t JOIN moved m USING ({k})
            ORDER BY t.id FOR UPDATE OF t SKIP LOCKED
        ),
        gone AS (
            DELETE FROM {table} t USING free WHERE t.id = free.id
            RETURNING {", ".join("t." + c for c in key + values)}
        )
        INSERT INTO {table} ({k}, {v})
        SELECT {k}, {sums} FROM (SELECT {k}, {v} FROM gone UNION ALL SELECT {k}, {v} FROM moved) AS parts
        GROUP BY {k} HAVING {nonzero};"""


def _signed(rows_and_signs, key, values, exprs, where=""):
    """The change per key of rows taken with a sign: [(transition table, +1/-1)]."""
    k = ", ".join(key)
    parts = []
    for table, sign in rows_and_signs:
        cols = ", ".join(f"{'-' if sign < 0 else ''}({e}) AS {c}" for c, e in zip(values, exprs))
        keys = ", ".join(f"{e} AS {c}" for c, e in key.items())
        parts.append(f"SELECT {keys}, {cols} FROM {table} {where}")
    nonzero = " OR ".join(f"sum({c}) <> 0" for c in values)
    sums = ", ".join(f"sum({c}) AS {c}" for c in values)
    return f"SELECT {k}, {sums} FROM ({' UNION ALL '.join(parts)}) AS both_sides GROUP BY {k} HAVING {nonzero}"


SIDES = {"INSERT": [("new_rows", 1)], "DELETE": [("old_rows", -1)],
         "UPDATE": [("new_rows", 1), ("old_rows", -1)]}

# hour_record -> person_year_total (in place) and unit_year_source (fold)
PYT_KEY = {"person_id": "person_id", "year": "year"}
PYT_VALUES = ["pro", "pub"]
PYT_EXPRS = ["CASE WHEN category = 'PRO' THEN hours ELSE 0 END", "CASE WHEN category = 'PUB' THEN hours ELSE 0 END"]
SRC_KEY = {"unit_id": "COALESCE(unit_id, 0)", "region_code": "COALESCE(region_code, '')", "year": "year",
           "category": "category", "source": "source"}
SRC_VALUES = ["hours", "records"]
SRC_EXPRS = ["hours", "1"]


def _pg_person_totals(op_name):
    moved = _signed(SIDES[op_name], PYT_KEY, PYT_VALUES, PYT_EXPRS, f"WHERE status = {APPROVED}")
    return f"""
        WITH moved AS ({moved}),
        who AS (
            SELECT p.id, p.unit_id FROM person p WHERE p.id IN (SELECT person_id FROM moved)
            ORDER BY p.id FOR SHARE
        )
        INSERT INTO person_year_total AS t (person_id, year, professional, public, met, unit_id)
        SELECT m.person_id, m.year, m.pro, m.pub, ce_met(m.year, m.pro, m.pub), who.unit_id
        FROM moved m JOIN who ON who.id = m.person_id ORDER BY m.person_id, m.year
        ON CONFLICT (person_id, year) DO UPDATE SET
            professional = t.professional + EXCLUDED.professional,
            public = t.public + EXCLUDED.public,
            met = ce_met(t.year, t.professional + EXCLUDED.professional, t.public + EXCLUDED.public);"""


def _pg_sources(op_name):
    moved = _signed(SIDES[op_name], SRC_KEY, SRC_VALUES, SRC_EXPRS, f"WHERE status = {APPROVED}")
    return _fold("unit_year_source", list(SRC_KEY), SRC_VALUES, moved)


PG_HOURS_FUNCTION = f"""
CREATE FUNCTION ce_totals_follow_hours() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN {_pg_person_totals("INSERT")} {_pg_sources("INSERT")}
    ELSIF TG_OP = 'DELETE' THEN {_pg_person_totals("DELETE")} {_pg_sources("DELETE")}
    ELSE {_pg_person_totals("UPDATE")} {_pg_sources("UPDATE")}
    END IF;
    RETURN NULL;
END
$$
"""

# person_year_total -> unit_year_total (fold)
UYT_KEY = {"unit_id": "COALESCE(unit_id, 0)", "year": "year"}
UYT_VALUES = ["met", "professional", "public"]
UYT_EXPRS = ["CASE WHEN met THEN 1 ELSE 0 END", "professional", "public"]


def _pg_units(op_name):
    return _fold("unit_year_total", list(UYT_KEY), UYT_VALUES,
                 _signed(SIDES[op_name], UYT_KEY, UYT_VALUES, UYT_EXPRS))


PG_PYT_FUNCTION = f"""
CREATE FUNCTION ce_totals_follow_persons_years() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN {_pg_units("INSERT")}
    ELSIF TG_OP = 'DELETE' THEN {_pg_units("DELETE")}
    ELSE {_pg_units("UPDATE")}
    END IF;
    RETURN NULL;
END
$$
"""

# person -> unit_persons (fold), and the person's totals follow the person's unit
UP_KEY = {"unit_id": "COALESCE(unit_id, 0)"}


def _pg_unit_persons(op_name):
    if op_name == "UPDATE":
        moved = (
            "SELECT unit_id, sum(persons) AS persons FROM ("
            "SELECT COALESCE(n.unit_id, 0) AS unit_id, 1 AS persons FROM new_rows n JOIN old_rows o ON o.id = n.id "
            "WHERE n.unit_id IS DISTINCT FROM o.unit_id UNION ALL "
            "SELECT COALESCE(o.unit_id, 0), -1 FROM new_rows n JOIN old_rows o ON o.id = n.id "
            "WHERE n.unit_id IS DISTINCT FROM o.unit_id) AS both_sides GROUP BY unit_id HAVING sum(persons) <> 0"
        )
    else:
        moved = _signed(SIDES[op_name], UP_KEY, ["persons"], ["1"])
    return _fold("unit_persons", ["unit_id"], ["persons"], moved)


PG_PERSON_FUNCTION = f"""
CREATE FUNCTION ce_totals_follow_person() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN {_pg_unit_persons("INSERT")}
    ELSIF TG_OP = 'DELETE' THEN {_pg_unit_persons("DELETE")}
        DELETE FROM person_year_total t USING old_rows o WHERE t.person_id = o.id;
    ELSE {_pg_unit_persons("UPDATE")}
        UPDATE person_year_total t SET unit_id = n.unit_id
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE t.person_id = n.id AND n.unit_id IS DISTINCT FROM o.unit_id;
    END IF;
    RETURN NULL;
END
$$
"""

PG_EMPTY_FUNCTION = """
CREATE FUNCTION ce_totals_empty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'person' THEN
        DELETE FROM unit_persons;
    END IF;
    DELETE FROM person_year_total;
    DELETE FROM unit_year_total;
    DELETE FROM unit_year_source;
    RETURN NULL;
END
$$
"""


def _pg_triggers(table, function, prefix):
    return [
        f"CREATE TRIGGER {prefix}_insert AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        f"CREATE TRIGGER {prefix}_delete AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        f"CREATE TRIGGER {prefix}_update AFTER UPDATE ON {table} REFERENCING OLD TABLE AS old_rows "
        f"NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
    ]


PG_TRIGGERS = (
    _pg_triggers("hour_record", "ce_totals_follow_hours", "ce_totals_hours")
    + _pg_triggers("person_year_total", "ce_totals_follow_persons_years", "ce_totals_pyt")
    + _pg_triggers("person", "ce_totals_follow_person", "ce_totals_person")
    + [
        "CREATE TRIGGER ce_totals_hours_truncate AFTER TRUNCATE ON hour_record "
        "FOR EACH STATEMENT EXECUTE FUNCTION ce_totals_empty()",
        "CREATE TRIGGER ce_totals_person_truncate AFTER TRUNCATE ON person "
        "FOR EACH STATEMENT EXECUTE FUNCTION ce_totals_empty()",
    ]
)
PG_TRIGGER_TABLES = {
    "ce_totals_hours_insert": "hour_record", "ce_totals_hours_delete": "hour_record",
    "ce_totals_hours_update": "hour_record", "ce_totals_hours_truncate": "hour_record",
    "ce_totals_pyt_insert": "person_year_total", "ce_totals_pyt_delete": "person_year_total",
    "ce_totals_pyt_update": "person_year_total",
    "ce_totals_person_insert": "person", "ce_totals_person_delete": "person",
    "ce_totals_person_update": "person", "ce_totals_person_truncate": "person",
}
PG_FUNCTIONS = ("ce_totals_follow_hours()", "ce_totals_follow_persons_years()", "ce_totals_follow_person()",
                "ce_totals_empty()", "ce_met(integer, numeric, numeric)")

# ------------------------------------------------------------ SQLite triggers


def _sqlite_person_year(r, sign):
    s = "-" if sign < 0 else ""
    pro = f"{s}(CASE WHEN {r}.category = 'PRO' THEN {r}.hours ELSE 0 END)"
    pub = f"{s}(CASE WHEN {r}.category = 'PUB' THEN {r}.hours ELSE 0 END)"
    return (
        "INSERT INTO person_year_total (person_id, year, professional, public, met, unit_id) "
        f"SELECT {r}.person_id, {r}.year, {pro}, {pub}, {met_sql(f'{r}.year', pro, pub)}, "
        f"(SELECT unit_id FROM person WHERE id = {r}.person_id) WHERE {r}.status = {APPROVED} "
        "ON CONFLICT (person_id, year) DO UPDATE SET "
        "professional = professional + excluded.professional, public = public + excluded.public, "
        # Qualified: inside met_sql's sub-select a bare `year` would be year_requirement's.
        "met = " + met_sql("person_year_total.year", "person_year_total.professional + excluded.professional",
                           "person_year_total.public + excluded.public") + ";"
    )


def _sqlite_source(r, sign):
    same = (f"unit_id = COALESCE({r}.unit_id, 0) AND region_code = COALESCE({r}.region_code, '') "
            f"AND year = {r}.year AND category = {r}.category AND source = {r}.source")
    op_ = "-" if sign < 0 else "+"
    sql = (f"UPDATE unit_year_source SET hours = hours {op_} {r}.hours, records = records {op_} 1 "
           f"WHERE {same} AND {r}.status = {APPROVED};")
    if sign > 0:
        sql += (
            " INSERT INTO unit_year_source (unit_id, region_code, year, category, source, hours, records) "
            f"SELECT COALESCE({r}.unit_id, 0), COALESCE({r}.region_code, ''), {r}.year, {r}.category, {r}.source, "
            f"{r}.hours, 1 WHERE {r}.status = {APPROVED} AND NOT EXISTS (SELECT 1 FROM unit_year_source WHERE {same});"
        )
    return sql


def _sqlite_unit_year(r, sign):
    same = f"unit_id = COALESCE({r}.unit_id, 0) AND year = {r}.year"
    op_ = "-" if sign < 0 else "+"
    sql = (f"UPDATE unit_year_total SET met = met {op_} {r}.met, professional = professional {op_} {r}.professional, "
           f"public = public {op_} {r}.public WHERE {same};")
    if sign > 0:
        sql += (" INSERT INTO unit_year_total (unit_id, year, met, professional, public) "
                f"SELECT COALESCE({r}.unit_id, 0), {r}.year, {r}.met, {r}.professional, {r}.public "
                f"WHERE NOT EXISTS (SELECT 1 FROM unit_year_total WHERE {same});")
    return sql


def _sqlite_unit_persons(r, sign):
    same = f"unit_id = COALESCE({r}.unit_id, 0)"
    op_ = "-" if sign < 0 else "+"
    sql = f"UPDATE unit_persons SET persons = persons {op_} 1 WHERE {same};"
    if sign > 0:
        sql += (f" INSERT INTO unit_persons (unit_id, persons) SELECT COALESCE({r}.unit_id, 0), 1 "
                f"WHERE NOT EXISTS (SELECT 1 FROM unit_persons WHERE {same});")
    return sql


def _changed(cols):
    return " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in cols)


_PYT_COLS = ("status", "hours", "category", "person_id", "year")
_SRC_COLS = ("status", "hours", "category", "year", "unit_id", "region_code", "source")
_EITHER = f"(OLD.status = {APPROVED} OR NEW.status = {APPROVED})"

SQLITE_TRIGGERS = [
    f"CREATE TRIGGER ce_totals_hours_insert AFTER INSERT ON hour_record WHEN NEW.status = {APPROVED} BEGIN "
    f"{_sqlite_person_year('NEW', 1)} {_sqlite_source('NEW', 1)} END",
    f"CREATE TRIGGER ce_totals_hours_delete AFTER DELETE ON hour_record WHEN OLD.status = {APPROVED} BEGIN "
    f"{_sqlite_person_year('OLD', -1)} {_sqlite_source('OLD', -1)} END",
    f"CREATE TRIGGER ce_totals_hours_update AFTER UPDATE OF {', '.join(_PYT_COLS)} ON hour_record "
    f"WHEN {_EITHER} AND ({_changed(_PYT_COLS)}) BEGIN "
    f"{_sqlite_person_year('OLD', -1)} {_sqlite_person_year('NEW', 1)} END",
    f"CREATE TRIGGER ce_totals_sources_update AFTER UPDATE OF {', '.join(_SRC_COLS)} ON hour_record "
    f"WHEN {_EITHER} AND ({_changed(_SRC_COLS)}) BEGIN "
    f"{_sqlite_source('OLD', -1)} {_sqlite_source('NEW', 1)} END",
    f"CREATE TRIGGER ce_totals_pyt_insert AFTER INSERT ON person_year_total BEGIN {_sqlite_unit_year('NEW', 1)} END",
    f"CREATE TRIGGER ce_totals_pyt_delete AFTER DELETE ON person_year_total BEGIN {_sqlite_unit_year('OLD', -1)} END",
    # The common case (hours of a person's year change): one UPDATE of the unit's row.
    "CREATE TRIGGER ce_totals_pyt_update AFTER UPDATE ON person_year_total "
    "WHEN OLD.unit_id IS NEW.unit_id AND OLD.year = NEW.year BEGIN "
    "UPDATE unit_year_total SET met = met + NEW.met - OLD.met, "
    "professional = professional + NEW.professional - OLD.professional, "
    "public = public + NEW.public - OLD.public WHERE unit_id = COALESCE(NEW.unit_id, 0) AND year = NEW.year; END",
    "CREATE TRIGGER ce_totals_pyt_move AFTER UPDATE ON person_year_total "
    "WHEN OLD.unit_id IS NOT NEW.unit_id OR OLD.year <> NEW.year BEGIN "
    f"{_sqlite_unit_year('OLD', -1)} {_sqlite_unit_year('NEW', 1)} END",
    f"CREATE TRIGGER ce_totals_person_insert AFTER INSERT ON person BEGIN {_sqlite_unit_persons('NEW', 1)} END",
    "CREATE TRIGGER ce_totals_person_delete AFTER DELETE ON person BEGIN "
    f"{_sqlite_unit_persons('OLD', -1)} DELETE FROM person_year_total WHERE person_id = OLD.id; END",
    "CREATE TRIGGER ce_totals_person_update AFTER UPDATE OF unit_id ON person WHEN OLD.unit_id IS NOT NEW.unit_id "
    f"BEGIN {_sqlite_unit_persons('OLD', -1)} {_sqlite_unit_persons('NEW', 1)} "
    "UPDATE person_year_total SET unit_id = NEW.unit_id WHERE person_id = NEW.id; END",
]
SQLITE_TRIGGER_NAMES = [ddl.split()[2] for ddl in SQLITE_TRIGGERS]


def create_triggers(bind):
    if bind.dialect.name == "postgresql":
        for ddl in (PG_MET_FUNCTION, PG_HOURS_FUNCTION, PG_PYT_FUNCTION, PG_PERSON_FUNCTION, PG_EMPTY_FUNCTION,
                    *PG_TRIGGERS):
            op.execute(ddl)
    else:
        for ddl in SQLITE_TRIGGERS:
            op.execute(ddl)


def drop_triggers(bind):
    if bind.dialect.name == "postgresql":
        for name, table in PG_TRIGGER_TABLES.items():
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        for fn in PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    else:
        for name in SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")


# ------------------------------------------------------------------ backfill

BACKFILL = [
    # The persons' years, then what the unit tables sum from them (before the
    # triggers exist, so nothing is counted twice).
    "INSERT INTO person_year_total (person_id, year, professional, public, met, unit_id) "
    "SELECT s.person_id, s.year, s.pro, s.pub, {met}, p.unit_id FROM ("
    "  SELECT person_id, year, sum(CASE WHEN category = 'PRO' THEN hours ELSE 0 END) AS pro, "
    "  sum(CASE WHEN category = 'PUB' THEN hours ELSE 0 END) AS pub "
    f"  FROM hour_record WHERE status = {APPROVED} GROUP BY person_id, year) AS s "
    "JOIN person p ON p.id = s.person_id ORDER BY s.person_id, s.year",
    "INSERT INTO unit_year_total (unit_id, year, met, professional, public) "
    "SELECT COALESCE(unit_id, 0), year, sum(CASE WHEN met THEN 1 ELSE 0 END), sum(professional), sum(public) "
    "FROM person_year_total GROUP BY COALESCE(unit_id, 0), year ORDER BY 1, 2",
    "INSERT INTO unit_persons (unit_id, persons) SELECT COALESCE(unit_id, 0), count(*) FROM person "
    "GROUP BY COALESCE(unit_id, 0) ORDER BY 1",
    "INSERT INTO unit_year_source (unit_id, region_code, year, category, source, hours, records) "
    "SELECT COALESCE(unit_id, 0), COALESCE(region_code, ''), year, category, source, sum(hours), count(*) "
    f"FROM hour_record WHERE status = {APPROVED} "
    "GROUP BY COALESCE(unit_id, 0), COALESCE(region_code, ''), year, category, source ORDER BY 1, 2, 3, 4, 5",
]


def _seed_requirement():
    """Year 0's requirement from the configuration (defaults: 90 hours, 2/3 专业)."""
    total, ratio = 90.0, 2 / 3
    try:
        from flask import current_app

        total = float(current_app.config.get("REQUIRED_HOURS_TOTAL", total))
        ratio = float(current_app.config.get("REQUIRED_PROFESSIONAL_RATIO", ratio))
    except RuntimeError:  # no application: the defaults
        pass
    t = Decimal(str(total)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    r = Decimal(str(ratio)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    pro = (t * Decimal(str(ratio))).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return t, r, pro


def _numeric(name, scale=1):
    return sa.Column(name, sa.Numeric(12, scale), nullable=False)


def upgrade():
    bind = op.get_bind()
    is_pg = bind.dialect.name == "postgresql"
    op.create_table(
        "year_requirement",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("required_total", sa.Numeric(6, 1), nullable=False),
        sa.Column("professional_ratio", sa.Numeric(5, 4), nullable=False),
        sa.Column("required_professional", sa.Numeric(6, 1), nullable=False),
        sa.Column("required_public", sa.Numeric(6, 1), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("year"),
    )
    op.create_table(
        "person_year_total",
        sa.Column("person_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        _numeric("professional"),
        _numeric("public"),
        sa.Column("met", sa.Boolean(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("person_id", "year"),
    )
    op.create_index("ix_pyt_year_unit", "person_year_total", ["year", "unit_id"])
    op.create_table(
        "unit_year_total",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("met", sa.Integer(), nullable=False),
        _numeric("professional"),
        _numeric("public"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_uyt_key", "unit_year_total", ["unit_id", "year"])
    op.create_index("ix_uyt_year", "unit_year_total", ["year", "unit_id", "met", "professional", "public"])
    op.create_table(
        "unit_persons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("persons", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_unit_persons_key", "unit_persons", ["unit_id", "persons"])
    op.create_table(
        "unit_year_source",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("region_code", sa.String(6), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("category", sa.Enum("PRO", "PUB", name="category", native_enum=False, length=20),
                  nullable=False),
        sa.Column("source", sa.Enum("DECLARED", "UNIT_IMPORT", "ORGANIZER_REPORT", "BUREAU_IMPORT",
                                    "INDUSTRY_IMPORT", name="source", native_enum=False, length=20),
                  nullable=False),
        _numeric("hours"),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_uys_key", "unit_year_source", ["unit_id", "region_code", "year", "category", "source"])
    op.create_index("ix_uys_year", "unit_year_source", ["year", "region_code"])
    # The persons not meeting the requirement, in the order the list shows them.
    op.create_index("ix_unit_region_name", "unit", ["region_code", "name", "id"])
    op.create_index("ix_person_unit_name", "person", ["unit_id", "name", "id"])

    total, ratio, pro = _seed_requirement()
    op.execute(sa.text("INSERT INTO year_requirement (year, required_total, professional_ratio, required_professional) "
                       "VALUES (0, :t, :r, :p)").bindparams(t=total, r=ratio, p=pro))
    if is_pg:
        op.execute(PG_MET_FUNCTION)
        met = "ce_met(s.year, s.pro, s.pub)"
    else:
        met = met_sql("s.year", "s.pro", "s.pub")
    for sql in BACKFILL:
        op.execute(sql.replace("{met}", met))
    if is_pg:
        for ddl in (PG_HOURS_FUNCTION, PG_PYT_FUNCTION, PG_PERSON_FUNCTION, PG_EMPTY_FUNCTION, *PG_TRIGGERS):
            op.execute(ddl)
        for table in ("person_year_total", "unit_year_total", "unit_persons", "unit_year_source"):
            op.execute(f"ANALYZE {table}")
    else:
        create_triggers(bind)


def downgrade():
    bind = op.get_bind()
    drop_triggers(bind)
    op.drop_index("ix_person_unit_name", table_name="person")
    op.drop_index("ix_unit_region_name", table_name="unit")
    for table in ("unit_year_source", "unit_persons", "unit_year_total", "person_year_total", "year_requirement"):
        op.drop_table(table)
