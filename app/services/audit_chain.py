"""Tamper evidence for the audit log: HMAC-SM3 chains, their check, the archive.

Every audit row, as it is inserted, gets a place in one of several chains
(``chain_id``, ``seq``) and ``mac`` = HMAC-SM3(key, previous MAC of the chain +
the row's content).  The key is outside the database (AUDIT_KEY / AUDIT_KEY_FILE,
app/models/crypto.py), so whoever can write SQL but not read the key cannot
change, remove or add a row without `ce audit verify` naming it; database
triggers (migration i26a0001) refuse UPDATE, DELETE and TRUNCATE besides.

Chains are writer shards, not regions.  The head of each chain (audit_chain)
is a row a writer holds from its first audit row until it commits.  A writer
takes a head no other open transaction holds (PostgreSQL: FOR UPDATE SKIP
LOCKED, preferring the chain it used last), so writers never wait for each
other unless all AUDIT_CHAINS heads (16, made by the migration) are held at
once.  A chain per region would still make an import and the approvals of the
same city wait for each other, and a province user writes for every region.
On SQLite there is one writer at a time anyway.

Order across chains is by time (``at``); inside a chain it is ``seq``.
"""
import datetime
import json
import os
import random

from cryptography.hazmat.primitives import hashes
from flask import current_app
from sqlalchemy import event, select, text

from app.extensions import db
from app.models import AuditArchive, AuditChain, AuditLog
from app.models.crypto import hmac_sm3, load_key, same

FIELDS = ("at", "user_id", "username", "ip", "action", "object_type", "object_id",
          "unit_id", "region_code", "detail")
MIN_KEEP_DAYS = 180


def init_app(app):
    """At start: refuse AUDIT_KEEP_DAYS below 180 and load (or, embedded, create) the key."""
    with app.app_context():
        keep_days()
        audit_key()


def audit_key():
    ext = current_app.extensions
    if "ce_audit_key" not in ext:
        ext["ce_audit_key"] = load_key(current_app.config, "AUDIT_KEY")
    return ext["ce_audit_key"]


def _norm(name, value):
    if value is None:
        return None
    if name == "at":
        if isinstance(value, str):
            value = datetime.datetime.fromisoformat(value)
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    if name in ("user_id", "unit_id"):
        return int(value)
    return str(value)


def row_mac(key, chain_id, seq, prev_mac, row):
    """The MAC of one row (a mapping with FIELDS) after `prev_mac` in its chain."""
    body = [chain_id, seq, prev_mac] + [_norm(f, row.get(f)) for f in FIELDS]
    return hmac_sm3(key, json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())


# ---------------------------------------------------------------- writing


def _take_head(conn):
    """(chain_id, seq, mac) of a chain head this transaction now holds."""
    pref = conn.info.get("ce_audit_chain")
    if conn.dialect.name == "postgresql":
        row = conn.execute(text(
            "SELECT chain_id, seq, mac FROM audit_chain "
            "ORDER BY (chain_id = :pref) DESC, random() LIMIT 1 FOR UPDATE SKIP LOCKED"),
            {"pref": -1 if pref is None else pref}).first()
        if row is None:  # every head held by an open transaction: wait for one
            row = conn.execute(text(
                "SELECT chain_id, seq, mac FROM audit_chain ORDER BY chain_id "
                "OFFSET :n LIMIT 1 FOR UPDATE"), {"n": random.randrange(
                    conn.execute(text("SELECT count(*) FROM audit_chain")).scalar())}).first()
    else:
        if pref is None:
            ids = conn.execute(text("SELECT chain_id FROM audit_chain")).scalars().all()
            pref = random.choice(ids)
        # The UPDATE takes SQLite's write lock before the head is read.
        conn.execute(text("UPDATE audit_chain SET seq = seq WHERE chain_id = :c"), {"c": pref})
        row = conn.execute(text("SELECT chain_id, seq, mac FROM audit_chain WHERE chain_id = :c"),
                           {"c": pref}).first()
    if row is None:
        raise RuntimeError("audit_chain has no heads: run the migrations (flask db upgrade)")
    conn.info["ce_audit_chain"] = row[0]
    return row[0], row[1], row[2]


def seal(conn, rows):
    """Give each row (dicts with FIELDS, about to be inserted on `conn`) its
    chain_id, seq and mac; advances the chain head in the same transaction."""
    if not rows:
        return rows
    key = audit_key()
    chain_id, seq, mac = _take_head(conn)
    for row in rows:
        if row.get("at") is None:
            row["at"] = datetime.datetime.utcnow()
        seq += 1
        mac = row_mac(key, chain_id, seq, mac, row)
        row.update(chain_id=chain_id, seq=seq, mac=mac)
    conn.execute(text("UPDATE audit_chain SET seq = :s, mac = :m WHERE chain_id = :c"),
                 {"s": seq, "m": mac, "c": chain_id})
    return rows


@event.listens_for(AuditLog, "before_insert")
def _seal_orm_row(mapper, connection, target):
    row = {f: getattr(target, f) for f in FIELDS}
    seal(connection, [row])
    for f in ("at", "chain_id", "seq", "mac"):
        setattr(target, f, row[f])


# ---------------------------------------------------------------- checking


class Finding:
    def __init__(self, kind, chain_id, seq, row_id, message):
        self.kind, self.chain_id, self.seq, self.row_id, self.message = kind, chain_id, seq, row_id, message

    def __str__(self):
        return self.message


def _anchors(conn, key):
    """{chain_id: (through_seq, mac)} of the latest archive anchor per chain;
    a forged anchor is a finding."""
    anchors, findings = {}, []
    for a in conn.execute(select(AuditArchive).order_by(AuditArchive.id)).mappings():
        if not same(a["seal"], anchor_seal(key, a)):
            findings.append(Finding("anchor", a["chain_id"], a["through_seq"], None,
                                    f"archive anchor {a['id']} (chain {a['chain_id']}) was changed or forged"))
            continue
        if a["through_seq"] > anchors.get(a["chain_id"], (0, ""))[0]:
            anchors[a["chain_id"]] = (a["through_seq"], a["mac"])
    return anchors, findings


def anchor_seal(key, a):
    body = [a["chain_id"], a["through_seq"], a["mac"], _norm("at", a["archived_at"]),
            a["file_name"], a["file_digest"], a["rows"]]
    return hmac_sm3(key, json.dumps(body, separators=(",", ":")).encode())


def verify(conn=None, batch=5000):
    """Check every chain; returns (rows checked, [Finding]) with the first
    problem of each chain (a later row of a broken chain cannot be judged)."""
    conn = conn or db.session.connection()
    key = audit_key()
    anchors, findings = _anchors(conn, key)
    t = AuditLog.__table__
    heads = {r[0]: (r[1], r[2]) for r in conn.execute(text("SELECT chain_id, seq, mac FROM audit_chain"))}
    checked = 0
    chains = set(heads) | set(conn.execute(select(t.c.chain_id).where(t.c.chain_id.isnot(None)).distinct()).scalars())
    for chain_id in sorted(chains):
        seq, mac = anchors.get(chain_id, (0, ""))
        broken = None
        last_id = None
        while broken is None:
            rows = conn.execute(select(t).where(t.c.chain_id == chain_id, t.c.seq > seq)
                                .order_by(t.c.seq).limit(batch)).mappings().all()
            if not rows:
                break
            for r in rows:
                checked += 1
                if r["seq"] != seq + 1:
                    after = f"after row {last_id}" if last_id else "at the start"
                    broken = Finding("removed", chain_id, seq + 1, None,
                                     f"chain {chain_id}: row(s) seq {seq + 1}..{r['seq'] - 1} removed "
                                     f"({after}, before row {r['id']})")
                    break
                if not same(r["mac"], row_mac(key, chain_id, r["seq"], mac, r)):
                    broken = Finding("changed", chain_id, r["seq"], r["id"],
                                     f"chain {chain_id}: row {r['id']} (seq {r['seq']}) was changed or inserted")
                    break
                seq, mac, last_id = r["seq"], r["mac"], r["id"]
        if broken is None and chain_id in heads:
            hseq, hmac_ = heads[chain_id]
            if hseq > seq:
                after = f"after row {last_id}" if last_id else "at the start"
                broken = Finding("removed", chain_id, seq + 1, None,
                                 f"chain {chain_id}: last row(s) seq {seq + 1}..{hseq} removed ({after})")
            elif hseq < seq or not same(hmac_, mac):
                broken = Finding("head", chain_id, hseq, None,
                                 f"chain {chain_id}: head (seq {hseq}) does not match its last row")
        if chain_id not in heads:
            broken = broken or Finding("inserted", chain_id, None, None, f"chain {chain_id} has no head")
        if broken:
            findings.append(broken)
    # Rows outside every chain: written before chaining began (legacy, only
    # counted) or inserted behind the app's back (after the first chained row).
    first = conn.execute(select(t.c.id).where(t.c.chain_id.isnot(None)).order_by(t.c.id).limit(1)).scalar()
    if first is not None:
        for r in conn.execute(select(t.c.id).where(t.c.mac.is_(None) | t.c.chain_id.is_(None),
                                                   t.c.id > first).order_by(t.c.id).limit(10)).scalars():
            findings.append(Finding("inserted", None, None, r, f"row {r} is in no chain (inserted)"))
    return checked, findings


# ---------------------------------------------------------------- archive


def keep_days():
    days = int(current_app.config.get("AUDIT_KEEP_DAYS", MIN_KEEP_DAYS))
    if days < MIN_KEEP_DAYS:
        raise ValueError(f"AUDIT_KEEP_DAYS={days}: audit rows are kept at least {MIN_KEEP_DAYS} days")
    return days


def archive(out_dir, now=None):
    """Move the rows older than AUDIT_KEEP_DAYS into a sealed file in `out_dir`
    (JSON lines; the last line is the HMAC-SM3 seal of all before it), then,
    in one transaction, record an anchor per chain and delete them.  The chains
    must verify first.  Returns (file path or None, rows archived)."""
    key = audit_key()
    now = now or datetime.datetime.utcnow()
    cutoff = now - datetime.timedelta(days=keep_days())
    conn = db.session.connection()
    checked, findings = verify(conn)
    if findings:
        raise RuntimeError("audit chains do not verify; nothing archived: " + "; ".join(map(str, findings)))
    t = AuditLog.__table__
    anchors, _f = _anchors(conn, key)
    plan = {}  # chain -> through_seq: the chain's rows up to its first row not older than the cutoff
    for chain_id in conn.execute(select(t.c.chain_id).where(t.c.chain_id.isnot(None)).distinct()).scalars():
        newer = conn.execute(select(t.c.seq).where(t.c.chain_id == chain_id, t.c.at >= cutoff)
                             .order_by(t.c.seq).limit(1)).scalar()
        through = (newer - 1) if newer is not None else conn.execute(
            select(t.c.seq).where(t.c.chain_id == chain_id).order_by(t.c.seq.desc()).limit(1)).scalar()
        if through > anchors.get(chain_id, (0, ""))[0]:
            plan[chain_id] = through
    if not plan:
        db.session.rollback()
        return None, 0
    os.makedirs(out_dir, exist_ok=True)
    name = f"audit-{now:%Y%m%dT%H%M%S}.jsonl"
    path = os.path.join(out_dir, name)
    tmp = path + ".part"
    count, last_mac = 0, {}
    digest = hashes.Hash(hashes.SM3())
    with open(tmp, "wb") as f:
        for chain_id, through in sorted(plan.items()):
            for r in conn.execute(select(t).where(t.c.chain_id == chain_id, t.c.seq <= through)
                                  .order_by(t.c.seq)).mappings():
                line = (json.dumps({k: _norm("at", v) if k == "at" else v for k, v in r.items()},
                                   ensure_ascii=False, separators=(",", ":")) + "\n").encode()
                f.write(line)
                digest.update(line)
                count += 1
                last_mac[chain_id] = r["mac"]
        file_digest = digest.finalize().hex()
        f.write((json.dumps({"seal": hmac_sm3(key, file_digest.encode()), "sm3": file_digest,
                             "rows": count}) + "\n").encode())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    os.chmod(path, 0o440)
    for chain_id, through in sorted(plan.items()):
        a = {"chain_id": chain_id, "through_seq": through, "mac": last_mac[chain_id],
             "archived_at": now, "file_name": name, "file_digest": file_digest, "rows": count}
        a["seal"] = anchor_seal(key, a)
        conn.execute(AuditArchive.__table__.insert(), a)
        conn.execute(t.delete().where(t.c.chain_id == chain_id, t.c.seq <= through))
    db.session.commit()
    return path, count


def check_archive_file(path):
    """True when the sealed file is whole: its lines hash to the SM3 in the seal
    line and the seal is the key's HMAC of it."""
    key = audit_key()
    with open(path, "rb") as f:
        lines = f.readlines()
    if not lines:
        return False
    seal_line = json.loads(lines[-1])
    digest = hashes.Hash(hashes.SM3())
    for line in lines[:-1]:
        digest.update(line)
    sm3 = digest.finalize().hex()
    return sm3 == seal_line.get("sm3") and same(seal_line.get("seal"), hmac_sm3(key, sm3.encode()))
