"""Keys kept outside the database and the national algorithms (等保 2.0 三级 / 密评):
personal data encrypted at rest (SM4-GCM, HMAC-SM3 blind index) and the audit
log's HMAC-SM3 key.  One module for both key files: how they are created (mode
0600, never over an existing file, announced in the log), read, and refused.

One place for the rule "a personal identifier is stored encrypted":

* `Encrypted` is the column type of every such column (ID numbers, mobile
  numbers).  A value is stored as ``<key id>$<base64(nonce | ciphertext | tag)>``:
  SM4 in GCM mode (authenticated: a changed byte is refused, never decrypted to
  something else), a fresh 96-bit nonce per value, and the column's name as
  associated data, so a ciphertext copied into another column is refused too.
* A column that is looked up (the ID number) has a sibling *blind index*
  column: HMAC-SM3 of the value under a separate key.  Equality, IN and the
  unique constraint work on the index; `Person.id_number == "3201…"` is
  rewritten by the type's comparator into `person.id_number_bidx = <index>`,
  so every query keeps reading as it did when the number was stored in clear.
  IS [NOT] NULL applies as usual; other comparisons (LIKE, <) have no meaning on
  ciphertext and raise (ORDER BY would sort ciphertexts: no view offers it).
* The keys live in one file outside the database (`DATA_KEY_FILE`, JSON, mode
  0600): the data keys by id, the active one, and the index key.  Rotation
  (`flask ce keys rotate`, services in `rotate_column`) adds a key, makes it
  active and re-encrypts the rows in batches; old keys stay in the file (older
  backups need them), so every process reads old and new ciphertexts meanwhile.
  The index key is not rotated by that command: the unique constraint must hold
  while rows are being rewritten.
* The audit log's key (`load_key("AUDIT_KEY")`, used by services/audit_chain.py):
  32 random bytes from the config value ``AUDIT_KEY`` (hex), else the file
  ``AUDIT_KEY_FILE`` (hex or raw bytes); with neither, the embedded default keeps
  it in ``<VAR_DIR>/audit_key.key``, created on the first start.  A file that is
  named but missing is an error: a new key would make every existing MAC look
  forged.
"""
import base64
import binascii
import hmac as std_hmac
import json
import logging
import os
import secrets
import threading
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from flask import current_app, has_app_context
from sqlalchemy import String, event, type_coerce
from sqlalchemy.orm import Mapper
from sqlalchemy.sql import operators
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)

NONCE_BYTES = 12
TAG_BYTES = 16
SEPARATOR = "$"


class KeyFileError(RuntimeError):
    """A key file is missing, unreadable or malformed, or lacks the key a value was written with."""


class TamperedValue(ValueError):
    """A stored ciphertext failed its authentication tag (changed, truncated or moved)."""


def _create_key_file(path, content, what):
    """Write a new key file (mode 0600); FileExistsError if one exists (another
    process was first).  Announced: the operator must back it up apart from the data."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)
    log.warning("%s已生成：%s —— 请将此文件与数据库分开备份（docs/deploy-security.md），丢失后无法恢复", what, path)
    return path


def _new_data_key():
    return secrets.token_hex(16)  # SM4: 128-bit key


class KeyRing:
    """The keys of one key file.  `encrypt` uses the active key; `decrypt` reads the
    key id in front of the value.  The file is read again when a value names a key
    this process does not know yet, and (for writers) at most every
    `reload_seconds`, so that a rotation started by another process is followed."""

    def __init__(self, path, reload_seconds=5.0):
        self.path = path
        self.reload_seconds = reload_seconds
        self._lock = threading.Lock()
        self._checked = 0.0
        self._mtime = None
        self._load()

    # -- the file -----------------------------------------------------------------
    def _load(self):
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
            stat = os.stat(self.path)
            keys = {kid: bytes.fromhex(hexkey) for kid, hexkey in data["data_keys"].items()}
            active = data["active"]
            index_key = bytes.fromhex(data["index_key"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KeyFileError(f"cannot read the data key file {self.path}: {exc}") from exc
        if active not in keys or any(len(k) != 16 for k in keys.values()) or len(index_key) < 32:
            raise KeyFileError(f"the data key file {self.path} is malformed")
        self.keys, self.active, self.index_key = keys, active, index_key
        self._ciphers = {kid: algorithms.SM4(k) for kid, k in keys.items()}
        self._mtime = stat.st_mtime_ns
        self._checked = time.monotonic()

    def refresh(self, force=False):
        """Re-read the file if it changed (checked at most every reload_seconds)."""
        now = time.monotonic()
        if not force and now - self._checked < self.reload_seconds:
            return
        with self._lock:
            self._checked = now
            try:
                mtime = os.stat(self.path).st_mtime_ns
            except OSError:
                return
            if mtime != self._mtime:
                self._load()

    @staticmethod
    def create(path):
        """Write a new key file (fails if one exists).  Returns the path."""
        data = {"version": 1, "active": "k1", "data_keys": {"k1": _new_data_key()},
                "index_key": secrets.token_hex(32)}
        return _create_key_file(path, json.dumps(data, indent=1).encode(), "个人信息加密密钥")

    def add_key(self):
        """A new data key, made active, written to the file (atomically).  Returns its id."""
        with self._lock:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
            n = 1 + max(int(k[1:]) for k in data["data_keys"] if k[1:].isdigit())
            kid = f"k{n}"
            data["data_keys"][kid] = _new_data_key()
            data["active"] = kid
            tmp = f"{self.path}.{os.getpid()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            self._load()
        return kid

    # -- values -------------------------------------------------------------------
    def encrypt(self, plaintext, purpose):
        self.refresh()
        nonce = os.urandom(NONCE_BYTES)
        enc = Cipher(self._ciphers[self.active], modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(purpose.encode())
        body = enc.update(plaintext.encode("utf-8")) + enc.finalize()
        return self.active + SEPARATOR + base64.b64encode(nonce + body + enc.tag).decode("ascii")

    def decrypt(self, stored, purpose):
        kid, sep, b64 = stored.partition(SEPARATOR)
        if not sep:
            raise TamperedValue(f"{purpose}: not an encrypted value")
        if kid not in self._ciphers:
            self.refresh(force=True)
            if kid not in self._ciphers:
                raise KeyFileError(f"{purpose}: the value was encrypted with key {kid!r}, absent from {self.path}")
        try:
            raw = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise TamperedValue(f"{purpose}: not an encrypted value") from None
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise TamperedValue(f"{purpose}: truncated value")
        nonce, body, tag = raw[:NONCE_BYTES], raw[NONCE_BYTES:-TAG_BYTES], raw[-TAG_BYTES:]
        dec = Cipher(self._ciphers[kid], modes.GCM(nonce, tag)).decryptor()
        dec.authenticate_additional_data(purpose.encode())
        try:
            return (dec.update(body) + dec.finalize()).decode("utf-8")
        except InvalidTag:
            raise TamperedValue(f"{purpose}: the stored value was changed") from None

    def key_id(self, stored):
        return stored.partition(SEPARATOR)[0] if stored else None

    def blind_index(self, plaintext, purpose):
        """HMAC-SM3 of `plaintext` (hex): equal values give equal indexes, and nobody
        without the index key can compute or invert it."""
        return hmac_sm3(self.index_key, purpose.encode() + b"\0" + plaintext.encode("utf-8"))


def load_keyring(path, create=False, reload_seconds=5.0):
    """The KeyRing of `path`; with `create`, a missing file is created first (and logged)."""
    if create and not os.path.exists(path):
        try:
            KeyRing.create(path)
        except FileExistsError:
            pass  # another process created it first
    if not os.path.exists(path):
        raise KeyFileError(f"the data key file {path} (DATA_KEY_FILE) does not exist")
    return KeyRing(path, reload_seconds=reload_seconds)


def load_key(config, name):
    """The key called `name` ("AUDIT_KEY") of an app's config (see the module docstring)."""
    value = config.get(name)
    if value:
        return _decode_key(value.encode() if isinstance(value, str) else value)
    path = config.get(name + "_FILE")
    if path and not os.path.exists(path):
        raise KeyFileError(f"{name}_FILE {path} does not exist")
    if not path:
        path = os.path.join(config["VAR_DIR"], name.lower() + ".key")
        try:
            _create_key_file(path, binascii.hexlify(os.urandom(32)) + b"\n", f"审计日志密钥（{name}）")
        except FileExistsError:
            pass
    with open(path, "rb") as f:
        return _decode_key(f.read())


def _decode_key(raw):
    try:
        key = binascii.unhexlify(raw.strip())
    except (binascii.Error, ValueError):
        key = raw
    if len(key) < 16:
        raise KeyFileError("key shorter than 16 bytes")
    return key


_KEYED = {}  # key -> an HMAC-SM3 object keyed once; each MAC starts from a copy


def hmac_sm3(key, data):
    """HMAC-SM3 of `data` (bytes) as 64 hex characters."""
    base = _KEYED.get(key)
    if base is None:
        base = _KEYED[key] = hmac.HMAC(key, hashes.SM3())
    h = base.copy()
    h.update(data)
    return h.finalize().hex()


def same(a, b):
    return std_hmac.compare_digest(a or "", b or "")


def init_app(app):
    """Load the key ring of the app (`DATA_KEY_FILE`); the embedded default
    (`DATA_KEY_CREATE`) creates the file on first start."""
    ring = load_keyring(app.config["DATA_KEY_FILE"], create=app.config.get("DATA_KEY_CREATE", False),
                        reload_seconds=float(app.config.get("DATA_KEY_RELOAD_SECONDS", 5)))
    app.extensions["data_keys"] = ring
    return ring


def keyring():
    """The current app's KeyRing."""
    if not has_app_context():
        raise KeyFileError("personal data can only be read or written inside the application context")
    return current_app.extensions["data_keys"]


def blind_index(value, purpose):
    return None if value is None else keyring().blind_index(str(value), purpose)


class Encrypted(TypeDecorator):
    """A text column stored encrypted (see the module docstring).  `purpose` names
    the column ("person.id_number"): it is the associated data of the ciphertext
    and the blind index's domain.  `index`: the name of the sibling blind-index
    column, for columns that are looked up."""

    impl = String
    cache_ok = True

    def __init__(self, length, purpose, index=None):
        super().__init__(length)
        self.purpose = purpose
        self.index = index

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        return keyring().encrypt(str(value), self.purpose)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return keyring().decrypt(value, self.purpose)

    class Comparator(TypeDecorator.Comparator):
        def operate(self, op, *other, **kwargs):
            kind = self.type
            if op in (operators.is_, operators.is_not):  # NULL or not: the stored value says it
                return super().operate(op, *other, **kwargs)
            if kind.index and op in (operators.eq, operators.ne, operators.in_op, operators.not_in_op):
                index_col = self.expr.table.c[kind.index]
                if other[0] is None:
                    return index_col.is_(None) if op is operators.eq else index_col.is_not(None)
                # The values are indexed when the statement is executed (BlindIndex's
                # bind processor), so an expression can be built anywhere and cached.
                return op(type_coerce(index_col, BlindIndex(kind.purpose)), other[0], **kwargs)
            raise NotImplementedError(
                f"{kind.purpose} is stored encrypted: only ==, !=, IN and NOT IN (through its blind index) apply"
            )

        def reverse_operate(self, op, other, **kwargs):
            return self.operate(op, other, **kwargs)

    comparator_factory = Comparator


class BlindIndex(TypeDecorator):
    """A value compared with a blind-index column: bound as its HMAC-SM3 index."""

    impl = String
    cache_ok = True

    def __init__(self, purpose):
        super().__init__()
        self.purpose = purpose

    def process_bind_param(self, value, dialect):
        return blind_index(value, self.purpose)


def index_default(column_name, purpose):
    """A column default computing the blind index from the row's `column_name`
    (for inserts that set only the value, e.g. the importer's bulk INSERT)."""

    def default(context):
        return blind_index(context.get_current_parameters().get(column_name), purpose)

    return default


def encrypted_columns(metadata):
    """[(table, column, Encrypted type)] of every encrypted column in `metadata`."""
    return [(t, c, c.type) for t in metadata.sorted_tables for c in t.columns if isinstance(c.type, Encrypted)]


@event.listens_for(Mapper, "mapper_configured")
def _keep_index_in_step(mapper, cls):
    """Setting an indexed encrypted attribute sets its blind index too (ORM writes)."""
    for prop in mapper.column_attrs:
        col = prop.columns[0]
        kind = getattr(col, "type", None)
        if isinstance(kind, Encrypted) and kind.index:
            index_attr = mapper.get_property_by_column(col.table.c[kind.index]).key

            def on_set(target, value, oldvalue, initiator, _attr=index_attr, _purpose=kind.purpose):
                setattr(target, _attr, blind_index(value, _purpose))

            event.listen(getattr(cls, prop.key), "set", on_set)


# -- rotation -------------------------------------------------------------------------
def rotate_column(connection, table, column, ring, batch=2000, pause=0.0):
    """Re-encrypt every value of `column` not written with the active key, in
    batches by primary key; each row is rewritten only if it still holds the value
    read (a concurrent writer wins, and has written with a current key anyway).
    Commits after each batch.  Returns the number of rows rewritten."""
    from sqlalchemy import and_, bindparam, column as sa_column, select, table as sa_table, update

    purpose = column.type.purpose
    raw = sa_table(table.name, sa_column("id"), sa_column(column.name))
    prefix = ring.active + SEPARATOR
    last, done = 0, 0
    while True:
        rows = connection.execute(
            select(raw.c.id, raw.c[column.name]).where(raw.c.id > last).order_by(raw.c.id).limit(batch)
        ).all()
        if not rows:
            return done
        last = rows[-1][0]
        changes = [{"pk": pk, "old": value, "new": ring.encrypt(ring.decrypt(value, purpose), purpose)}
                   for pk, value in rows if value is not None and not value.startswith(prefix)]
        if changes:
            stmt = (update(raw).where(and_(raw.c.id == bindparam("pk"), raw.c[column.name] == bindparam("old")))
                    .values({column.name: bindparam("new")}))
            connection.execute(stmt, changes)
            done += len(changes)
        connection.commit()
        if pause:
            time.sleep(pause)


def count_not_active(connection, table, column, ring):
    """Rows of `column` whose value was written with a key other than the active one."""
    from sqlalchemy import column as sa_column, func, select, table as sa_table

    raw = sa_table(table.name, sa_column(column.name))
    return connection.execute(
        select(func.count()).select_from(raw).where(raw.c[column.name].is_not(None),
                                                    ~raw.c[column.name].startswith(ring.active + SEPARATOR,
                                                                                   autoescape=True))
    ).scalar()
