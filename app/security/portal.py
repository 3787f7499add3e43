"""Login through the provincial government portal (统一身份认证, issue 23): the
protocol adapters.

Two providers, one per deployment, chosen by PORTAL_PROVIDER (config.py reads
every setting from the environment; docs/portal-login.md lists them):

- ``ticket``: the CAS-like scheme provincial portals publish.  The browser goes
  to the portal's login page with the system's service code and the address to
  come back to; it comes back with a ticket; the server exchanges the ticket for
  a token, then the token for the user's fields, each call signed with
  MD5(servicecode + servicepwd + time).
- ``oidc``: OpenID Connect, authorization code with PKCE, the provider found by
  discovery, the id_token (signature, issuer, audience, expiry, nonce) validated
  by Authlib.

A provider only says *who the portal vouches for*: ``start(kind)`` answers the
redirect to the portal; ``finish(args)`` turns the browser's return into a
`PortalAnswer` of raw fields, or raises `PortalError` (a Chinese message and a
short reason for the audit log).  Validating those fields and binding them to a
person or a unit of this system is the services' part (app/services/portal_login.py).

Nothing is kept in the process: the login flow (state, kind, start time; Authlib's
state, nonce and PKCE verifier) lives in the user's session, and presented tickets
in the database (`PortalTicket`), so any worker may receive the return.
Secrets (servicepwd, client secret), signatures and tickets are never logged.
"""
import dataclasses
import datetime
import hashlib
import hmac
import json
import logging
import secrets
import time
from urllib.parse import urlencode, urlsplit, urlunsplit, parse_qsl

import requests
from flask import current_app, redirect, session, url_for
from flask_babel import gettext as _
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models.portal import PortalTicket

log = logging.getLogger(__name__)

PERSON, LEGAL = "person", "legal"
KINDS = (PERSON, LEGAL)

# Session keys.
FLOW_KEY = "ce_portal_flow"  # the login under way: provider, kind, state, start time
IDENTITY_KEY = "ce_portal_identity"  # a validated identity awaiting registration
LOGIN_KEY = "ce_portal_login"  # provider of this session's login
LOGOUT_KEY = "ce_portal_logout"  # after logout: offer the portal's logout on the login page

TICKET_PARAMS = {"servicecode": "servicecode", "goto": "goto", "ticket": "ticket", "time": "time",
                 "sign": "sign", "token": "token"}
TICKET_FIELDS = {"result": "result", "message": "errmsg", "token": "token", "subject": "userid",
                 "name": "username", "id_number": "idnum", "mobile": "mobile",
                 "org_name": "corname", "credit_code": "uscc"}
OIDC_CLAIMS = {"subject": "sub", "name": "name", "id_number": "id_card", "mobile": "phone_number",
               "org_name": "org_name", "credit_code": "credit_code"}


class PortalError(Exception):
    """A portal login that cannot go on.  str() is the message for the user;
    `reason` a short code for the audit log."""

    def __init__(self, message, reason):
        super().__init__(message)
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class PortalAnswer:
    """What the portal said about the user, unvalidated (strings or None)."""

    provider: str
    kind: str  # PERSON or LEGAL: the button the user chose
    subject: str | None
    name: str | None
    id_number: str | None
    mobile: str | None
    org_name: str | None
    credit_code: str | None


# ---------------------------------------------------------------- settings


def _json_setting(name, default):
    value = current_app.config.get(name)
    if not value:
        return dict(default)
    if isinstance(value, str):
        value = json.loads(value)
    return dict(default, **value)


def _public_url(endpoint, **values):
    """An absolute address of this system, as the portal must call it back."""
    base = current_app.config.get("PUBLIC_BASE_URL")
    if base:
        return base.rstrip("/") + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


def _with_params(url, params):
    """`url` with `params` added to its query (a configured URL may carry its own)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _get(data, path):
    """data["a"]["b"] for the path "a.b" (portals nest the user under "data"); None if absent."""
    for key in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    if data is None or isinstance(data, (dict, list)):
        return None
    return str(data)


def _flow(provider):
    """The login flow this browser started, removed from the session (one return per start)."""
    flow = session.pop(FLOW_KEY, None)
    if not isinstance(flow, dict) or flow.get("provider") != provider or flow.get("kind") not in KINDS:
        raise PortalError(_("登录请求已失效或不是从本系统发起，请返回登录页重新登录"), "no_flow")
    max_age = float(current_app.config.get("PORTAL_LOGIN_MAX_AGE", 300))
    if time.time() - float(flow.get("at", 0)) > max_age:
        raise PortalError(_("登录已超时，请返回登录页重新登录"), "flow_expired")
    return flow


def _start_flow(provider, kind, **extra):
    session[FLOW_KEY] = dict(provider=provider, kind=kind, at=time.time(), **extra)


def consume_ticket(provider, ticket):
    """Record `ticket` as presented; PortalError if it was presented before.
    Committed at once, so that the ticket stays spent whatever happens next."""
    digest = hashlib.sha256(f"{provider}:{ticket}".encode()).hexdigest()
    cutoff = datetime.datetime.utcnow() - datetime.timedelta(days=1)
    try:
        db.session.execute(delete(PortalTicket).where(PortalTicket.used_at < cutoff))
        db.session.add(PortalTicket(ticket_hash=digest, provider=provider, used_at=datetime.datetime.utcnow()))
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise PortalError(_("该登录票据已使用过，不能重复登录，请返回登录页重新登录"), "ticket_replayed")


# ---------------------------------------------------------------- ticket → token → user info


class TicketProvider:
    """The provincial portal's ticket → token → user-info scheme."""

    name = "ticket"

    def __init__(self, config):
        self.config = config
        self.params = _json_setting("PORTAL_TICKET_PARAMS", TICKET_PARAMS)
        self.fields = _json_setting("PORTAL_TICKET_FIELDS", TICKET_FIELDS)

    @classmethod
    def configured(cls, config):
        return all(config.get(k) for k in ("PORTAL_TICKET_LOGIN_URL", "PORTAL_TICKET_TOKEN_URL",
                                           "PORTAL_TICKET_USERINFO_URL", "PORTAL_TICKET_SERVICE_CODE",
                                           "PORTAL_TICKET_SECRET"))

    def start(self, kind):
        state = secrets.token_urlsafe(24)
        _start_flow(self.name, kind, state=state)
        back = _public_url("PortalLoginView.callback", provider=self.name, state=state)
        url = self.config.get("PORTAL_TICKET_LEGAL_LOGIN_URL") if kind == LEGAL else None
        url = url or self.config["PORTAL_TICKET_LOGIN_URL"]
        return redirect(_with_params(url, {self.params["servicecode"]: self.config["PORTAL_TICKET_SERVICE_CODE"],
                                           self.params["goto"]: back}))

    def finish(self, args):
        flow = _flow(self.name)
        if not hmac.compare_digest(str(args.get("state", "")), str(flow.get("state", ""))):
            raise PortalError(_("登录状态校验失败（state 不一致），请返回登录页重新登录"), "state_mismatch")
        ticket = (args.get(self.params["ticket"]) or "").strip()
        if not ticket or len(ticket) > 512:
            raise PortalError(_("政务服务网未返回有效的登录票据，请重新登录"), "no_ticket")
        consume_ticket(self.name, ticket)
        answer = self._call(self.config["PORTAL_TICKET_TOKEN_URL"], {self.params["ticket"]: ticket})
        token = _get(answer, self.fields["token"])
        if not token:
            raise PortalError(_("政务服务网的应答缺少令牌（token），无法登录"), "no_token")
        url = self.config.get("PORTAL_TICKET_LEGAL_USERINFO_URL") if flow["kind"] == LEGAL else None
        user = self._call(url or self.config["PORTAL_TICKET_USERINFO_URL"], {self.params["token"]: token})
        return PortalAnswer(
            provider=self.name, kind=flow["kind"],
            **{k: _get(user, self.fields[k]) for k in ("subject", "name", "id_number", "mobile", "org_name",
                                                     "credit_code")},
        )

    def sign(self, stamp):
        """MD5(servicecode + servicepwd + time), lower-case hex."""
        text = self.config["PORTAL_TICKET_SERVICE_CODE"] + self.config["PORTAL_TICKET_SECRET"] + stamp
        return hashlib.md5(text.encode("utf-8")).hexdigest()

    def _call(self, url, params):
        """One signed server-to-server call; the answer's JSON object, or PortalError."""
        stamp = datetime.datetime.now().strftime(self.config.get("PORTAL_TICKET_TIME_FORMAT") or "%Y%m%d%H%M%S")
        data = {self.params["servicecode"]: self.config["PORTAL_TICKET_SERVICE_CODE"],
                self.params["time"]: stamp, self.params["sign"]: self.sign(stamp), **params}
        timeout = float(self.config.get("PORTAL_HTTP_TIMEOUT", 10))
        try:
            if (self.config.get("PORTAL_TICKET_METHOD") or "POST").upper() == "GET":
                resp = requests.get(url, params=data, timeout=timeout)
            else:
                resp = requests.post(url, data=data, timeout=timeout)
        except requests.RequestException as exc:
            # Only the host and the kind of failure: the URL of a GET carries the signature.
            log.warning("portal %s unreachable: %s", urlsplit(url).netloc, type(exc).__name__)
            raise PortalError(_("无法连接政务服务网，请稍后重试"), "portal_unreachable")
        if resp.status_code != 200:
            log.warning("portal %s answered HTTP %s", urlsplit(url).netloc, resp.status_code)
            raise PortalError(_("政务服务网返回了错误（HTTP %(code)s），请稍后重试", code=resp.status_code),
                              "portal_http_error")
        try:
            answer = resp.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise PortalError(_("政务服务网的应答格式不正确，无法登录"), "malformed_answer")
        success = str(self.config.get("PORTAL_TICKET_SUCCESS", "0"))
        if _get(answer, self.fields["result"]) != success:
            reason = (_get(answer, self.fields["message"]) or "")[:100]
            log.info("portal %s refused: %s", urlsplit(url).netloc, reason)
            raise PortalError(_("政务服务网拒绝了登录请求：%(reason)s", reason=reason or _("未说明原因")),
                              "portal_refused")
        return answer

    def logout_url(self):
        url = self.config.get("PORTAL_TICKET_LOGOUT_URL")
        if not url:
            return None
        return _with_params(url, {self.params["servicecode"]: self.config["PORTAL_TICKET_SERVICE_CODE"],
                                  self.params["goto"]: _public_url("AuthDBView.login")})


# ---------------------------------------------------------------- OpenID Connect


class OidcProvider:
    """OpenID Connect through Authlib: authorization code + PKCE (S256), discovery,
    the id_token validated (signature by the provider's JWKS, iss, aud, exp, nonce)."""

    name = "oidc"

    def __init__(self, config):
        self.config = config
        self.claims = _json_setting("PORTAL_OIDC_CLAIMS", OIDC_CLAIMS)

    @classmethod
    def configured(cls, config):
        return all(config.get(k) for k in ("PORTAL_OIDC_DISCOVERY_URL", "PORTAL_OIDC_CLIENT_ID",
                                           "PORTAL_OIDC_CLIENT_SECRET"))

    def client(self):
        """Authlib's client for the configured provider, registered once per
        setting (a changed setting registers a new one; metadata is fetched once)."""
        from authlib.integrations.flask_client import OAuth

        app = current_app._get_current_object()
        oauth = app.extensions.get("ce_portal_oauth")
        if oauth is None:
            oauth = app.extensions["ce_portal_oauth"] = OAuth(app)
        cfg = self.config
        key = "|".join(str(cfg.get(k)) for k in ("PORTAL_OIDC_DISCOVERY_URL", "PORTAL_OIDC_CLIENT_ID",
                                                  "PORTAL_OIDC_CLIENT_SECRET", "PORTAL_OIDC_SCOPE"))
        name = "portal_" + hashlib.sha256(key.encode()).hexdigest()[:16]
        client = oauth.create_client(name)
        if client is None:
            client = oauth.register(
                name, client_id=cfg["PORTAL_OIDC_CLIENT_ID"], client_secret=cfg["PORTAL_OIDC_CLIENT_SECRET"],
                server_metadata_url=cfg["PORTAL_OIDC_DISCOVERY_URL"],
                client_kwargs={"scope": cfg.get("PORTAL_OIDC_SCOPE") or "openid profile",
                               "code_challenge_method": "S256",
                               "timeout": float(cfg.get("PORTAL_HTTP_TIMEOUT", 10))},
            )
        return client

    def start(self, kind):
        _start_flow(self.name, kind)
        try:
            return self.client().authorize_redirect(_public_url("PortalLoginView.callback", provider=self.name))
        except requests.RequestException as exc:
            log.warning("OpenID provider unreachable: %s", type(exc).__name__)
            raise PortalError(_("无法连接统一身份认证服务，请稍后重试"), "portal_unreachable")

    def finish(self, args):
        from authlib.integrations.base_client.errors import MismatchingStateError, OAuthError
        # Authlib 1.9 validates id_tokens with joserfc (its own JOSE library) and raises its errors.
        from joserfc.errors import ExpiredTokenError, JoseError

        flow = _flow(self.name)
        client = self.client()
        leeway = int(self.config.get("PORTAL_OIDC_LEEWAY", 60))
        try:
            token = client.authorize_access_token(leeway=leeway)
            if "userinfo" not in token:
                raise PortalError(_("统一身份认证服务未返回身份令牌（id_token），无法登录"), "no_id_token")
            claims = dict(token["userinfo"])
            if client.load_server_metadata().get("userinfo_endpoint"):
                more = client.userinfo(token=token)
                if more.get("sub") != claims.get("sub"):
                    raise PortalError(_("身份令牌与用户信息不属于同一用户，无法登录"), "sub_mismatch")
                claims.update(more)
        except MismatchingStateError:
            raise PortalError(_("登录状态校验失败（state 不一致），请返回登录页重新登录"), "state_mismatch")
        except ExpiredTokenError:
            raise PortalError(_("统一身份认证服务的身份令牌已过期，请重新登录"), "id_token_expired")
        except JoseError as exc:
            log.info("id_token refused: %s", getattr(exc, "error", type(exc).__name__))
            raise PortalError(_("身份令牌校验未通过，无法登录"), "id_token_invalid")
        except OAuthError as exc:
            log.info("OpenID provider refused: %s", exc.error)
            raise PortalError(_("统一身份认证服务拒绝了登录请求：%(reason)s", reason=(exc.error or "")[:100]),
                              "portal_refused")
        except requests.RequestException as exc:
            log.warning("OpenID provider unreachable: %s", type(exc).__name__)
            raise PortalError(_("无法连接统一身份认证服务，请稍后重试"), "portal_unreachable")

        def claim(field):
            value = claims.get(self.claims[field])
            return None if value is None or isinstance(value, (dict, list)) else str(value)

        return PortalAnswer(provider=self.name, kind=flow["kind"],
                            **{k: claim(k) for k in ("subject", "name", "id_number", "mobile", "org_name",
                                                     "credit_code")})

    def logout_url(self):
        try:
            endpoint = self.client().load_server_metadata().get("end_session_endpoint")
        except requests.RequestException:
            return None
        if not endpoint:
            return None
        return _with_params(endpoint, {"client_id": self.config["PORTAL_OIDC_CLIENT_ID"],
                                       "post_logout_redirect_uri": _public_url("AuthDBView.login")})


PROVIDERS = {p.name: p for p in (TicketProvider, OidcProvider)}


def active_provider():
    """The deployment's provider (PORTAL_PROVIDER), or None when portal login is
    off or its settings are incomplete."""
    config = current_app.config
    cls = PROVIDERS.get((config.get("PORTAL_PROVIDER") or "").strip().lower())
    if cls is None or not cls.configured(config):
        return None
    return cls(config)


# ---------------------------------------------------------------- session


def begin_portal_session(provider):
    """Before signing in a user the portal vouched for: nothing of the session
    from before the login survives (no fixation), and the session remembers the
    provider (for the logout)."""
    session.clear()
    session[LOGIN_KEY] = provider


def end_portal_session():
    """At logout (the security manager's on_user_logout): the whole session ends;
    after a portal login, the login page then offers the portal's logout."""
    provider = session.get(LOGIN_KEY)
    session.clear()
    if provider:
        session[LOGOUT_KEY] = provider


def login_page_options():
    """For the login page: the portal buttons' addresses, and (once, after a
    logout of a portal login) the portal's logout address.  None when off."""
    provider = active_provider()
    offered = session.pop(LOGOUT_KEY, None)
    if provider is None:
        return None
    logout = provider.logout_url() if offered == provider.name else None
    return {
        "person_url": url_for("PortalLoginView.login", kind=PERSON),
        "legal_url": url_for("PortalLoginView.login", kind=LEGAL),
        "logout_url": logout,
    }
