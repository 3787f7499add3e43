"""Server-side sessions (issue 25, 等保 2.0 三级: 登录连接超时自动退出, 会话可终止).

The cookie carries only a random id (32 bytes, URL-safe); the session's data and
state live in the `ce_session` table (the database, so that losing Redis logs
nobody out), found by the id's SHA-256.  On every request the record must be
live: not ended (logout, password change, account disabled, roles changed, ended
by the user or the security administrator), not idle for SESSION_IDLE_MINUTES,
not older than SESSION_MAX_HOURS since the login.  Otherwise the request runs
as anonymous and the login page says why.

- The id is rotated at login (no session fixation) and after the user's own
  password change (the other sessions end).
- Account changes end sessions where they happen, whatever code path made them:
  a `before_flush` listener sees a CEUser whose password, roles or `active` flag
  changed and ends that user's sessions in the same transaction, and bumps the
  account's API token version (JWTs carry it as `ce_ver`, checked on each call).
- Writes go through their own short connection after the view (the view's
  transaction is the view's business); a GET that changes nothing writes only
  when the last-activity mark is more than TOUCH_SECONDS old.

A signed-in session that ends by idle or absolute timeout is announced once
(`session_timed_out`, in the transaction that marks it ended, so two requests
finding the same lapsed session announce it once): when a request presents it,
or when `end_expired` (`flask ce sessions sweep`, cron) finds it first.  The
audit entry is written by the service layer's receiver (app/services/sessions.py).

Tests move the clock with `monkeypatch.setattr(sessions, "utcnow", ...)`.
"""
import datetime
import hashlib
import json
import secrets

from blinker import Namespace
from flask import current_app, flash, g, has_request_context, jsonify, redirect, request, session, url_for
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SessionInterface, SessionMixin
from flask_babel import gettext as _
from sqlalchemy import delete, event, func, insert, inspect, or_, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.datastructures import CallbackDict

from app.extensions import db
from app.models.security import AccountSecurity, UserSession
from app.models.user import CEUser
from app.security.passwords import verify_password

TOUCH_SECONDS = 60
DB_ERRORS = (OperationalError, InterfaceError, PoolTimeout)
_serializer = TaggedJSONSerializer()
REASON_KEY = "_ce_reason"
MFA_KEY = "_ce_mfa"  # "pending" until the second factor is given

# sender: the Connection whose transaction ends the sessions; `sessions`: [TimedOut].
session_timed_out = Namespace().signal("ce-session-timed-out")


def utcnow():
    return datetime.datetime.utcnow()


def sid_hash(sid):
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


def reason_message(reason):
    """The login page's Chinese explanation of why a session ended."""
    cfg = current_app.config
    messages = {
        "idle": _("您已连续 %(minutes)s 分钟未操作，系统已自动退出，请重新登录。",
                  minutes=cfg.get("SESSION_IDLE_MINUTES", 30)),
        "max": _("本次登录已超过 %(hours)s 小时，系统已自动退出，请重新登录。",
                 hours=f'{float(cfg.get("SESSION_MAX_HOURS", 12)):g}'),
        "password": _("账号密码已修改，此会话已结束，请使用新密码重新登录。"),
        "disabled": _("账号已被停用，会话已结束。如有疑问请联系安全管理员。"),
        "roles": _("账号的角色已变更，会话已结束，请重新登录。"),
        "revoked": _("此会话已被结束（由您本人在“我的会话”中或由安全管理员操作），请重新登录。"),
        "mfa_reset": _("账号的动态口令已被重置，会话已结束，请重新登录。"),
    }
    return messages.get(reason)


class ServerSession(CallbackDict, SessionMixin):
    def __init__(self, initial=None, sid=None, row_id=None, user_id=None, last_seen=None):
        def on_update(self):
            self.modified = True
            self.accessed = True

        super().__init__(initial, on_update)
        self.sid = sid
        self.row_id = row_id
        self.user_id = user_id
        self.last_seen = last_seen
        self.modified = False
        self.rotate = None  # None / "login" / "reissue"
        self.ended = None  # reason: the current record ends at save
        self.skipped = False

    @property
    def new(self):
        return self.row_id is None


def _user_id(data):
    try:
        return int(data.get("_user_id")) if data.get("_user_id") is not None else None
    except (TypeError, ValueError):
        return None


def _expired_reason(row, now):
    cfg = current_app.config
    idle = datetime.timedelta(minutes=cfg.get("SESSION_IDLE_MINUTES", 30))
    lifetime = datetime.timedelta(hours=cfg.get("SESSION_MAX_HOURS", 12))
    if row.user_id is None:
        # Before login (CSRF token, language): kept while the page may be open.
        return "idle" if now - row.last_seen > lifetime else None
    if now - row.last_seen > idle:
        return "idle"
    if now - (row.authenticated_at or row.created_at) > lifetime:
        return "max"
    return None


_COLS = (UserSession.id, UserSession.user_id, UserSession.created_at, UserSession.authenticated_at,
         UserSession.last_seen, UserSession.ended_at, UserSession.end_reason, UserSession.ip)


class TimedOut:
    """A signed-in session that ended by timeout: `reason` "idle" or "max" (absolute),
    `expired_at` the moment it lapsed, `found_by` "request" or "sweep", `seen_from`
    the address of the request that presented it (None for the sweep)."""

    def __init__(self, row, reason, now, found_by, seen_from=None):
        cfg = current_app.config
        self.row_id, self.user_id, self.ip = row.id, row.user_id, row.ip
        self.started = row.authenticated_at or row.created_at
        self.last_seen, self.reason, self.ended_at = row.last_seen, reason, now
        if reason == "idle":
            self.expired_at = row.last_seen + datetime.timedelta(minutes=cfg.get("SESSION_IDLE_MINUTES", 30))
        else:
            self.expired_at = self.started + datetime.timedelta(hours=cfg.get("SESSION_MAX_HOURS", 12))
        self.found_by, self.seen_from = found_by, seen_from


def _time_out(conn, rows, now, found_by, seen_from=None):
    """End each (row, reason) still live, in `conn`'s transaction; announce the
    signed-in ones this call ended (a session another process ended first is not
    announced again).  Returns how many ended."""
    ended = []
    for row, reason in rows:
        n = conn.execute(update(UserSession).where(UserSession.id == row.id, UserSession.ended_at.is_(None))
                         .values(ended_at=now, end_reason=reason)).rowcount
        if n and row.user_id is not None:
            ended.append(TimedOut(row, reason, now, found_by, seen_from))
    if ended:
        session_timed_out.send(conn, sessions=ended)
    return len(ended)


def end_expired(now=None):
    """End every signed-in session past its idle or absolute limit that no request
    has presented since (each announced once, as at a request).  Returns the count."""
    now = now or utcnow()
    cfg = current_app.config
    idle = datetime.timedelta(minutes=cfg.get("SESSION_IDLE_MINUTES", 30))
    lifetime = datetime.timedelta(hours=cfg.get("SESSION_MAX_HOURS", 12))
    with db.engine.begin() as conn:
        rows = conn.execute(select(*_COLS).where(
            UserSession.user_id.is_not(None), UserSession.ended_at.is_(None),
            or_(UserSession.last_seen < now - idle,
                func.coalesce(UserSession.authenticated_at, UserSession.created_at) < now - lifetime),
        ).order_by(UserSession.id)).all()
        return _time_out(conn, [(r, _expired_reason(r, now)) for r in rows], now, "sweep")


def _client():
    ua = (request.user_agent.string or "")[:300] if has_request_context() else None
    return (request.remote_addr if has_request_context() else None), ua


class DbSessionInterface(SessionInterface):
    serializer = _serializer

    def _skip(self, app, req):
        return (req.path.startswith((app.static_url_path or "/static") + "/") or req.path.startswith("/static/")
                or req.path == "/health")  # the proxy's check answers without the database (app/web.py)

    def open_session(self, app, req):
        if self._skip(app, req):
            s = ServerSession()
            s.skipped = True
            return s
        try:
            return self._open(app, req)
        except DB_ERRORS as exc:
            # The database did not answer: no session this request; the gate raises
            # the error inside the request, where app/web.py answers 503.
            s = ServerSession()
            s.skipped = True
            s.db_error = exc
            return s

    def _open(self, app, req):
        sid = req.cookies.get(self.get_cookie_name(app))
        if not sid or len(sid) > 128:
            return ServerSession()
        with db.engine.connect() as conn:
            row = conn.execute(select(*_COLS, UserSession.data).where(UserSession.sid_hash == sid_hash(sid))).first()
        if row is None:
            return ServerSession()
        now = utcnow()
        reason = row.end_reason or "revoked" if row.ended_at is not None else _expired_reason(row, now)
        if reason is None:
            try:
                data = self.serializer.loads(row.data) if row.data else {}
            except (ValueError, TypeError):
                data = {}
            sess = ServerSession(data, sid=sid, row_id=row.id, user_id=row.user_id, last_seen=row.last_seen)
            sess.raw = row.data  # a write that changes nothing is skipped (save)
            return sess
        if row.ended_at is None:
            if row.user_id is None:
                _end_rows([UserSession.id == row.id], reason)
            else:
                with db.engine.begin() as conn:
                    _time_out(conn, [(row, reason)], now, "request", seen_from=req.remote_addr)
        fresh = ServerSession()
        if row.user_id is not None and reason != "logout":
            fresh[REASON_KEY] = reason
        return fresh

    def save_session(self, app, sess, response):
        if getattr(sess, "skipped", False):
            return
        try:
            self._save(app, sess, response)
        except DB_ERRORS as exc:  # the database went away during the request: nothing to keep
            current_app.logger.warning("session not saved, database unavailable: %s", str(exc).splitlines()[0][:200])

    def _save(self, app, sess, response):
        name = self.get_cookie_name(app)
        domain, path = self.get_cookie_domain(app), self.get_cookie_path(app)
        now = utcnow()
        if sess.ended and sess.row_id is not None:
            _end_rows([UserSession.id == sess.row_id], sess.ended)
            sess.row_id, sess.sid, sess.rotate = None, None, None
        if not sess:
            if sess.row_id is not None:
                with db.engine.begin() as conn:
                    conn.execute(delete(UserSession).where(UserSession.id == sess.row_id,
                                                           UserSession.user_id.is_(None)))
            if request.cookies.get(name):
                response.delete_cookie(name, domain=domain, path=path, secure=self.get_cookie_secure(app),
                                       httponly=self.get_cookie_httponly(app), samesite=self.get_cookie_samesite(app))
            return
        response.vary.add("Cookie")
        user_id = _user_id(sess)
        if user_id is None and sess.row_id is None:
            # Stored as Flask-Login's session protection marks an anonymous session on
            # its next request (not fresh): that request then has nothing to write.
            dict.setdefault(sess, "_fresh", False)
        data = self.serializer.dumps(dict(sess))
        new_sid = None
        with db.engine.begin() as conn:
            if sess.row_id is None:
                new_sid = secrets.token_urlsafe(32)
                ip, ua = _client()
                conn.execute(insert(UserSession).values(
                    sid_hash=sid_hash(new_sid), user_id=user_id, kind="web", data=data, created_at=now,
                    authenticated_at=now if user_id else None, last_seen=now, ip=ip, user_agent=ua,
                ))
            elif sess.rotate:
                new_sid = secrets.token_urlsafe(32)
                values = dict(sid_hash=sid_hash(new_sid), user_id=user_id, data=data, last_seen=now)
                if sess.rotate == "login":
                    ip, ua = _client()
                    values.update(created_at=now, authenticated_at=now, ip=ip, user_agent=ua)
                conn.execute(update(UserSession).where(UserSession.id == sess.row_id).values(**values))
            elif (sess.modified and data != getattr(sess, "raw", None)) or user_id != sess.user_id:
                conn.execute(update(UserSession).where(UserSession.id == sess.row_id)
                             .values(data=data, user_id=user_id, last_seen=now))
            elif sess.last_seen is None or (now - sess.last_seen).total_seconds() > TOUCH_SECONDS:
                conn.execute(update(UserSession).where(UserSession.id == sess.row_id).values(last_seen=now))
        if new_sid:
            response.set_cookie(
                name, new_sid, domain=domain, path=path, httponly=self.get_cookie_httponly(app),
                secure=self.get_cookie_secure(app), samesite=self.get_cookie_samesite(app),
            )


def _end_rows(conditions, reason, conn=None):
    stmt = (update(UserSession).where(UserSession.ended_at.is_(None), *conditions)
            .values(ended_at=utcnow(), end_reason=reason))
    if conn is not None:
        return conn.execute(stmt).rowcount
    with db.engine.begin() as own:
        return own.execute(stmt).rowcount


def end_user_sessions(user_id, reason, keep_row_id=None, conn=None):
    """End every live session of the account (but `keep_row_id`) and bump its API
    token version, in `conn`'s transaction (the ORM session's when None).
    Returns how many browser sessions ended."""
    conn = conn if conn is not None else db.session.connection()
    conditions = [UserSession.user_id == user_id]
    if keep_row_id is not None:
        conditions.append(UserSession.id != keep_row_id)
    n = _end_rows(conditions, reason, conn=conn)
    bumped = conn.execute(update(AccountSecurity).where(AccountSecurity.user_id == user_id)
                          .values(token_version=AccountSecurity.token_version + 1)).rowcount
    if not bumped:
        conn.execute(insert(AccountSecurity).values(user_id=user_id, token_version=2))
    return n


def end_session(row_id, reason="revoked", user_id=None):
    """End one live session (of `user_id` when given).  Returns True if it ended."""
    conditions = [UserSession.id == row_id]
    if user_id is not None:
        conditions.append(UserSession.user_id == user_id)
    return bool(_end_rows(conditions, reason, conn=db.session.connection()))


def current_row_id():
    return getattr(session, "row_id", None) if has_request_context() else None


def live_sessions(user_id):
    """The account's live browser sessions, newest activity first (ended and
    expired ones are not shown)."""
    now = utcnow()
    rows = db.session.execute(
        select(UserSession).where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
        .order_by(UserSession.last_seen.desc())
    ).scalars().all()
    return [r for r in rows if _expired_reason(r, now) is None]


def purge(now=None):
    """End (and announce) the signed-in sessions past their limits, then delete
    anonymous sessions past their lifetime and ended ones older than 30 days.
    Returns the count deleted."""
    now = now or utcnow()
    end_expired(now)
    lifetime = datetime.timedelta(hours=current_app.config.get("SESSION_MAX_HOURS", 12))
    with db.engine.begin() as conn:
        return conn.execute(delete(UserSession).where(or_(
            (UserSession.user_id.is_(None)) & (UserSession.last_seen < now - lifetime),
            UserSession.ended_at < now - datetime.timedelta(days=30),
            (UserSession.last_seen < now - datetime.timedelta(days=30)),
        ))).rowcount


# ---------------------------------------------------------------- account changes


def _account_changes(orm_session, flush_context, instances):
    """before_flush: a changed password, role set or disabling ends sessions."""
    for obj in list(orm_session.dirty):
        if not isinstance(obj, CEUser) or obj.id is None:
            continue
        state = inspect(obj)
        reason = None
        if state.attrs.active.history.has_changes() and not obj.active:
            reason = "disabled"
        elif state.attrs.roles.history.has_changes():
            hist = state.attrs.roles.history
            if {id(r) for r in hist.added} != {id(r) for r in hist.deleted}:
                reason = "roles"
        rehashed = obj.__dict__.pop("_ce_password_rehashed", False)
        if reason is None and state.attrs.password.history.has_changes() and not rehashed:
            # (a re-hash of the same password at login, app/security/passwords.py:
            # not a change; the account's sessions and password history stay)
            reason = "password"
        if reason is None:
            continue
        keep = None
        if reason == "password" and has_request_context():
            from flask_login import current_user

            if current_user and current_user.is_authenticated and current_user.id == obj.id:
                keep = getattr(session, "row_id", None)
                session.rotate = session.rotate or "reissue"
        with orm_session.no_autoflush:
            conn = orm_session.connection()
            end_user_sessions(obj.id, reason, keep_row_id=keep, conn=conn)
            old = [h for h in state.attrs.password.history.deleted if h]
            if old:
                _remember_passwords(conn, obj.id, old)
        hist = g.setdefault("_ce_sessions_ended", []) if has_request_context() else []
        hist.append((obj.id, reason))


PASSWORD_HISTORY = 5


def _remember_passwords(conn, user_id, old_hashes):
    """Keep the hashes of the account's last passwords (the rule refuses them again)."""
    current = conn.execute(select(AccountSecurity.password_history)
                           .where(AccountSecurity.user_id == user_id)).scalar()
    history = (json.loads(current) if current else []) + list(old_hashes)
    conn.execute(update(AccountSecurity).where(AccountSecurity.user_id == user_id)
                 .values(password_history=json.dumps(history[-PASSWORD_HISTORY:])))


def password_reused(user, password):
    """The password is the account's current one or one of its last 5."""
    stored = db.session.execute(select(AccountSecurity.password_history)
                                .where(AccountSecurity.user_id == user.id)).scalar()
    hashes = ([user.password] if user.password else []) + (json.loads(stored) if stored else [])
    return any(verify_password(h, password) for h in hashes)


# ---------------------------------------------------------------- login / logout


def _logged_in(sender, user, **kwargs):
    from app.security import mfa

    sess = session._get_current_object()
    # A new id for the authenticated session: an id known before login is worthless after.
    sess.rotate = "login"
    keep = {"_user_id", "_fresh", "_id", "locale", "csrf_token", "_flashes", "next", PREV_LOGIN_KEY,
            "ce_portal_login"}  # the portal's provider of this login (app.security.portal.LOGIN_KEY)
    for key in list(sess.keys()):
        if key not in keep:
            sess.pop(key, None)
    if mfa.required(user):
        sess[MFA_KEY] = "pending"
    _note_login(sess, user)


PREV_LOGIN_KEY = "_ce_prev_login"


def _note_login(sess, user):
    """鉴别警示: keep the previous successful login (time, address) for the home
    page, and record this one."""
    now, (ip, _ua) = utcnow(), _client()
    with db.engine.begin() as conn:
        prev = conn.execute(select(AccountSecurity.last_login_at, AccountSecurity.last_login_ip)
                            .where(AccountSecurity.user_id == user.id)).first()
        if prev is None:
            conn.execute(insert(AccountSecurity).values(user_id=user.id, token_version=1, last_login_at=now,
                                                        last_login_ip=ip))
        else:
            conn.execute(update(AccountSecurity).where(AccountSecurity.user_id == user.id)
                         .values(last_login_at=now, last_login_ip=ip))
    if prev is not None and prev.last_login_at is not None:
        sess[PREV_LOGIN_KEY] = {"at": prev.last_login_at.isoformat(), "ip": prev.last_login_ip or ""}


def _logged_out(sender, user, **kwargs):
    session._get_current_object().ended = "logout"


# ---------------------------------------------------------------- API tokens


def _token_claims(identity):
    try:
        user_id = int(identity)
    except (TypeError, ValueError):
        return {}
    version = db.session.execute(
        select(AccountSecurity.token_version).where(AccountSecurity.user_id == user_id)
    ).scalar()
    return {"ce_ver": version or 1}


def _token_refused(jwt_header, jwt_payload):
    """Checked on every API call: the account must be active and the token's
    version the account's current one (a password change, role change,
    disabling or "end all sessions" bumps it)."""
    try:
        user_id = int(jwt_payload.get("sub"))
    except (TypeError, ValueError):
        return True
    row = db.session.execute(
        select(CEUser.active, AccountSecurity.token_version)
        .outerjoin(AccountSecurity, AccountSecurity.user_id == CEUser.id).where(CEUser.id == user_id)
    ).first()
    if row is None or not row.active:
        return True
    return jwt_payload.get("ce_ver") != (row.token_version or 1)


# ---------------------------------------------------------------- the gate


MFA_OPEN_ENDPOINTS = frozenset({
    "MfaView.verify", "MfaView.enroll", "MfaView.qr", "MfaView.recovery", "AuthDBView.logout",
    "LocaleView.index", "static", "appbuilder.static",
})


def session_gate():
    """First before_request: says on the (login) page why a session ended, and
    holds a user who has not yet given the second factor on its page."""
    error = getattr(session, "db_error", None)
    if error is not None:
        raise error  # answered 503 by app/web.py's handler
    endpoint = request.endpoint or ""
    if endpoint.endswith("static") or getattr(session, "skipped", False):
        return None
    reason = session.pop(REASON_KEY, None) if REASON_KEY in session else None
    if reason:
        message = reason_message(reason)
        if message:
            flash(message, "warning")
    if session.get(MFA_KEY) == "pending" and endpoint not in MFA_OPEN_ENDPOINTS:
        from flask_login import current_user

        if not (current_user and current_user.is_authenticated):
            session.pop(MFA_KEY, None)
            return None
        if request.path.startswith("/api/"):
            return jsonify(message=_("请先完成动态口令验证")), 401
        from app.security import mfa

        target = "MfaView.verify" if mfa.enrolled(current_user.id) else "MfaView.enroll"
        return redirect(url_for(target))
    return None


def init_app(app):
    """Called by create_app() after the security manager exists."""
    from flask_login import user_logged_in, user_logged_out
    from flask_sqlalchemy.session import Session as FSASession

    app.session_interface = DbSessionInterface()
    app.config.setdefault("SESSION_IDLE_MINUTES", 30)
    app.config.setdefault("SESSION_MAX_HOURS", 12)
    # First, before the account gate (a forced password change waits for the second factor).
    app.before_request_funcs.setdefault(None, []).insert(0, session_gate)
    user_logged_in.connect(_logged_in, app)
    user_logged_out.connect(_logged_out, app)
    if not event.contains(FSASession, "before_flush", _account_changes):
        event.listen(FSASession, "before_flush", _account_changes)
    jwt = app.appbuilder.sm.jwt_manager
    if jwt is not None:
        jwt.additional_claims_loader(_token_claims)
        jwt.token_in_blocklist_loader(_token_refused)
