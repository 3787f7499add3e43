"""Password hashing: Argon2id (argon2-cffi), the one place every password path
uses (login, API login, changes and resets, registration, accounts created by
the CLI, the demo data, MFA recovery codes).

Argon2id with OWASP's first recommendation (m=19 MiB, t=2, p=1; config
PASSWORD_ARGON2_*) costs ~20-26 ms of CPU a check on the reference host, where
werkzeug's scrypt default (N=2^15, r=8, p=1), FAB's stock hash, costs ~90-130 ms
and is below OWASP's own scrypt minimum (N=2^17).  Why: docs/deploy-stack.md.

Hashes made before (werkzeug's `scrypt:` / `pbkdf2:` strings) still verify; a
successful login re-hashes them with Argon2id in the login's own transaction
(`needs_rehash`, `upgrade`), so existing databases move over as people sign in.
"""
import functools

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, has_app_context
from werkzeug.security import check_password_hash

# OWASP Password Storage Cheat Sheet, Argon2id, first option.
DEFAULT_TIME_COST = 2
DEFAULT_MEMORY_KIB = 19 * 1024
DEFAULT_PARALLELISM = 1

_ARGON2_PREFIX = "$argon2"


def _params():
    config = current_app.config if has_app_context() else {}
    return (
        int(config.get("PASSWORD_ARGON2_TIME_COST", DEFAULT_TIME_COST)),
        int(config.get("PASSWORD_ARGON2_MEMORY_KIB", DEFAULT_MEMORY_KIB)),
        int(config.get("PASSWORD_ARGON2_PARALLELISM", DEFAULT_PARALLELISM)),
    )


@functools.lru_cache(maxsize=4)
def _hasher(time_cost, memory_kib, parallelism):
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism,
                          hash_len=32, salt_len=16, type=Type.ID)


def hasher():
    """The PasswordHasher of the configured parameters."""
    return _hasher(*_params())


def hash_password(password):
    """The Argon2id hash (PHC string, `$argon2id$v=19$m=...`) of `password`."""
    return hasher().hash(password or "")


def verify_password(stored, password):
    """True when `password` matches the stored hash: Argon2id, or a werkzeug
    scrypt / pbkdf2 hash made before.  An empty or unknown hash never matches."""
    if not stored:
        return False
    if stored.startswith(_ARGON2_PREFIX):
        try:
            return hasher().verify(stored, password or "")
        except (VerificationError, InvalidHashError):
            return False
    try:
        return check_password_hash(stored, password or "")
    except ValueError:  # not a hash werkzeug knows
        return False


def needs_rehash(stored):
    """The stored hash is not Argon2id with the configured parameters."""
    if not stored or not stored.startswith(_ARGON2_PREFIX):
        return True
    try:
        return hasher().check_needs_rehash(stored)
    except (InvalidHashError, ValueError):
        return True


def upgrade(user, password):
    """After a successful check of `password`: store it as Argon2id with the
    current parameters if its hash is older or weaker.  Not a password change
    (the user's sessions and password history are left alone,
    app/security/sessions.py); the caller commits.  Returns True if re-hashed."""
    if not needs_rehash(user.password):
        return False
    user.password = hash_password(password)
    user._ce_password_rehashed = True
    return True


@functools.lru_cache(maxsize=4)
def _dummy_hash(time_cost, memory_kib, parallelism):
    return _hasher(time_cost, memory_kib, parallelism).hash("not a password of anyone")


def spend_like_a_check():
    """As much CPU as checking a real password: a login of an unknown account
    takes as long as one of a known account (no account enumeration by timing)."""
    verify_password(_dummy_hash(*_params()), "password")
