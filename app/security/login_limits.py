"""Failed-login limits: count failed logins, never successful ones.

* per account (AUTH_FAILED_PER_ACCOUNT, "10 per 10 minute"): past it the account
  is refused, from any address, until its window moves on; the refusal says when
  to try again;
* per client address (AUTH_FAILED_PER_ADDRESS, "30 per minute"): one address
  guessing many accounts is refused for a while.

A whole office behind one NAT address (or every user behind a reverse proxy
whose address is not resolved, see TRUSTED_PROXY_HOPS) logging in at 9:00 is
never refused: only failures count.

Counters live in Redis when REDIS_URL is set (shared by every worker and host),
in this process's memory otherwise (the `limits` library, as Flask-Limiter).  If
Redis does not answer, this process counts in its own memory for a while and
logs a warning: logins are never blocked because the counter store is down.
"""
import datetime
import logging
import re
import threading
import time

from limits import parse
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

log = logging.getLogger(__name__)

_ID_LIKE = re.compile(r"\d{17}[\dx]|\d{15}")

# After Redis failed, the in-memory counters are used this long before Redis is tried again.
RETRY_REDIS_SECONDS = 30


class LoginRefused(Exception):
    """A login refused before the password is checked.  `message` is for the user
    (Chinese), `retry_at` the UTC time the refusal ends, `scope` "account" or "address"."""

    def __init__(self, message, retry_at, scope):
        super().__init__(message)
        self.message, self.retry_at, self.scope = message, retry_at, scope

    @property
    def retry_after(self):
        return max(1, int((self.retry_at - datetime.datetime.now(datetime.timezone.utc)).total_seconds() + 0.999))


class FailedLoginLimits:
    """One per app (CESecurityManager.failed_logins)."""

    def __init__(self, per_account, per_address, storage_uri=None):
        self.per_account = parse(per_account) if per_account else None
        self.per_address = parse(per_address) if per_address else None
        self.storage_uri = storage_uri or "memory://"
        self._memory = MemoryStorage()
        self._shared = None if self.storage_uri.startswith("memory") else storage_from_string(self.storage_uri)
        self._down_until = 0.0
        self._lock = threading.Lock()

    # ---- storage with fallback ----------------------------------------------

    def _strategy(self, shared=True):
        if shared and self._shared is not None and time.monotonic() >= self._down_until:
            return MovingWindowRateLimiter(self._shared), True
        return MovingWindowRateLimiter(self._memory), False

    def _call(self, method, *args):
        strategy, shared = self._strategy()
        try:
            return getattr(strategy, method)(*args)
        except Exception as exc:  # Redis down or unreachable: never block logins
            if not shared:
                raise
            with self._lock:
                self._down_until = time.monotonic() + RETRY_REDIS_SECONDS
            log.warning("failed-login counters: %s unreachable (%s); counting in this process's memory "
                        "for %ss", self.storage_uri.split("@")[-1], exc, RETRY_REDIS_SECONDS)
            strategy, _ = self._strategy(shared=False)
            return getattr(strategy, method)(*args)

    # ---- the checks -----------------------------------------------------------

    @staticmethod
    def _account_key(username):
        """The counter's name of an account: the login name, or for an ID number
        typed as the login name (app/views/security.py's find_user) its blind index,
        so that no ID number is kept in clear in Redis."""
        key = (username or "").strip().lower()[:200]
        if _ID_LIKE.fullmatch(key):
            from app.models.crypto import blind_index

            return "bidx:" + blind_index(key.upper(), "login.account")
        return key

    def _checks(self, username, address):
        if self.per_account is not None and username:
            yield self.per_account, ("ce-login-failed-account", self._account_key(username)), "account"
        if self.per_address is not None and address:
            yield self.per_address, ("ce-login-failed-address", address), "address"

    def check(self, username, address):
        """Raise LoginRefused when the account or the address has used up its failures."""
        from flask_babel import gettext as _

        for item, ids, scope in self._checks(username, address):
            if self._call("test", item, *ids):
                continue
            stats = self._call("get_window_stats", item, *ids)
            retry_at = datetime.datetime.fromtimestamp(max(stats.reset_time, time.time() + 1), datetime.timezone.utc)
            local = retry_at.astimezone(_CHINA).strftime("%H:%M")
            minutes = max(1, int((retry_at.timestamp() - time.time() + 59) // 60))
            if scope == "account":
                message = _("该账号登录失败次数过多，为保护账号安全已暂时锁定，请于 %(time)s（约 %(minutes)s 分钟后）"
                            "再试；如忘记密码，请联系单位管理员重置。", time=local, minutes=minutes)
            else:
                message = _("来自您所在网络地址的登录失败次数过多，请于 %(time)s（约 %(minutes)s 分钟后）再试。",
                            time=local, minutes=minutes)
            raise LoginRefused(message, retry_at, scope)

    def locked(self, username, address):
        """"account" or "address" when that one has used up its failures now, else None."""
        for item, ids, scope in self._checks(username, address):
            if not self._call("test", item, *ids):
                return scope
        return None

    def failed(self, username, address):
        """Count one failed login against the account and the address."""
        for item, ids, _scope in self._checks(username, address):
            self._call("hit", item, *ids)

    def clear(self, username):
        """Forget an account's failures (an administrator reset its password)."""
        if self.per_account is None or not username:
            return
        ids = ("ce-login-failed-account", self._account_key(username))
        for strategy, _shared in {self._strategy(), self._strategy(shared=False)}:
            try:
                strategy.clear(self.per_account, *ids)
            except Exception:  # the store is down: nothing to forget there
                pass


_CHINA = datetime.timezone(datetime.timedelta(hours=8), "CST")
