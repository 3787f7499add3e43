"""Request-wide behaviour: security headers, error pages."""


from flask import g


def register(app):
    @app.before_request
    def fresh_scope():
        # The row scope is cached per request (security.scope.current_scope).
        g.pop("_ce_scope", None)

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response
