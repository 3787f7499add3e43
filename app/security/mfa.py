"""The second factor (issue 25): TOTP (RFC 6238, pyotp) for the roles in MFA_ROLES.

- The secret is stored encrypted (Fernet: AES-128-CBC + HMAC-SHA256) with a key
  from MFA_ENCRYPTION_KEY, or derived from SECRET_KEY (HKDF-SHA256) when unset.
- A code is accepted once: the last accepted time step is kept and a code of
  that step or an earlier one is refused (replay inside its window).
- 10 recovery codes, shown once, stored as scrypt hashes, each usable once.
"""
import base64
import datetime
import io
import json
import secrets

import pyotp
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models.security import AccountSecurity
from app.security.passwords import hash_password, verify_password

DEFAULT_MFA_ROLES = ("Admin", "Bureau", "UnitAdmin", "SysAdmin", "SecAdmin", "Auditor")
RECOVERY_COUNT = 10
ISSUER = "继续教育学时管理系统"


def mfa_roles():
    return set(current_app.config.get("MFA_ROLES") or ())


def required(user):
    """The account must give a second factor (one of its roles is in MFA_ROLES)."""
    wanted = mfa_roles()
    return bool(wanted) and any(r.name in wanted for r in getattr(user, "roles", ()) or ())


def _fernet():
    key = current_app.config.get("MFA_ENCRYPTION_KEY")
    if key:
        return Fernet(key.encode() if isinstance(key, str) else key)
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"ce-mfa-secret", info=b"totp").derive(
        current_app.config["SECRET_KEY"].encode("utf-8"))
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt(secret):
    return _fernet().encrypt(secret.encode("ascii")).decode("ascii")


def decrypt(token):
    try:
        return _fernet().decrypt(token.encode("ascii")).decode("ascii")
    except InvalidToken:
        return None


def account(user_id, create=False):
    acct = db.session.get(AccountSecurity, user_id)
    if acct is None and create:
        acct = AccountSecurity(user_id=user_id, token_version=1)
        db.session.add(acct)
    return acct


def enrolled(user_id):
    return db.session.execute(
        select(AccountSecurity.mfa_enabled_at).where(AccountSecurity.user_id == user_id)
    ).scalar() is not None


def new_secret():
    return pyotp.random_base32()


def provisioning_uri(secret, username):
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_svg(uri):
    """The enrolment QR code as SVG, drawn here (segno), no outside service."""
    import segno

    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=5, border=2, xmldecl=False, svgns=True)
    return out.getvalue().decode("utf-8")


def _step_of(secret, code, at=None):
    """The time step whose code `code` is (the current one or one either side), or None."""
    code = (code or "").strip().replace(" ", "")
    if not (len(code) == 6 and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    at = at or datetime.datetime.now(datetime.timezone.utc)
    now_step = totp.timecode(at)
    for step in (now_step, now_step - 1, now_step + 1):
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def check_first_code(secret, code):
    """Enrolment: the first code proves the app holds the secret.  Returns the step or None."""
    return _step_of(secret, code)


def verify(user_id, code):
    """A TOTP code of the account, accepted once.  Returns True/False."""
    acct = account(user_id)
    if acct is None or acct.mfa_enabled_at is None or not acct.mfa_secret:
        return False
    secret = decrypt(acct.mfa_secret)
    if not secret:
        return False
    step = _step_of(secret, code)
    if step is None or (acct.mfa_last_step is not None and step <= acct.mfa_last_step):
        return False
    acct.mfa_last_step = step
    return True


def new_recovery_codes():
    """(plain codes to show once, hashes to store)."""
    codes = ["-".join(secrets.token_hex(2) for _ in range(3)) for _ in range(RECOVERY_COUNT)]
    return codes, [hash_password(c) for c in codes]


def use_recovery_code(user_id, code):
    """A recovery code, usable once.  Returns True/False."""
    acct = account(user_id)
    code = (code or "").strip().lower()
    if acct is None or not acct.recovery_codes or not code:
        return False
    hashes_ = json.loads(acct.recovery_codes)
    for i, h in enumerate(hashes_):
        if verify_password(h, code):
            del hashes_[i]
            acct.recovery_codes = json.dumps(hashes_)
            return True
    return False


def recovery_left(user_id):
    acct = account(user_id)
    return len(json.loads(acct.recovery_codes)) if acct is not None and acct.recovery_codes else 0


def enable(user_id, secret, step, recovery_hashes):
    acct = account(user_id, create=True)
    acct.mfa_secret = encrypt(secret)
    acct.mfa_enabled_at = datetime.datetime.utcnow()
    acct.mfa_last_step = step
    acct.recovery_codes = json.dumps(recovery_hashes)
    return acct


def reset(user_id):
    """Forget the account's second factor (it enrols again at the next login)."""
    acct = account(user_id)
    if acct is None:
        return False
    had = acct.mfa_enabled_at is not None
    acct.mfa_secret = acct.mfa_enabled_at = acct.mfa_last_step = acct.recovery_codes = None
    return had
