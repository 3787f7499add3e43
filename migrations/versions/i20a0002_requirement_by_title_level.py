"""A year's requirement by title level (初级 / 中级 / 高级); met flags follow the person's level

Revision ID: i20a0002
Revises: i19a0003
Create Date: 2026-12-06 08:40:00

- person.title_level: 初级 / 中级 / 高级 derived from person.title
  (models.person.title_level_of, set by the model whenever title is set);
  backfilled here.  Plain ADD COLUMN (a batch copy would drop person's triggers).
- year_requirement_level (year, level): the year's requirement for persons of
  that level; a level without a row follows year_requirement.
- The met flag of person_year_total follows the person's level.  The triggers
  of i19a0001 are left as they are (they compute the flag from year_requirement);
  one more trigger corrects the flag of every row written:
    PostgreSQL: BEFORE INSERT OR UPDATE on person_year_total sets NEW.met
      (before the statement triggers fold the unit sums, which see the exact flag);
    SQLite: AFTER INSERT / UPDATE on person_year_total, when the flag differs,
      updates it (SQLite runs no trigger recursively by default, and the unit
      roll-up's row trigger takes the correction as a change of met).
  A change of a person's title_level recomputes that person's flags.
"""
import sqlalchemy as sa
from alembic import op

revision = "i20a0002"
down_revision = "i19a0003"
branch_labels = None
depends_on = None

LEVELS = ("初级", "中级", "高级")


def level_met_sql(year, pro, pub, person_id, true="1", false="0"):
    """达标 of (pro, pub) hours in `year` for person `person_id`: the row of the
    person's title level in year_requirement_level, else year_requirement's row
    (the year's, else year 0's; none: not met).  services.requirement.met_sql is
    the same rule for SQLAlchemy."""
    cond = (f"({pro}) + ({pub}) >= r.required_total AND ({pro}) >= r.required_professional "
            f"AND (r.required_public IS NULL OR ({pub}) >= r.required_public)")
    return (
        f"COALESCE((SELECT CASE WHEN {cond} THEN {true} ELSE {false} END "
        f"FROM year_requirement_level r JOIN person p ON p.title_level = r.level "
        f"WHERE p.id = ({person_id}) AND r.year = ({year})), "
        f"(SELECT CASE WHEN {cond} THEN {true} ELSE {false} END "
        f"FROM year_requirement r WHERE r.year IN ({year}, 0) ORDER BY r.year DESC LIMIT 1), {false})"
    )


PG = [
    f"""CREATE FUNCTION ce_met_person(y integer, pro numeric, pub numeric, pid integer) RETURNS boolean
        LANGUAGE sql STABLE AS $$ SELECT {level_met_sql("y", "pro", "pub", "pid", "true", "false")} $$""",
    """CREATE FUNCTION ce_pyt_level_met() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.met := ce_met_person(NEW.year, NEW.professional, NEW.public, NEW.person_id);
        RETURN NEW;
    END $$""",
    """CREATE TRIGGER ce_pyt_level_met BEFORE INSERT OR UPDATE ON person_year_total
        FOR EACH ROW EXECUTE FUNCTION ce_pyt_level_met()""",
    """CREATE FUNCTION ce_person_level_met() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE person_year_total SET met = ce_met_person(year, professional, public, person_id)
        WHERE person_id = NEW.id;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER ce_person_level_met AFTER UPDATE OF title_level ON person
        FOR EACH ROW WHEN (OLD.title_level IS DISTINCT FROM NEW.title_level) EXECUTE FUNCTION ce_person_level_met()""",
]

_NEW = level_met_sql("NEW.year", "NEW.professional", "NEW.public", "NEW.person_id")
_ROW = level_met_sql("person_year_total.year", "person_year_total.professional", "person_year_total.public",
                     "person_year_total.person_id")
SQLITE = [
    f"""CREATE TRIGGER ce_pyt_level_met_ins AFTER INSERT ON person_year_total
        WHEN NEW.met IS NOT {_NEW}
        BEGIN UPDATE person_year_total SET met = {_NEW} WHERE person_id = NEW.person_id AND year = NEW.year; END""",
    f"""CREATE TRIGGER ce_pyt_level_met_upd AFTER UPDATE OF professional, public, met ON person_year_total
        WHEN NEW.met IS NOT {_NEW}
        BEGIN UPDATE person_year_total SET met = {_NEW} WHERE person_id = NEW.person_id AND year = NEW.year; END""",
    f"""CREATE TRIGGER ce_person_level_met AFTER UPDATE OF title_level ON person
        WHEN OLD.title_level IS NOT NEW.title_level
        BEGIN UPDATE person_year_total SET met = {_ROW} WHERE person_id = NEW.id AND met IS NOT {_ROW}; END""",
]


def _title_level_of(title):
    # models.person.title_level_of as of this migration (frozen here on purpose).
    senior = ("正高", "副高", "高级", "教授", "研究员", "主任医师", "主任药师", "主任护师", "主任技师", "编审", "译审")
    junior = ("助理", "技术员", "助教", "医士", "药士", "护士", "技士", "员级", "初级")
    t = (title or "").strip().replace(" ", "")
    if not t:
        return None
    if any(k in t for k in senior):
        return "高级"
    if any(k in t for k in junior) or t in ("医师", "药师", "护师", "技师") or t.endswith("员"):
        return "初级"
    return "中级"


def upgrade():
    op.add_column("person", sa.Column("title_level", sa.String(4), nullable=True))
    op.create_table(
        "year_requirement_level",
        sa.Column("year", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("level", sa.String(4), nullable=False),
        sa.Column("required_total", sa.Numeric(6, 1), nullable=False),
        sa.Column("professional_ratio", sa.Numeric(5, 4), nullable=False),
        sa.Column("required_professional", sa.Numeric(6, 1), nullable=False),
        sa.Column("required_public", sa.Numeric(6, 1), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("year", "level"),
    )
    bind = op.get_bind()
    # Backfill by distinct title (few), before the triggers exist (no level row yet: no flag changes).
    person = sa.table("person", sa.column("title", sa.String), sa.column("title_level", sa.String))
    for (title,) in bind.execute(sa.select(person.c.title).distinct().where(person.c.title.is_not(None))).all():
        level = _title_level_of(title)
        if level:
            bind.execute(person.update().where(person.c.title == title).values(title_level=level))
    for stmt in (PG if bind.dialect.name == "postgresql" else SQLITE):
        op.execute(stmt)


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ce_person_level_met ON person")
        op.execute("DROP TRIGGER IF EXISTS ce_pyt_level_met ON person_year_total")
        op.execute("DROP FUNCTION IF EXISTS ce_person_level_met()")
        op.execute("DROP FUNCTION IF EXISTS ce_pyt_level_met()")
        op.execute("DROP FUNCTION IF EXISTS ce_met_person(integer, numeric, numeric, integer)")
    else:
        for name in ("ce_pyt_level_met_ins", "ce_pyt_level_met_upd", "ce_person_level_met"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("year_requirement_level")
    op.drop_column("person", "title_level")
