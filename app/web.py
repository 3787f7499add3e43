"""Request-wide behaviour: security headers, error pages in the user's language,
the database-unavailable page (503) and /health."""
import logging

from flask import g, jsonify, make_response, render_template, request
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError

ERRORS = {
    400: (_l("请求无效"), _l("请求无效，请返回上一页检查后重试。")),
    403: (_l("无权访问"), _l("您没有执行此操作的权限。")),
    404: (_l("未找到"), _l("页面或记录不存在，或不在您的权限范围内。")),
    405: (_l("请求方式不允许"), _l("此页面不接受该请求方式。")),
    413: (_l("文件过大"), _l("上传的内容超过了系统允许的大小，请拆分或压缩后重试。")),
    500: (_l("系统错误"), _l("系统处理请求时出错，请稍后重试；如问题持续存在，请联系系统管理员。")),
    503: (_l("服务暂时不可用"), _l("系统暂时无法连接数据库，刚才的操作没有完成，请稍候片刻后重试。")),
}
log = logging.getLogger(__name__)
CSRF_MESSAGE = _l("页面已过期或请求来源无法验证（CSRF 校验失败），请刷新页面后重试。")


def _error_response(code, message=None):
    title, default = ERRORS[code]
    message = message or default
    if request.path.startswith("/api/"):
        return jsonify(message=str(message)), code
    return render_template(
        "ce/error.html", code=code, title=title, message=message, lang=str(get_locale() or "zh")
    ), code


def _database_unavailable(error):
    """The database did not answer (restarted, unreachable, pool exhausted): 503 in
    the user's language, nothing stored.  The dead connection has been dropped from
    the pool (SQLAlchemy invalidates it; app/extensions.py pings idle ones), so the
    next request connects again without restarting the worker."""
    from app.extensions import db

    log.warning("database unavailable: %s", str(error).splitlines()[0][:300])
    try:
        db.session.rollback()
    except Exception:  # the connection is gone already
        pass
    # The page must not ask the database again: Flask-Login's template context
    # would load the signed-in user.  This response shows no user.
    from flask import current_app

    g._login_user = current_app.login_manager.anonymous_user()
    response = make_response(*_error_response(503))
    response.headers["Retry-After"] = "5"
    return response


def register(app):
    from sqlalchemy.exc import InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    @app.route("/health")
    def health():
        """For the proxy's and the load benchmark's checks: no database, no session."""
        return "ok", 200, {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}

    for exc in (OperationalError, InterfaceError, PoolTimeout):
        app.register_error_handler(exc, _database_unavailable)

    from app.services.localtime import beijing_text, local_beijing_text

    app.add_template_filter(beijing_text, "beijing")  # stored UTC, shown in Beijing time
    app.add_template_filter(local_beijing_text, "beijing_local")  # FAB's account times: server-local

    from app.services.jobs import QueueUnavailable

    @app.errorhandler(QueueUnavailable)
    def queue_unavailable(error):
        # A long job the queue (Redis) did not take: said at once, not left waiting.
        response = make_response(*_error_response(503, str(error)))
        response.headers["Retry-After"] = "30"
        return response

    from app.views import display, gridrender, pagecache

    gridrender.register(app)
    pagecache.register(app)
    display.register(app)

    @app.before_request
    def fresh_scope():
        # The row scope is cached per request (security.scope.current_scope).
        g.pop("_ce_scope", None)
        # Per request too: the forms' related-row counts and refusal flag
        # (views.base.ScopedModelView).
        g.pop("_ce_many_related", None)
        g.pop("_ce_refused", None)

    content_policy(app)

    @app.after_request
    def audit_full_ids(response):
        # Every display of a whole ID number is in the audit log (等保, issue 26).
        if g.get("_ce_full_ids"):
            from app.extensions import db
            from app.services import audit

            try:
                audit.record_full_ids_shown(response.status_code)
            except Exception:  # never lose the page for its audit entry; say so in the log
                log.exception("audit entry of the ID numbers shown on %s not written", request.path)
                db.session.rollback()
        return response

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return _error_response(400, CSRF_MESSAGE)

    for code in ERRORS:
        app.register_error_handler(code, lambda error, code=code: _error_response(code))

    @app.errorhandler(405)
    def method_not_allowed(error):
        # RFC 9110: a 405 names the methods the resource accepts.
        body, code = _error_response(405)
        response = app.make_response((body, code))
        methods = getattr(error, "valid_methods", None)
        if methods:
            response.headers["Allow"] = ", ".join(sorted(methods))
        return response


# The Content-Security-Policy (issue 25, 等保 2.0 三级 入侵防范): scripts and style
# sheets only from the app itself or carrying this response's nonce (FAB's and
# the app's templates print it with baselib.get_nonce()); no inline handler, no
# eval; no plugin, no framing.  Style *attributes* (style="...") stay allowed:
# they carry CSS only, FAB's widgets and the JavaScript libraries set them.
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "style-src-attr": "'unsafe-inline'",
    "img-src": "'self' data:",
    "font-src": "'self' data:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "frame-ancestors": "'none'",
}


def content_policy(app):
    """Flask-Talisman's headers: the CSP with a per-request nonce, HSTS when the
    cookies are Secure (the site is served over HTTPS), X-Frame-Options DENY,
    nosniff, Referrer-Policy.  It never redirects to HTTPS itself (the proxy
    does) and leaves the cookie flags to config.py."""
    from flask_talisman import Talisman

    app.jinja_env.globals.setdefault("csp_nonce", lambda: "")  # (replaced by Talisman's)
    if not app.config.get("CSP_ENABLED", True):
        return None
    secure = bool(app.config.get("SESSION_COOKIE_SECURE"))
    return Talisman(
        app,
        force_https=False,
        strict_transport_security=secure,
        strict_transport_security_max_age=31536000,
        strict_transport_security_include_subdomains=False,
        session_cookie_secure=secure,
        session_cookie_http_only=True,
        frame_options="DENY",
        content_security_policy=CONTENT_SECURITY_POLICY,
        content_security_policy_nonce_in=["script-src", "style-src"],
        referrer_policy="same-origin",
        permissions_policy={},
    )
