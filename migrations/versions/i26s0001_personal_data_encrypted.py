"""personal data encrypted at rest: person.id_number / phone, unit.contact_phone (SM4-GCM, HMAC-SM3 index); ID-number usernames as digests

Revision ID: i26s0001
Revises: i26a0002
Create Date: 2026-12-06 05:40:00

The ID number and the mobile numbers are stored as SM4-GCM ciphertexts under the
key of DATA_KEY_FILE (app/models/crypto.py); the ID number gets a blind index
(HMAC-SM3) that carries the lookups and the unique constraint.  Existing rows are
converted in batches with the application's key ring (this migration needs the key
file, as the application does), then the columns are widened and the constraint
moves to the index.  On SQLite the person and unit tables are rebuilt (batch mode):
the triggers of i19a0001 (which name person) and the partial index of e7a1c0de0005 are made
again afterwards.  Accounts that sign in with their ID number (the username was
the number) are renamed to the number's digest ("id-" + 24 hex digits of the
index; the login page still takes the number).  The downgrade decrypts.
"""
import importlib.util
import os

import sqlalchemy as sa
from alembic import op
from flask import current_app

revision = "i26s0001"
down_revision = "i26a0002"
branch_labels = None
depends_on = None

BATCH = 5000
# (table, column, purpose of its ciphertext, blind-index column or None)
COLUMNS = [
    ("person", "id_number", "person.id_number", "id_number_bidx"),
    ("person", "phone", "person.phone", None),
    ("unit", "contact_phone", "unit.contact_phone", None),
]
OLD_LENGTH = {"id_number": 32, "phone": 30, "contact_phone": 30}
NEW_LENGTH = 160
PENDING_WHERE = sa.text("pending_unit_id IS NOT NULL")


def _migration(name):
    path = os.path.join(os.path.dirname(__file__), name + ".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _convert(bind, encrypt):
    """Every value of COLUMNS through the key ring: encrypted (and indexed) or decrypted."""
    ring = current_app.extensions["data_keys"]
    for table_name, col, purpose, index in COLUMNS:
        cols = [sa.column("id"), sa.column(col)] + ([sa.column(index)] if index and encrypt else [])
        table = sa.table(table_name, *cols)
        last = 0
        while True:
            rows = bind.execute(
                sa.select(table.c.id, table.c[col]).where(table.c.id > last).order_by(table.c.id).limit(BATCH)
            ).all()
            if not rows:
                break
            last = rows[-1][0]
            changes = []
            for pk, value in rows:
                if value is None:
                    continue
                change = {"pk": pk}
                if encrypt:
                    change["v"] = ring.encrypt(value, purpose)
                    if index:
                        change["i"] = ring.blind_index(value, purpose)
                else:
                    change["v"] = ring.decrypt(value, purpose)
                changes.append(change)
            if changes:
                values = {col: sa.bindparam("v")}
                if index and encrypt:
                    values[index] = sa.bindparam("i")
                bind.execute(table.update().where(table.c.id == sa.bindparam("pk")).values(values), changes)


def _accounts(bind, to_digest):
    """Accounts that sign in with their ID number: the username (and the made-up
    e-mail built from it) becomes the number's digest, or back to the number."""
    ring = current_app.extensions["data_keys"]
    users = sa.table("ab_user", sa.column("id"), sa.column("username"), sa.column("email"), sa.column("person_id"))
    person = sa.table("person", sa.column("id"), sa.column("id_number"))
    rows = bind.execute(sa.select(users.c.id, users.c.username, person.c.id_number)
                        .join(person, person.c.id == users.c.person_id)).all()
    changes = []
    for uid, username, number in rows:
        if to_digest and username.upper() == number.upper():
            new = "id-" + ring.blind_index(number, "person.id_number")[:24]
        elif not to_digest and username.startswith("id-"):
            new = ring.decrypt(number, "person.id_number")
        else:
            continue
        changes.append({"pk": uid, "u": new, "e": f"{new}@users.invalid"})
    if changes:
        bind.execute(users.update().where(users.c.id == sa.bindparam("pk"))
                     .values(username=sa.bindparam("u"), email=sa.bindparam("e")), changes)


def _sqlite_rebuild(bind, person_changes, unit_changes):
    totals = _migration("i19a0001_person_year_totals")
    totals.drop_triggers(bind)  # SQLite checks every trigger naming person when the copy is renamed
    op.drop_index("ix_person_pending_unit", table_name="person")
    with op.batch_alter_table("person", recreate="always") as batch:
        person_changes(batch)
    op.create_index("ix_person_pending_unit", "person", ["pending_unit_id"], sqlite_where=PENDING_WHERE,
                    postgresql_where=PENDING_WHERE)
    with op.batch_alter_table("unit", recreate="always") as batch:
        unit_changes(batch)
    totals.create_triggers(bind)
    # i19a0002's change to the hour_record insert trigger made again (import batches
    # are counted set-based on SQLite).
    _migration("i19a0002_sqlite_import_batches_set_based")._rewrite(0, 1)


def upgrade():
    bind = op.get_bind()
    op.add_column("person", sa.Column("id_number_bidx", sa.String(64), nullable=True))
    if bind.dialect.name == "postgresql":
        for table, col, _p, _i in COLUMNS:
            op.alter_column(table, col, type_=sa.String(NEW_LENGTH), existing_type=sa.String(OLD_LENGTH[col]))
    _accounts(bind, to_digest=True)
    _convert(bind, encrypt=True)

    def person(batch):
        batch.alter_column("id_number", type_=sa.String(NEW_LENGTH), existing_type=sa.String(32),
                           existing_nullable=False)
        batch.alter_column("phone", type_=sa.String(NEW_LENGTH), existing_type=sa.String(30))
        batch.alter_column("id_number_bidx", nullable=False, existing_type=sa.String(64))
        batch.drop_constraint("uq_person_id", type_="unique")
        batch.create_unique_constraint("uq_person_id", ["id_type", "id_number_bidx"])

    def unit(batch):
        batch.alter_column("contact_phone", type_=sa.String(NEW_LENGTH), existing_type=sa.String(30))

    if bind.dialect.name == "postgresql":
        op.alter_column("person", "id_number_bidx", nullable=False, existing_type=sa.String(64))
        op.drop_constraint("uq_person_id", "person", type_="unique")
        op.create_unique_constraint("uq_person_id", "person", ["id_type", "id_number_bidx"])
    else:
        _sqlite_rebuild(bind, person, unit)


def downgrade():
    bind = op.get_bind()
    _accounts(bind, to_digest=False)
    _convert(bind, encrypt=False)

    def person(batch):
        batch.drop_constraint("uq_person_id", type_="unique")
        batch.create_unique_constraint("uq_person_id", ["id_type", "id_number"])
        batch.drop_column("id_number_bidx")
        batch.alter_column("id_number", type_=sa.String(32), existing_type=sa.String(NEW_LENGTH),
                           existing_nullable=False)
        batch.alter_column("phone", type_=sa.String(30), existing_type=sa.String(NEW_LENGTH))

    def unit(batch):
        batch.alter_column("contact_phone", type_=sa.String(30), existing_type=sa.String(NEW_LENGTH))

    if bind.dialect.name == "postgresql":
        op.drop_constraint("uq_person_id", "person", type_="unique")
        op.create_unique_constraint("uq_person_id", "person", ["id_type", "id_number"])
        op.drop_column("person", "id_number_bidx")
        for table, col, _p, _i in COLUMNS:
            op.alter_column(table, col, type_=sa.String(OLD_LENGTH[col]), existing_type=sa.String(NEW_LENGTH))
    else:
        _sqlite_rebuild(bind, person, unit)
