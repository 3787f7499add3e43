"""The append-only audit trail: who did what to which row, when, from where."""
import datetime
import decimal
import enum
import json
import re

from flask import has_request_context, request
from flask_login import current_user

from app.extensions import db
from app.models import AuditLog
from app.services import audit_chain  # seals every row as it is inserted
from app.services.validators import mask_id_number, mask_phone

# Audit details never copy a personal number (等保: the log names the person, it
# does not copy the number).  A field known to hold one is masked whatever its
# form; an ID number (18 characters of a 居民身份证, 15 of an old one) or a mobile
# number written anywhere else in the text (an export's filter, a message) is
# masked as well.
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{17}[\dXx]|\d{15})(?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<![0-9A-Za-z])(1[3-9]\d{9})(?![0-9A-Za-z])")
MASKED_FIELDS = {"id_number": mask_id_number, "phone": mask_phone, "contact_phone": mask_phone,
                 "mobile": mask_phone}


def mask_personal(text):
    """`text` with every ID number and mobile number in it masked."""
    if not text:
        return text
    text = _ID_NUMBER.sub(lambda m: mask_id_number(m.group(1)), text)
    return _MOBILE.sub(lambda m: mask_phone(m.group(1)), text)


def _masked(value, key=None):
    """A detail value with the personal numbers of MASKED_FIELDS masked (nested too)."""
    if isinstance(value, dict):
        return {k: _masked(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v, key) for v in value]
    if key in MASKED_FIELDS and value not in (None, ""):
        return MASKED_FIELDS[key](value)
    return value


def detail_text(payload):
    """The stored text of an entry's detail: JSON, personal numbers masked."""
    if not payload:
        return None
    payload = _masked({k: _jsonable(v) for k, v in payload.items()})
    return mask_personal(json.dumps(payload, ensure_ascii=False, default=str))


def _jsonable(value):
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


def snapshot(obj, fields):
    """{field: value} of `obj`, JSON-ready, for the old/new parts of an entry."""
    return {f: _jsonable(getattr(obj, f, None)) for f in fields}


def client_ip():
    if not has_request_context():
        return None
    return request.remote_addr


def record(action, object_type=None, object_id=None, *, unit_id=None, region_code=None,
           old=None, new=None, user=None, **detail):
    """Add an audit entry to the current transaction (the caller commits it with
    the change it describes, so a rolled-back change leaves no entry)."""
    if user is None and has_request_context() and current_user and current_user.is_authenticated:
        user = current_user
    payload = dict(detail)
    if old is not None:
        payload["old"] = old
    if new is not None:
        payload["new"] = new
    entry = AuditLog(
        at=datetime.datetime.utcnow(),
        user_id=getattr(user, "id", None),
        username=mask_personal(getattr(user, "username", None)),  # an ID number typed as a login name
        ip=client_ip(),
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        unit_id=unit_id,
        region_code=region_code,
        detail=detail_text(payload),
    )
    db.session.add(entry)
    return entry


def insert_rows(conn, rows):
    """Audit entries written on `conn` (Core, in its transaction), for code that
    does not go through the ORM session: dicts with audit_chain.FIELDS, `detail` a
    dict (masked as in `record`).  Sealed into a chain like every other row."""
    for row in rows:
        detail = row.get("detail")
        if isinstance(detail, dict):
            row["detail"] = detail_text(detail)
        for f in audit_chain.FIELDS:
            row.setdefault(f, None)
        row["username"] = mask_personal(row["username"])
    audit_chain.seal(conn, rows)
    conn.execute(AuditLog.__table__.insert(), rows)
    return rows


def record_full_ids_shown(response_status):
    """After a request that showed whole ID numbers (validators.id_number_for_list
    noted them): one audit entry with how many and which (masked here too), the
    page and its filters; committed on its own.  Nothing for a refused request."""
    from flask import g

    seen = g.pop("_ce_full_ids", None)
    if not seen or response_status >= 400 or not has_request_context():
        return None
    user = current_user if current_user and current_user.is_authenticated else None
    entry = record("view_id_number", "Person", None, user=user, unit_id=getattr(user, "unit_id", None),
                   region_code=getattr(user, "region_code", None), path=request.path,
                   query=request.query_string.decode("utf-8", "replace")[:500], count=len(seen),
                   id_numbers=sorted(seen)[:20])
    db.session.commit()
    return entry
