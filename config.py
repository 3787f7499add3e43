"""Application configuration, read from the environment.

`Config` is what `python run.py` and gunicorn use; `TestConfig` is what the
tests build the app with.  Everything a deployment changes (database, secret,
port, Redis, limits, yearly requirement) comes from environment variables.
"""
import json
import os

BASE_DIR = os.path.abspath(os.path.dirname(__file__))


def _env_bool(name, default):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


MFA_DEFAULT_ROLES = ("Admin", "Bureau", "UnitAdmin", "SysAdmin", "SecAdmin", "Auditor")


def _mfa_roles(demo):
    value = os.environ.get("MFA_ROLES")
    if value is None:
        return () if demo else MFA_DEFAULT_ROLES
    return tuple(r.strip() for r in value.split(",") if r.strip())


class Config:
    APP_NAME = "继续教育学时管理系统"
    APP_ICON = None
    SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-change-me-in-production")

    VAR_DIR = os.environ.get("CE_VAR_DIR", os.path.join(BASE_DIR, "var"))
    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "DATABASE_URL", "sqlite:///" + os.path.join(VAR_DIR, "ce_hours.db")
    )
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    SQLALCHEMY_ENGINE_OPTIONS = {}
    # A pooled connection idle for longer than this is pinged before use (and
    # replaced if dead); one used a moment ago is not (app/extensions.py).
    DB_PING_IDLE_SECONDS = float(os.environ.get("DB_PING_IDLE_SECONDS", "1"))
    if SQLALCHEMY_DATABASE_URI.startswith("postgresql"):
        SQLALCHEMY_ENGINE_OPTIONS.update(
            pool_size=int(os.environ.get("DB_POOL_SIZE", "10")),
            max_overflow=int(os.environ.get("DB_MAX_OVERFLOW", "10")),
        )

    # Where uploaded proof files and import files are kept: outside the web root.
    UPLOAD_DIR = os.environ.get("UPLOAD_DIR", os.path.join(VAR_DIR, "uploads"))

    # Personal data encrypted at rest (app/models/crypto.py, docs/deploy-security.md):
    # the SM4 / HMAC-SM3 keys live in this file, never in the database.  Left unset,
    # the embedded default keeps it under var/ and creates it on first start; set,
    # it must exist (a production server never makes up a key of its own).
    DATA_KEY_FILE = os.environ.get("DATA_KEY_FILE") or os.path.join(VAR_DIR, "data.key")
    DATA_KEY_CREATE = not os.environ.get("DATA_KEY_FILE")
    # A process notices a rotation (a new active key in the file) within this time.
    DATA_KEY_RELOAD_SECONDS = float(os.environ.get("DATA_KEY_RELOAD_SECONDS", "5"))

    # Flask-AppBuilder
    FAB_SECURITY_MANAGER_CLASS = "app.views.security.CESecurityManager"
    FAB_INDEX_VIEW = "app.views.home.HomeView"
    FAB_BASE_TEMPLATE = "ce/base.html"
    # Migrations own the schema; permissions and roles are synced by `flask ce sync-roles`.
    FAB_CREATE_DB = False
    FAB_UPDATE_PERMS = False
    FAB_ADD_SECURITY_API = False
    # /api/v1/_openapi and the (locally served) Swagger UI describe the REST APIs;
    # JWT login (/api/v1/security/login) is FAB's SecurityApi, always registered.
    FAB_API_SWAGGER_UI = True
    # The app registers its own OpenApi view (documented as it answers, app/security/api.py);
    # FAB's menu API (/api/v1/menu/) serves no page of this app and is not exposed.
    FAB_ADD_OPENAPI_VIEWS = False
    FAB_ADD_MENU_API = False
    # National interchange feed: only rows older than this are read, so rows of a
    # transaction that commits late cannot fall behind a cursor already handed out.
    NATIONAL_FEED_LAG_SECONDS = float(os.environ.get("NATIONAL_FEED_LAG_SECONDS", "60"))
    AUTH_TYPE = 1  # AUTH_DB
    # Password hashes: Argon2id with OWASP's first recommendation (m=19 MiB, t=2,
    # p=1; app/security/passwords.py, docs/deploy-stack.md).  Older hashes
    # (scrypt, pbkdf2) still verify and are re-hashed at the next login.
    PASSWORD_ARGON2_MEMORY_KIB = int(os.environ.get("PASSWORD_ARGON2_MEMORY_KIB", "19456"))
    PASSWORD_ARGON2_TIME_COST = int(os.environ.get("PASSWORD_ARGON2_TIME_COST", "2"))
    PASSWORD_ARGON2_PARALLELISM = int(os.environ.get("PASSWORD_ARGON2_PARALLELISM", "1"))
    AUTH_USER_REGISTRATION = False
    AUTH_ROLE_ADMIN = "Admin"
    AUTH_ROLE_PUBLIC = "Public"
    # Logins are limited by their failures (app/security/login_limits.py): per
    # account, then that account is refused from any address for a while; and per
    # client address.  Successful logins are never limited.  AUTH_RATE_LIMITED=0
    # turns these and the registration pages' limit off.
    AUTH_RATE_LIMITED = _env_bool("AUTH_RATE_LIMITED", True)
    AUTH_FAILED_PER_ACCOUNT = os.environ.get("AUTH_FAILED_PER_ACCOUNT", "10 per 10 minute")
    AUTH_FAILED_PER_ADDRESS = os.environ.get("AUTH_FAILED_PER_ADDRESS", "30 per minute")
    # Posts to the self-registration pages, per client address.
    AUTH_RATE_LIMIT = os.environ.get("AUTH_RATE_LIMIT", "10 per 60 second")
    RATELIMIT_ENABLED = _env_bool("RATELIMIT_ENABLED", True)
    RATELIMIT_STORAGE_URI = os.environ.get("REDIS_URL", "memory://")
    # Redis down: the limits count in each process's memory instead of failing requests.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_SWALLOW_ERRORS = True
    # Reverse proxies in front of the app whose X-Forwarded-For / X-Forwarded-Proto
    # are believed (werkzeug's ProxyFix).  0: the headers are ignored, the client
    # address is the connection's.  Behind one nginx: 1.  Never more than there are.
    TRUSTED_PROXY_HOPS = int(os.environ.get("TRUSTED_PROXY_HOPS", "0"))
    # FAB_ROLES is filled from app/security/roles.py in create_app().

    # CSRF on every state-changing request (FAB does not enable it itself).
    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = None

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", False)
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    # Server-side sessions (issue 25, app/security/sessions.py): idle timeout and
    # absolute lifetime since the login.
    SESSION_IDLE_MINUTES = int(os.environ.get("SESSION_IDLE_MINUTES", "30"))
    SESSION_MAX_HOURS = float(os.environ.get("SESSION_MAX_HOURS", "12"))
    # Roles that give a second factor (TOTP) after the password.  Unset: all the
    # privileged roles, except on the embedded demo (DEMO on SQLite), where it is
    # off and administrators see a banner saying so.  MFA_ROLES="" turns it off.
    MFA_ROLES = _mfa_roles(_env_bool("DEMO", True) and SQLALCHEMY_DATABASE_URI.startswith("sqlite"))
    # Fernet key for the stored TOTP secrets; derived from SECRET_KEY when unset.
    MFA_ENCRYPTION_KEY = os.environ.get("MFA_ENCRYPTION_KEY")
    MFA_MAX_FAILURES = int(os.environ.get("MFA_MAX_FAILURES", "5"))
    # The Content-Security-Policy and the other security headers (app/web.py); 0 only to diagnose.
    CSP_ENABLED = _env_bool("CSP_ENABLED", True)

    # Chinese first.  FAB ignores Accept-Language; the locale is the session's or this.
    BABEL_DEFAULT_LOCALE = "zh"
    BABEL_DEFAULT_FOLDER = "translations"
    BABEL_TRANSLATION_DIRECTORIES = os.path.join(BASE_DIR, "translations")
    LANGUAGES = {
        "zh": {"flag": "cn", "name": "简体中文"},
        "en": {"flag": "gb", "name": "English"},
    }

    # Tamper-evident audit log (app/services/audit_chain.py, docs/deploy-security.md).
    # The HMAC-SM3 key lives outside the database: AUDIT_KEY (hex) or AUDIT_KEY_FILE;
    # unset, the embedded default creates <VAR_DIR>/audit_key.key on the first start.
    AUDIT_KEY = os.environ.get("AUDIT_KEY")
    AUDIT_KEY_FILE = os.environ.get("AUDIT_KEY_FILE")
    # Audit rows are kept at least this many days (refused below 180); older rows
    # leave only through `flask ce audit archive` (a sealed file first).
    AUDIT_KEEP_DAYS = int(os.environ.get("AUDIT_KEEP_DAYS", "180"))

    # Yearly requirement (SPEC §4): total hours and the professional share.
    REQUIRED_HOURS_TOTAL = float(os.environ.get("REQUIRED_HOURS_TOTAL", "90"))
    REQUIRED_PROFESSIONAL_RATIO = float(os.environ.get("REQUIRED_PROFESSIONAL_RATIO", str(2 / 3)))
    MAX_HOURS_PER_RECORD = float(os.environ.get("MAX_HOURS_PER_RECORD", "200"))

    # Demo data on the first start of an empty SQLite database.
    DEMO = _env_bool("DEMO", True)

    REDIS_URL = os.environ.get("REDIS_URL")

    # Bulk import and export (issue 4).  Files above the limits are refused with a
    # message; work above the *_INLINE_* sizes runs as a job (RQ with REDIS_URL,
    # else a thread) and the page shows its progress.
    # Long jobs: a job running (or queued) longer than this is reported failed (its
    # process died); result files (exports, certificate PDFs) are kept this many days.
    JOB_MAX_SECONDS = int(os.environ.get("JOB_MAX_SECONDS", "3600"))
    JOB_KEEP_DAYS = int(os.environ.get("JOB_KEEP_DAYS", "7"))
    IMPORT_MAX_BYTES = int(os.environ.get("IMPORT_MAX_BYTES", str(30 * 1024 * 1024)))
    IMPORT_MAX_ROWS = int(os.environ.get("IMPORT_MAX_ROWS", "200000"))
    IMPORT_MAX_UNCOMPRESSED_BYTES = int(os.environ.get("IMPORT_MAX_UNCOMPRESSED_BYTES", str(400 * 1024 * 1024)))
    IMPORT_INLINE_MAX_BYTES = int(os.environ.get("IMPORT_INLINE_MAX_BYTES", str(1024 * 1024)))
    IMPORT_INLINE_MAX_ROWS = int(os.environ.get("IMPORT_INLINE_MAX_ROWS", "20000"))
    EXPORT_INLINE_MAX_ROWS = int(os.environ.get("EXPORT_INLINE_MAX_ROWS", "100000"))
    # Public holidays past chinesecalendar's data (it knows 2004-2026), as JSON:
    # {"2027": {"holidays": ["2027-01-01", ...], "workdays": ["2027-02-06", ...]}}
    HOLIDAYS_EXTRA = json.loads(os.environ.get("HOLIDAYS_EXTRA", "{}"))
    # No request body above this is read at all (413); import files are also
    # checked against IMPORT_MAX_BYTES with a message while they are saved.
    MAX_CONTENT_LENGTH = int(os.environ.get("MAX_CONTENT_LENGTH", str(64 * 1024 * 1024)))

    # Certificates (issue 5).  A TrueType-outline CJK font is embedded in every
    # certificate (Debian: fonts-wqy-microhei); rendering fails loudly without it.
    CERT_FONT_PATH = os.environ.get("CERT_FONT_PATH", "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
    CERT_ISSUER = os.environ.get("CERT_ISSUER", "江苏省人力资源和社会保障厅")
    # The address printed on certificates and in their QR codes (the public
    # verification page); the request's own address when unset.
    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL")
    CERT_VERIFY_RATE_LIMIT = os.environ.get("CERT_VERIFY_RATE_LIMIT", "30 per minute")
    CERT_BATCH_CHUNK = int(os.environ.get("CERT_BATCH_CHUNK", "50"))
    CERT_BATCH_MAX = int(os.environ.get("CERT_BATCH_MAX", "1000"))
    # Larger batches run as a job (see app/services/jobs.py); chunks render in
    # this many processes (0: one per CPU, at most 4).
    CERT_BATCH_INLINE_MAX = int(os.environ.get("CERT_BATCH_INLINE_MAX", "100"))
    CERT_RENDER_PROCESSES = int(os.environ.get("CERT_RENDER_PROCESSES", "0"))


    # Login through the provincial government portal (统一身份认证, issue 23;
    # docs/portal-login.md).  PORTAL_PROVIDER: "" (off), "ticket" or "oidc".
    PORTAL_PROVIDER = os.environ.get("PORTAL_PROVIDER", "")
    PORTAL_LOGIN_MAX_AGE = int(os.environ.get("PORTAL_LOGIN_MAX_AGE", "300"))  # seconds from button to return
    PORTAL_REGISTER_MAX_AGE = int(os.environ.get("PORTAL_REGISTER_MAX_AGE", "1800"))  # to finish registration
    PORTAL_HTTP_TIMEOUT = float(os.environ.get("PORTAL_HTTP_TIMEOUT", "10"))
    # The ticket → token → user-info scheme.
    PORTAL_TICKET_LOGIN_URL = os.environ.get("PORTAL_TICKET_LOGIN_URL")
    PORTAL_TICKET_LEGAL_LOGIN_URL = os.environ.get("PORTAL_TICKET_LEGAL_LOGIN_URL")
    PORTAL_TICKET_TOKEN_URL = os.environ.get("PORTAL_TICKET_TOKEN_URL")
    PORTAL_TICKET_USERINFO_URL = os.environ.get("PORTAL_TICKET_USERINFO_URL")
    PORTAL_TICKET_LEGAL_USERINFO_URL = os.environ.get("PORTAL_TICKET_LEGAL_USERINFO_URL")
    PORTAL_TICKET_LOGOUT_URL = os.environ.get("PORTAL_TICKET_LOGOUT_URL")
    PORTAL_TICKET_SERVICE_CODE = os.environ.get("PORTAL_TICKET_SERVICE_CODE")
    PORTAL_TICKET_SECRET = os.environ.get("PORTAL_TICKET_SECRET")  # servicepwd
    PORTAL_TICKET_METHOD = os.environ.get("PORTAL_TICKET_METHOD", "POST")
    PORTAL_TICKET_TIME_FORMAT = os.environ.get("PORTAL_TICKET_TIME_FORMAT", "%Y%m%d%H%M%S")
    PORTAL_TICKET_SUCCESS = os.environ.get("PORTAL_TICKET_SUCCESS", "0")
    PORTAL_TICKET_PARAMS = os.environ.get("PORTAL_TICKET_PARAMS")  # JSON: parameter names
    PORTAL_TICKET_FIELDS = os.environ.get("PORTAL_TICKET_FIELDS")  # JSON: answer field names
    # OpenID Connect.
    PORTAL_OIDC_DISCOVERY_URL = os.environ.get("PORTAL_OIDC_DISCOVERY_URL")
    PORTAL_OIDC_CLIENT_ID = os.environ.get("PORTAL_OIDC_CLIENT_ID")
    PORTAL_OIDC_CLIENT_SECRET = os.environ.get("PORTAL_OIDC_CLIENT_SECRET")
    PORTAL_OIDC_SCOPE = os.environ.get("PORTAL_OIDC_SCOPE", "openid profile")
    PORTAL_OIDC_CLAIMS = os.environ.get("PORTAL_OIDC_CLAIMS")  # JSON: claim names
    PORTAL_OIDC_LEEWAY = int(os.environ.get("PORTAL_OIDC_LEEWAY", "60"))  # clock skew allowed, seconds


class TestConfig(Config):
    TESTING = True
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL", "sqlite://")
    SQLALCHEMY_ENGINE_OPTIONS = {}
    # One key file for every test process (created by the first one).
    DATA_KEY_FILE = os.environ.get("TEST_DATA_KEY_FILE") or os.path.join(
        os.environ.get("TMPDIR", "/tmp"), "ce-test-data-%d.key" % os.getuid())
    DATA_KEY_CREATE = True
    DATA_KEY_RELOAD_SECONDS = 0.2
    AUTH_RATE_LIMITED = False
    RATELIMIT_ENABLED = False
    RATELIMIT_STORAGE_URI = "memory://"
    SERVER_NAME = "localhost"
    # Each test run makes its own audit key (a subprocess gets it as AUDIT_KEY).
    AUDIT_KEY = os.environ.get("AUDIT_KEY") or os.urandom(32).hex()
    MFA_ROLES = _mfa_roles(True)
