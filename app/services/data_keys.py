"""Rotation of the data key (personal data encrypted at rest, app/models/crypto.py)."""
import time

from flask import current_app

from app.extensions import db
from app.models.crypto import count_not_active, encrypted_columns, keyring, rotate_column


def status():
    """{"active": key id, "keys": [ids], "rows": {"table.column": {key id: rows}}}."""
    from sqlalchemy import column as sa_column, func, select, table as sa_table

    ring = keyring()
    rows = {}
    with db.engine.connect() as conn:
        for table, col, _kind in encrypted_columns(db.metadata):
            raw = sa_table(table.name, sa_column(col.name))
            kid = func.substr(raw.c[col.name], 1, func.instr(raw.c[col.name], "$") - 1) \
                if conn.dialect.name == "sqlite" else func.split_part(raw.c[col.name], "$", 1)
            counts = conn.execute(select(kid, func.count()).where(raw.c[col.name].is_not(None)).group_by(kid)).all()
            rows[f"{table.name}.{col.name}"] = dict(counts)
    return {"active": ring.active, "keys": sorted(ring.keys), "rows": rows}


def rotate(batch=2000, settle_seconds=None, echo=print):
    """Add a data key, make it the active one, and re-encrypt every encrypted column
    with it in batches while the application serves.

    Other processes read the new key from the key file when they meet a value
    written with it, and start writing with it within DATA_KEY_RELOAD_SECONDS:
    the rewrite starts after twice that time, and passes over the tables again
    until a check made that long after the last pass finds no value of an older
    key (a transaction that encrypted before the switch may commit late).  Old keys stay in the file: backups taken before the
    rotation need them.  Returns (new key id, rows rewritten)."""
    ring = keyring()
    kid = ring.add_key()
    echo(f"new active key: {kid}")
    if settle_seconds is None:
        settle_seconds = 2 * float(current_app.config.get("DATA_KEY_RELOAD_SECONDS", 5)) + 0.5
    time.sleep(settle_seconds)
    columns = encrypted_columns(db.metadata)
    total = 0
    with db.engine.connect() as conn:
        for attempt in range(10):
            for table, col, _kind in columns:
                n = rotate_column(conn, table, col, ring, batch=batch)
                total += n
                echo(f"{table.name}.{col.name}: {n} rewritten")
            # A transaction that encrypted with the old key before the switch and
            # commits late is found by a check made one settle period later.
            conn.commit()
            time.sleep(settle_seconds)
            left = sum(count_not_active(conn, table, col, ring) for table, col, _kind in columns)
            conn.commit()
            if not left:
                return kid, total
            echo(f"{left} values still under an older key; another pass")
    raise RuntimeError("values under an older key keep appearing: a process does not read the key file")
