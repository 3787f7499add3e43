"""The two parts of a list page that are the same on every request of a user
and cost the most to render (docs/performance.md): Flask-AppBuilder's navigation
bar and a grid's search form.  Both are rendered by FAB's own templates and
widgets, through their public entry points, and kept as HTML:

* the navigation bar per language, user, name and role set, for users whose
  roles are all builtin (app/security/roles.py: their menu is code and cannot
  change without a restart); a user with a role defined in the database gets
  the bar rendered on every request;
* a grid's search form per view, its columns, language and active filters,
  when none of its fields is filled from the database (a drop-down of rows in
  scope renders every time).

A fragment that carries this response's CSP nonce (Flask-Talisman's
csp_nonce, new on every response: FAB's search form has a script) is kept with
the nonce replaced by a placeholder, and each response that serves it puts its
own nonce back; a kept fragment never carries another response's nonce.  The
caches are per app and process and bounded.
"""
import re
from collections import OrderedDict
from threading import Lock

from flask import current_app, render_template, session
from flask_appbuilder.fields import QuerySelectField, QuerySelectMultipleField
from flask_appbuilder.widgets import SearchWidget
from flask_babel import get_locale
from flask_login import current_user
from markupsafe import Markup


class BoundedCache:
    """A small LRU dict, safe across the threads of one worker."""

    def __init__(self, size):
        self.size = size
        self._data = OrderedDict()
        self._lock = Lock()

    def get(self, key):
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
            return hit

    def put(self, key, value):
        with self._lock:
            self._data[key] = value
            if len(self._data) > self.size:
                self._data.popitem(last=False)


def _cache(name, size):
    """This app's cache `name` (an app's menu and views are its own)."""
    caches = current_app.extensions.setdefault("ce_pagecache", {})
    cache = caches.get(name)
    if cache is None:
        cache = caches.setdefault(name, BoundedCache(size))
    return cache


_NONCE_ATTR = re.compile(r"""\snonce\s*=""", re.I)
_PLACEHOLDER = "\x00ce-csp-nonce\x00"  # cannot occur in rendered HTML


def _nonce():
    """This response's nonce, from where the templates take it (Flask-Talisman's
    csp_nonce global; "" while the CSP is off)."""
    return current_app.jinja_env.globals["csp_nonce"]()


def _keep_nonce_free(make):
    """`make()` rendered, as (HTML for this response, HTML to keep): the kept copy
    has this response's nonce replaced by the placeholder, or is None when it
    carries a nonce attribute that is not this response's (it cannot be kept)."""
    def render():
        html = make()
        nonce = _nonce()
        kept = html.replace(nonce, _PLACEHOLDER) if nonce else html
        return html, (None if _NONCE_ATTR.search(kept.replace(f'nonce="{_PLACEHOLDER}"', "")) else kept)
    return render


def _cached_fragment(cache, key, make):
    """The fragment under `key` with this response's nonce in it."""
    hit = cache.get(key)
    if hit is not None:
        return Markup(hit.replace(_PLACEHOLDER, _nonce()))
    html, kept = _keep_nonce_free(make)()
    if kept is not None:
        cache.put(key, kept)
    return html


def _locale_key():
    return str(get_locale()), session.get("locale")


def navbar():
    """FAB's navigation bar (appbuilder/navbar.html) for the signed-in user."""
    appbuilder = current_app.appbuilder

    def render():
        return Markup(render_template("appbuilder/navbar.html", appbuilder=appbuilder))

    if not current_user.is_authenticated:
        return render()
    sm = appbuilder.sm
    roles = sm.get_user_roles(current_user)
    if any(r.name not in sm.builtin_roles for r in roles):
        return render()  # an administrator may change a database role's menu at run time
    key = (_locale_key(), current_user.id, current_user.get_full_name(), tuple(sorted(r.name for r in roles)),
           bool(current_user.large_text))  # 大字版 changes the navbar (app/views/display.py)
    # ~10 KB a user: at most ~20 MB a worker.
    return _cached_fragment(_cache("navbar", 2048), key, render)


_DYNAMIC_FIELDS = (QuerySelectField, QuerySelectMultipleField)


class CachedSearchWidget(SearchWidget):
    """FAB's search form, kept per view, columns, language and active filters."""

    def __call__(self, **kwargs):
        form = self.template_args["form"]
        include_cols = self.template_args["include_cols"]
        for col in include_cols:
            # A column default that is computed (datetime.utcnow) would prefill the
            # filter's input with the moment of rendering, in UTC: filters start empty.
            if callable(getattr(form[col], "default", None)):
                form[col].data = form[col].raw_data = None
        if kwargs or any(isinstance(form[col], _DYNAMIC_FIELDS) for col in include_cols):
            return super().__call__(**kwargs)
        key = (self.template_args.get("route_base"), tuple(include_cols), _locale_key(),
               repr(self.filters.get_filters_values_tojson()))
        return _cached_fragment(_cache("search", 1024), key,
                                lambda: Markup(super(CachedSearchWidget, self).__call__()))


def register(app):
    app.add_template_global(navbar, "ce_navbar")
