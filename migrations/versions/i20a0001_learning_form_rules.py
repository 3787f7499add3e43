"""学时认定标准: each year's catalogue of learning forms; the record keeps its form code and rule version

Revision ID: i20a0001
Revises: i19a0002
Create Date: 2026-12-06 05:30:00

- learning_form_rule: one row per version of a form's rule in a year (see
  models.rules).  Seeded here with today's fixed list (the LearningForm enum):
  for every year that has records, and this year, one row per enum member,
  code = the member's name, computed "as declared", counting for both
  categories, no caps of its own (MAX_HOURS_PER_RECORD still bounds a record).
- hour_record.form_code / rule_id / rule_inputs / computed_hours: the form's code
  as stored, the rule version it was recognised under, what the applicant
  stated, the hours the rule computed.  Existing rows are NOT rewritten (an
  UPDATE of every record would run the totals triggers over the whole table):
  a record with form_code NULL predates the rules, its form is its
  learning_form (the code of the seeded row) under version 1 of its year.
  Plain ADD COLUMN (no batch copy: it would drop hour_record's triggers).
"""
import datetime

import sqlalchemy as sa
from alembic import op

revision = "i20a0001"
down_revision = "i19a0002"
branch_labels = None
depends_on = None

# LearningForm as of this migration (name, label): frozen here on purpose.
FORMS = (
    ("TRAIN_ONSITE", "培训（面授）"), ("TRAIN_ONLINE", "培训（网络）"), ("CONFERENCE", "学术会议"),
    ("DEGREE", "学历（学位）教育"), ("STUDY", "进修"), ("RESEARCH", "研修"), ("OTHER", "其他"),
)


def upgrade():
    op.create_table(
        "learning_form_rule",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("national_form", sa.String(20), nullable=False),
        sa.Column("categories", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("cap_record", sa.Numeric(6, 1), nullable=True),
        sa.Column("cap_year", sa.Numeric(7, 1), nullable=True),
        sa.Column("proof_text", sa.String(300), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("sort", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(200), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
    )
    op.create_index("ux_lfr_year_code_version", "learning_form_rule", ["year", "code", "version"], unique=True)
    op.create_index("ix_lfr_year_current", "learning_form_rule", ["year", "is_current", "sort"])
    op.add_column("hour_record", sa.Column("form_code", sa.String(40), nullable=True))
    op.add_column("hour_record", sa.Column("rule_id", sa.Integer(), nullable=True))
    op.add_column("hour_record", sa.Column("rule_inputs", sa.String(500), nullable=True))
    op.add_column("hour_record", sa.Column("computed_hours", sa.Numeric(6, 1), nullable=True))

    conn = op.get_bind()
    years = {y for (y,) in conn.execute(sa.text("SELECT DISTINCT year FROM hour_record"))}
    years.add(datetime.date.today().year)
    table = sa.table(
        "learning_form_rule", *(sa.column(c) for c in (
            "year", "code", "version", "is_current", "name", "national_form", "categories", "kind", "params",
            "active", "sort", "updated_at")))
    now = datetime.datetime.utcnow()
    rows = [dict(year=y, code=code, version=1, is_current=True, name=label, national_form=code, categories="PRO,PUB",
                 kind="DECLARED", params="{}", active=True, sort=i * 10, updated_at=now)
            for y in sorted(years) for i, (code, label) in enumerate(FORMS)]
    if rows:
        op.bulk_insert(table, rows)


def downgrade():
    for col in ("computed_hours", "rule_inputs", "rule_id", "form_code"):
        op.drop_column("hour_record", col)
    op.drop_index("ix_lfr_year_current", table_name="learning_form_rule")
    op.drop_index("ux_lfr_year_code_version", table_name="learning_form_rule")
    op.drop_table("learning_form_rule")
