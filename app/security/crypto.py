"""Keys kept outside the database and the national algorithms (密评): HMAC-SM3.

A key is 32 random bytes.  It comes, in this order, from the config value
``<NAME>`` (hex, e.g. ``AUDIT_KEY`` in the environment), or from the file
``<NAME>_FILE`` (e.g. ``AUDIT_KEY_FILE``, hex or raw bytes).  When neither is
set, the embedded default keeps it in ``<VAR_DIR>/<name>.key``: created on the
first start (mode 0600) and announced in the log, so that an operator backs it
up apart from the data (docs/deploy-security.md).  A file that is named but
missing is an error: a new key would make every existing MAC look forged.
"""
import binascii
import hmac as std_hmac
import logging
import os

from cryptography.hazmat.primitives import hashes, hmac

log = logging.getLogger(__name__)

KEY_BYTES = 32


class KeyUnavailable(RuntimeError):
    pass


def _decode(raw):
    text = raw.strip()
    try:
        key = binascii.unhexlify(text)
    except (binascii.Error, ValueError):
        key = raw if isinstance(raw, bytes) else raw.encode()
    if len(key) < 16:
        raise KeyUnavailable("key shorter than 16 bytes")
    return key


def load_key(config, name):
    """The key called `name` ("AUDIT_KEY") for an app's config dict."""
    value = config.get(name)
    if value:
        return _decode(value.encode() if isinstance(value, str) else value)
    path = config.get(name + "_FILE")
    if path:
        if not os.path.exists(path):
            raise KeyUnavailable(f"{name}_FILE {path} does not exist")
        with open(path, "rb") as f:
            return _decode(f.read())
    path = os.path.join(config["VAR_DIR"], name.lower() + ".key")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(binascii.hexlify(os.urandom(KEY_BYTES)) + b"\n")
        log.warning("%s: created a new key in %s; back it up apart from the database "
                    "(docs/deploy-security.md)", name, path)
    with open(path, "rb") as f:
        return _decode(f.read())


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
