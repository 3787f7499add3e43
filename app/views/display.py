"""The 大字版 (larger text) switch of the user menu (issue 27).

The menu item posts here with the page's CSRF token (static/js/a11y.js) and the
page reloads in the new size; without script it opens this page, whose button
does the same.  The setting is stored on the account (services.accounts)."""
from urllib.parse import urlsplit

from flask import redirect, request, url_for
from flask_appbuilder import BaseView, expose
from flask_babel import get_locale
from flask_login import current_user

from app.services import accounts


def _back():
    """Where to return: the page the switch was used on, if it is one of ours."""
    target = request.form.get("next") or request.args.get("next") or ""
    if target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("HomeView.index")


def _same_site(url):
    """The path of `url` when it is a page of this site (the referrer), else ""."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.netloc != request.host:
        return ""
    return parts.path + ("?" + parts.query if parts.query else "")


class LargeTextView(BaseView):
    route_base = "/account/large-text"
    default_view = "index"

    @expose("/", methods=["GET", "POST"])
    def index(self):
        if not current_user.is_authenticated:
            return redirect(url_for("AuthDBView.login"))
        if request.method == "POST":
            accounts.set_large_text(current_user, request.form.get("large_text") == "1")
            if request.headers.get("X-Requested-With") == "fetch":
                return {"large_text": current_user.large_text}
            return redirect(_back())
        return self.render_template("accounts/large_text.html", large=current_user.large_text,
                                    next=request.args.get("next") or _same_site(request.referrer))


def html_lang():
    """The `lang` of <html>: BCP 47 for the page's language (zh -> zh-CN)."""
    return "en" if str(get_locale() or "zh").startswith("en") else "zh-CN"


def register(app):
    app.add_template_global(html_lang, "ce_html_lang")
