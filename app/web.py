"""Request-wide behaviour: security headers, error pages in the user's language."""
from flask import g, jsonify, render_template, request
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
}
CSRF_MESSAGE = _l("页面已过期或请求来源无法验证（CSRF 校验失败），请刷新页面后重试。")


def _error_response(code, message=None):
    title, default = ERRORS[code]
    message = message or default
    if request.path.startswith("/api/"):
        return jsonify(message=str(message)), code
    return render_template(
        "ce/error.html", code=code, title=title, message=message, lang=str(get_locale() or "zh")
    ), code


def register(app):
    from app.views import display, fastrender

    fastrender.register(app)
    display.register(app)

    @app.before_request
    def fresh_scope():
        # The row scope and the user's render key are cached per request
        # (security.scope.current_scope, views.fastrender.user_key).
        g.pop("_ce_scope", None)
        g.pop("_ce_user_key", None)
        # Per request too: the forms' related-row counts and refusal flag
        # (views.base.ScopedModelView).
        g.pop("_ce_many_related", None)
        g.pop("_ce_refused", None)

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
