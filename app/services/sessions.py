"""Sessions and the second factor as the users and the security administrator
use them (issue 25): 我的会话, ending sessions, enrolment, the code at login,
resets.  Every change is audited in the transaction that makes it."""
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select

from app.extensions import db
from app.models import CEUser, Unit
from app.security import mfa
from app.security import sessions as S
from app.services import audit
from app.services.errors import OutOfScope, ValidationFailed


def _place(user):
    unit = getattr(user, "unit", None)
    return {"unit_id": user.unit_id, "region_code": unit.region_code if unit else user.region_code}


TIMEOUT_NAMES = {"idle": "idle", "max": "absolute"}


def record_timeouts(conn, sessions):
    """Receiver of security.sessions.session_timed_out: one audit entry
    `session_timeout` (登录超时) per session, in the transaction that ended it:
    who (the account), when (`at`: when it was ended; `expired_at`: when it
    lapsed), from where (`ip`: the session's address; `seen_from`: the request
    that presented it after the limit), what (`timeout`: idle / absolute) and the
    outcome (the session ended: the user must sign in again)."""
    ids = sorted({s.user_id for s in sessions})
    users = {u.id: u for u in conn.execute(
        select(CEUser.id, CEUser.username, CEUser.unit_id, func.coalesce(Unit.region_code, CEUser.region_code)
               .label("region")).outerjoin(Unit, Unit.id == CEUser.unit_id).where(CEUser.id.in_(ids)))}
    rows = []
    for s in sessions:
        u = users.get(s.user_id)
        rows.append({
            "at": s.ended_at, "user_id": s.user_id, "username": u.username if u else None, "ip": s.ip,
            "action": "session_timeout", "object_type": "CEUser", "object_id": str(s.user_id),
            "unit_id": u.unit_id if u else None, "region_code": u.region if u else None,
            "detail": {"event": "登录超时", "timeout": TIMEOUT_NAMES.get(s.reason, s.reason),
                       "outcome": "session_ended", "session": s.row_id, "started": s.started,
                       "last_activity": s.last_seen, "expired_at": s.expired_at, "found_by": s.found_by,
                       "seen_from": s.seen_from},
        })
    audit.insert_rows(conn, rows)


def init_app(app):
    """Audit the sessions that end by timeout (the security layer announces them)."""
    S.session_timed_out.connect(record_timeouts)


def my_sessions(user):
    """The user's live sessions (start, last activity, address, browser), the current one marked."""
    current = S.current_row_id()
    return [
        {"id": r.id, "started": r.authenticated_at or r.created_at, "last_seen": r.last_seen, "ip": r.ip,
         "browser": r.user_agent, "current": r.id == current}
        for r in S.live_sessions(user.id)
    ]


def end_my_session(user, row_id):
    """The user ends one of its own sessions.  Raises OutOfScope if it is not a live one of theirs."""
    if not S.end_session(row_id, "revoked", user_id=user.id):
        raise OutOfScope(_("会话不存在或已结束"))
    audit.record("end_session", "UserSession", row_id, user=user, **_place(user))
    db.session.commit()


def _target(user_id):
    user = db.session.get(CEUser, user_id)
    if user is None:
        raise OutOfScope(_("账号不存在"))
    return user


def find_user(username):
    username = (username or "").strip()
    if not username:
        return None
    return db.session.execute(
        select(CEUser).where(func.lower(CEUser.username) == username.lower())
    ).scalar_one_or_none()


def end_all_sessions(actor, user_id):
    """The security administrator ends every session (and API token) of an account.
    Returns how many browser sessions ended."""
    user = _target(user_id)
    n = S.end_user_sessions(user.id, "revoked")
    audit.record("end_all_sessions", "CEUser", user.id, user=actor, username_target=user.username,
                 ended=n, **_place(user))
    db.session.commit()
    return n


def reset_second_factor(actor, user_id):
    """The security administrator resets an account's second factor: the account
    enrols again at its next login; its sessions end."""
    user = _target(user_id)
    had = mfa.reset(user.id)
    S.end_user_sessions(user.id, "mfa_reset")
    audit.record("reset_mfa", "CEUser", user.id, user=actor, username_target=user.username,
                 was_enrolled=had, **_place(user))
    db.session.commit()
    return had


def _failed_code(user, what):
    """A wrong code counts as a failed login of the account."""
    user = db.session.get(CEUser, user.id)
    user.fail_login_count = (user.fail_login_count or 0) + 1
    audit.record("login_failed", "CEUser", user.id, user=user, reason=what, **_place(user))
    db.session.commit()
    return user.fail_login_count


def too_many_failures(user):
    limit = current_app.config.get("MFA_MAX_FAILURES", 5)
    return (db.session.get(CEUser, user.id).fail_login_count or 0) >= limit


def confirm_enrolment(user, secret, code):
    """The first code proves the authenticator holds `secret`: the second factor
    is on.  Returns the 10 recovery codes (to show once).  Raises ValidationFailed."""
    step = mfa.check_first_code(secret, code)
    if step is None:
        _failed_code(user, "mfa_enrol")
        raise ValidationFailed(_("动态口令不正确，请核对手机时间后重新输入"))
    codes, hashes = mfa.new_recovery_codes()
    mfa.enable(user.id, secret, step, hashes)
    audit.record("enable_mfa", "CEUser", user.id, user=user, **_place(user))
    db.session.commit()
    return codes


def second_factor(user, code=None, recovery_code=None):
    """The code given after the password (or a recovery code).  Raises ValidationFailed."""
    if recovery_code:
        ok = mfa.use_recovery_code(user.id, recovery_code)
        what = "mfa_recovery"
    else:
        ok = mfa.verify(user.id, code)
        what = "mfa"
    if not ok:
        db.session.rollback()
        _failed_code(user, what)
        raise ValidationFailed(_("动态口令不正确或已使用过") if what == "mfa" else _("恢复码不正确或已使用过"))
    u = db.session.get(CEUser, user.id)
    u.fail_login_count = 0
    audit.record("mfa_passed", "CEUser", user.id, user=user, method=what, **_place(user))
    db.session.commit()


def account_status(user):
    """For the security administrator's page: live sessions and second-factor state."""
    return {
        "sessions": S.live_sessions(user.id),
        "mfa_enrolled": mfa.enrolled(user.id),
        "mfa_required": mfa.required(user),
        "recovery_left": mfa.recovery_left(user.id),
    }


def live_session_count(user_id):
    return len(S.live_sessions(user_id))


def login_notice(user):
    """鉴别警示 for the home page: the previous successful login (time, address)
    and the failed attempts on the account since then, or None on a first login."""
    import datetime

    from flask import session

    from app.models import AuditLog

    prev = session.get(S.PREV_LOGIN_KEY) if session else None
    if not prev:
        return None
    at = datetime.datetime.fromisoformat(prev["at"])
    failed = db.session.execute(
        select(func.count()).select_from(AuditLog).where(
            AuditLog.object_type == "CEUser", AuditLog.object_id == str(user.id),
            AuditLog.action == "login_failed", AuditLog.at > at)
    ).scalar()
    return {"at": at, "ip": prev["ip"], "failed": failed}
