"""Reference data: Jiangsu's administrative divisions (GB/T 2260).

app/data/regions_jiangsu.csv holds the province, its 13 cities and their
current county-level divisions (derived from python-stdnum's GB/T 2260 table,
abolished codes left out)."""
import csv
import os

from app.extensions import db
from app.models import Region

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "regions_jiangsu.csv")


def load_regions():
    """Insert missing regions and rename changed ones; returns how many were added."""
    with open(DATA, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    existing = {r.code: r for r in db.session.query(Region).all()}
    added = 0
    # Parents first: the file lists the province, then each city before its districts.
    for row in rows:
        region = existing.get(row["code"])
        if region is None:
            db.session.add(Region(code=row["code"], name=row["name"], parent_code=row["parent"] or None))
            db.session.flush()
            added += 1
        elif region.name != row["name"]:
            region.name = row["name"]
    db.session.commit()
    return added
