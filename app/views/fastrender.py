"""What every grid page renders again and again, rendered once (issue 7).

A list page through Flask-AppBuilder's templates spends most of its time in
Jinja, not in the database: the navigation bar asks `has_access` and `gettext`
for every menu item, the search form renders each WTForms field, and the rows
go through a macro call per cell.  None of that changes between two requests
of the same user, except the rows.  Here:

* `navbar()` renders FAB's own `appbuilder/navbar.html` once per user, role
  set, name and language and keeps the HTML.  Users with a database-defined
  role (whose permissions an administrator can edit at run time) are rendered
  every time; builtin roles are code (app/security/roles.py), so their menu
  cannot change without a restart.
* `CESearchWidget` keeps the rendered search fields of a view per language, and
  the whole search form per view, language and active filters; fields filled
  from the database (QuerySelectField: rows in the user's scope) make it render
  every time.
* `grid_header()` renders the bar above a grid (pagination, page size, record
  count) in Python, with FAB's add / back / actions buttons rendered once per
  language; `grid_head()` and `grid_rows()` render the header row and the rows.
  All three keep FAB's markup, links, formatters and escaping.
* `framed()` keeps a whole page as a frame: rendered once per key with a
  marker where each per-request part goes, then filled in on every request.
  A fast grid's list page (FAB's layout, search form, export link: see
  grid.FastListMixin.render_template) and its list widget (`grid_widget`:
  FAB's permissions, add link and action form around the bar, header row and
  rows) are frames per user key (`user_key()`) and view; the rows, the bar,
  the header row, the export link's query string and the CSRF token are the
  per-request parts.  Pages with flashed messages render in full.
* the URLs of static files are built once (`static_url_for`), and the
  templates' gettext finds the request's translations once (`request_translations`).

The caches hold rendered HTML derived from code and a key that names all of
its inputs; they are per app and process, bounded, and no other worker needs
them.  None is used when scripts carry a per-request CSP nonce.
"""
import re
from collections import OrderedDict
from threading import Lock

from flask import current_app, g, render_template, request, session
from flask_appbuilder.fields import QuerySelectField, QuerySelectMultipleField
from flask_appbuilder.widgets import SearchWidget
from flask_babel import _get_current_context as _babel_context
from flask_babel import get_locale, get_translations
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup, escape


class BoundedCache:
    """A small LRU dict, safe across threads of one worker."""

    def __init__(self, size):
        self.size = size
        self._data = OrderedDict()
        self._lock = Lock()

    def get_or_make(self, key, make):
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
                return hit
        value = make()
        with self._lock:
            self._data[key] = value
            if len(self._data) > self.size:
                self._data.popitem(last=False)
        return value


def _cache(name, size):
    """This app's cache `name` (an app's menu and permissions are its own)."""
    caches = current_app.extensions.setdefault("ce_render", {})
    cache = caches.get(name)
    if cache is None:
        cache = caches.setdefault(name, BoundedCache(size))
    return cache


def _html_cacheable():
    """Rendered HTML may be reused unless scripts carry a per-request CSP nonce
    (FAB's get_nonce, e.g. with Flask-Talisman)."""
    return "csp_nonce" not in current_app.jinja_env.globals


def _locale_key():
    return str(get_locale()), session.get("locale")


def user_key():
    """What a page rendered for the signed-in user depends on besides the request:
    language, user, name, role set and 大字版 (app/views/display.py).  None when it must be rendered every time:
    anonymous, or a database-defined role (whose permissions an administrator can
    edit at run time; builtin roles are code, app/security/roles.py).  Once per
    request (app/web.py drops it before each request, with the scope)."""
    if "_ce_user_key" in g:
        return g._ce_user_key
    g._ce_user_key = key = _user_key()
    return key


def _user_key():
    if not current_user.is_authenticated:
        return None
    sm = current_app.appbuilder.sm
    roles = sm.get_user_roles(current_user)
    if any(r.name not in sm.builtin_roles for r in roles):
        return None
    return (_locale_key(), current_user.id, current_user.get_full_name(),
            tuple(sorted(r.name for r in roles)), bool(current_user.large_text))


def navbar():
    """FAB's navigation bar for the signed-in user (Markup)."""
    appbuilder = current_app.appbuilder

    def render():
        return Markup(render_template("appbuilder/navbar.html", appbuilder=appbuilder))

    key = user_key()
    if key is None:
        return render()
    return _cache("navbar", 2048).get_or_make(key, render)


# ---------------------------------------------------------------------------
# Frames: a page rendered once per key with a marker where each per-request
# part goes, then filled in on every request.

_MARK = "\x02ce-slot:%s\x03"
_MARKS = re.compile("\x02ce-slot:(\\w+)\x03")
_NOT_FRAMED = ()  # cached for a page that cannot be framed


def _split(html, names):
    """(text, slot, text, slot, ..., text) of a page rendered with markers, or
    _NOT_FRAMED when a marker was altered on the way (a filter, an escape)."""
    parts = tuple(_MARKS.split(html))
    if html.count("\x02") != len(parts) // 2 or html.count("\x03") != len(parts) // 2:
        return _NOT_FRAMED
    if not set(parts[1::2]) <= set(names):
        return _NOT_FRAMED
    return parts


def framed(name, key, render, slots):
    """`render(values)` renders a page with `values` (slot name -> Markup) in
    place of its per-request parts; `slots` (name -> zero-argument callable)
    computes them for this request; everything else the page shows depends only
    on `key` (None: render every time).  The page is rendered once per key with
    markers, kept split at them, and then only the slots are computed.  The CSRF
    token (read by FAB's macros from the globals) is the slot "csrf": the frame
    is rendered with this request's token, which is then marked.  Pages with
    flashed messages, or when scripts carry a CSP nonce, render every time."""
    if key is None or not _html_cacheable() or "_flashes" in session:
        return render({n: Markup(make()) for n, make in slots.items()})
    slots = dict(slots, csrf=generate_csrf)

    def make_frame():
        html = str(render({n: Markup(_MARK % n) for n in slots if n != "csrf"}))
        token = generate_csrf()
        return _split(html.replace(token, _MARK % "csrf"), slots)

    # A list page's frame is ~20 KB (FAB's layout and scripts): at most ~20 MB a
    # worker; a user not seen for a while gets a page rendered in full once.
    parts = _cache(name, 1024).get_or_make(key, make_frame)
    if parts is _NOT_FRAMED:
        return render({n: Markup(make()) for n, make in slots.items() if n != "csrf"})
    values = {}
    out = list(parts)
    for i in range(1, len(out), 2):
        n = out[i]
        if n not in values:
            values[n] = str(slots[n]())
        out[i] = values[n]
    return Markup("".join(out))


_DYNAMIC_FIELDS = (QuerySelectField, QuerySelectMultipleField)


class CESearchWidget(SearchWidget):
    """FAB's SearchWidget with its static fields rendered once per view and language."""

    def __call__(self, **kwargs):
        form = self.template_args["form"]
        include_cols = self.template_args["include_cols"]
        locale = _locale_key()
        route = self.template_args.get("route_base")
        dict_filters = self.filters.get_search_filters()

        def static():
            labels = {col: str(form[col].label.text) for col in include_cols}
            names = {col: [str(flt.name) for flt in dict_filters[col]] for col in include_cols}
            fields = {col: str(form[col]()) for col in include_cols
                      if not isinstance(form[col], _DYNAMIC_FIELDS)}
            return labels, names, fields

        key = (route, tuple(include_cols), locale)
        labels, names, fields = _cache("search", 512).get_or_make(key, static)
        active = self.filters.get_filters_values_tojson()

        def render():
            form_fields = {col: fields[col] if col in fields else str(form[col]()) for col in include_cols}
            kwargs.update(label_columns=labels, form_fields=form_fields, search_filters=names,
                          active_filters=active)
            # RenderTemplateWidget.__call__, skipping SearchWidget's own field rendering.
            return Markup(super(SearchWidget, self).__call__(**kwargs))

        if kwargs or len(fields) < len(include_cols) or not _html_cacheable():
            return render()  # a field from the database: rendered every time
        # The whole form, per view, language and active filters.
        return _cache("search_html", 512).get_or_make(key + (repr(active),), render)


class LazyForm:
    """A search form built on first use: FAB builds one per list page, but the
    cached search fields need it only for fields filled from the database."""

    def __init__(self, make):
        self._make = make
        self._form = None

    def _real(self):
        if self._form is None:
            self._form = self._make()
        return self._form

    def __getitem__(self, name):
        return self._real()[name]

    def __getattr__(self, name):
        return getattr(self._real(), name)


def lazy_search_form(form_class):
    """`form_class` whose `refresh()` (FAB's _list) returns a LazyForm."""

    class LazySearchForm(form_class):
        @classmethod
        def refresh(cls, obj=None):
            return LazyForm(lambda: form_class(obj=obj))

    return LazySearchForm


def grid_rows(value_columns, pks, include_columns, formatters_columns, with_actions, crud_html):
    """The <tr> rows of a grid page, as ce/widgets/list.html rendered them cell by
    cell: a checkbox when the page has actions, the show/edit/delete links when the
    user may use them (`crud_html`, with __CE_PK__ for the key), then each column
    through its formatter, autoescaped as Jinja would.  Column by column: a
    formatter runs once per distinct value of its column on the page."""
    value_columns = list(value_columns)  # FAB's get_values is a generator: read it once
    columns = [_column_cells(value_columns, col, formatters_columns.get(col)) for col in include_columns]
    crud = str(crud_html).split("__CE_PK__") if crud_html else None
    out = []
    select_row = escape(_("选择此行"))  # the checkbox's name for a screen reader (issue 27)
    for pk, cells in zip(pks, zip(*columns)):
        pk = str(escape(pk))
        head = (f'<td><input id="{pk}" class="action_check" name="rowid" value="{pk}" type="checkbox" '
                f'aria-label="{select_row}"></td>' if with_actions else "")
        if crud:
            head += "<td><center>" + pk.join(crud) + "</center></td>"
        out.append("<tr>" + head + "<td>" + "</td><td>".join(cells) + "</td></tr>")
    return Markup("\n".join(out))


def _column_cells(value_columns, col, fmt):
    seen = {}
    cells = []
    for item in value_columns:
        value = item[col]
        # (True and 1, Decimal 8 and 8.0 are different cells)
        key = value if value.__class__ is str else (value.__class__, value)
        try:
            cell = seen[key]
        except KeyError:
            cell = seen[key] = str(escape(fmt(value) if fmt else value))
        except TypeError:  # unhashable
            cell = str(escape(fmt(value) if fmt else value))
        cells.append(cell)
    return cells


def grid_head(include_columns, order_columns, label_columns, modelview_name, with_actions, with_crud):
    """The <thead> of a grid page as FAB's list template renders it: a sort link per
    orderable column (FAB's link_order: the same column again flips the direction)
    with its arrow, built from this page's URL in one pass."""
    from app.views.grid import same_page_url

    args = request.args.to_dict()
    oc, od = "_oc_" + modelview_name, "_od_" + modelview_name
    current, direction = args.get(oc), args.get(od)
    cells = []
    if with_actions:
        cells.append('<th class="action_checkboxes"><input id="check_all" class="action_check_all" '
                     f'name="check_all" type="checkbox" aria-label="{escape(_("全选本页"))}"></th>')
    if with_crud:
        cells.append(f'<th class="col-md-1 col-lg-1 col-sm-1"><span class="sr-only">{escape(_("操作"))}</span></th>')
    labels = _cache("labels", 512).get_or_make(
        (modelview_name, tuple(include_columns), _locale_key()),
        lambda: [escape(label_columns.get(col)) for col in include_columns])
    for col, label in zip(include_columns, labels):
        if col not in order_columns:
            cells.append(f"<th>{label}</th>")
            continue
        flip = "desc" if oc in args and direction == "asc" else "asc"
        href = escape(same_page_url(dict(args, **{oc: col, od: flip})))
        if current == col:
            icon = "fa-chevron-up" if direction == "asc" else "fa-chevron-down"
        else:
            icon = "fa-arrows-v"
        cells.append(f'<th><a href="{href}">{label}\n<i class="fa {icon} pull-right"></i></a></th>')
    return Markup("<thead>\n<tr>\n" + "\n".join(cells) + "\n</tr>\n</thead>")


def static_url_for(url_for):
    """Jinja's url_for, remembering the URLs of static files (FAB's layout asks for
    some twenty on every page; each is a route build)."""

    def cached_url_for(endpoint, **values):
        if endpoint.endswith("static") and set(values) == {"filename"}:
            key = (request.script_root, endpoint, values["filename"])
            return _cache("static_url", 1024).get_or_make(key, lambda: url_for(endpoint, **values))
        return url_for(endpoint, **values)

    return cached_url_for


def request_translations():
    """Flask-Babel's translations of this request, looked up once per request:
    its own lookup walks the context and the locale selector again on every
    gettext (a list page has a hundred).  Kept where Flask-Babel keeps the
    request's locale (its context namespace on `g`), and follows
    `flask_babel.refresh()`, which drops that locale."""
    ctx = _babel_context()
    if ctx is None:
        return get_translations()
    cached = getattr(ctx, "ce_translations", None)
    locale = getattr(ctx, "babel_locale", None)
    if cached is None or locale is None or cached[0] is not locale:
        translations = get_translations()
        cached = ctx.ce_translations = (getattr(ctx, "babel_locale", None), translations)
    return cached[1]


def _pagination(grid, page_url):
    """Pages around the current one, a next page when one exists, the last page
    only when the count is exact (a capped count knows no last page)."""
    page, count = grid.page, grid.count
    pages = -(-int(count) // grid.page_size)
    if count.capped:
        pages = max(pages, page + 2)
    if pages <= 1:
        return ""

    def link(p, text):
        return f'<li><a href="{escape(page_url(p))}">{text}</a></li>'

    disabled = '<li class="disabled"><a href="#">{}</a></li>'.format
    out = ['<ul class="pagination pagination-sm ce-pagination" style="display:inherit;">']
    if page > 0:
        out += [link(0, "&laquo;"), link(page - 1, "&lt;")]
    else:
        out += [disabled("&laquo;"), disabled("&lt;")]
    lo, hi = max(page - 3, 0), min(page + 4, pages)
    for p in range(lo, hi):
        out.append(f'<li class="active"><a href="#">{p + 1}</a></li>' if p == page else link(p, p + 1))
    out.append(link(page + 1, "&gt;") if page + 1 < pages else disabled("&gt;"))
    out.append(link(pages - 1, "&raquo;") if not count.capped and hi < pages else disabled("&raquo;"))
    out.append("</ul>")
    return "\n".join(out)


def _page_size_menu(grid, modelview_name):
    """FAB's render_set_page_size: the sizes 25-100 that still reach this page."""
    from app.views.grid import same_page_url

    page, count, size = grid.page or 0, grid.count, grid.page_size
    if -(-int(count) // size) <= 1:
        return ""
    args = request.args.to_dict()
    items = []
    for sel in range(25, 125, 25):
        if page * sel > count:
            continue
        href = escape(same_page_url(dict(args, **{"psize_" + modelview_name: sel})))
        active = ' class="active"' if sel == size else ""
        items.append(f'<li{active}><a href="{href}">{sel}</a></li>')
    label = escape(_("Page size"))
    return (
        '<div class="btn-group">\n<button type="button" class="btn btn-default btn-sm dropdown-toggle" '
        f'data-toggle="dropdown">\n{label}<span class="caret"></span>\n'
        '</button>\n<ul class="dropdown-menu" role="menu">\n' + "\n".join(items) + "\n</ul>\n</div>"
    )


def _fab_macro(name, *args, key=None):
    """A macro of FAB's lib.html, rendered once per arguments (or `key`, naming
    them) and language: the add, back and actions buttons, whose markup, labels
    and script depend on nothing else."""
    def render():
        module = current_app.jinja_env.get_template("appbuilder/general/lib.html").module
        return Markup(getattr(module, name)(*args))

    if not _html_cacheable():
        return render()
    key = (name, args if key is None else key, _locale_key())
    return _cache("macro", 1024).get_or_make(key, render)


def grid_header(grid, page_url, exact_count_url, can_add, add_path, actions, modelview_name):
    """The bar above a grid: pagination, page size, add, actions, back, and the
    record count (exact, or "超过 N 条" with a button for the exact count)."""
    parts = [_pagination(grid, page_url), _page_size_menu(grid, modelview_name)]
    if can_add and add_path:
        parts.append(_fab_macro("lnk_add", add_path))
    if actions:
        described = tuple((k, a.name, str(a.text), str(a.confirmation or ""), a.icon) for k, a in actions.items())
        parts.append(_fab_macro("render_actions", actions, modelview_name, key=(described, modelview_name)))
    parts.append(_fab_macro("lnk_back"))
    label = escape(_("Record Count"))
    if grid.count.capped:
        capped = escape(_("超过 %(n)s 条", n=int(grid.count)))
        count_all = escape(_("统计总数"))
        parts.append(
            f'<div class="pull-right ce-record-count">\n<strong>{label}:</strong>\n'
            f'<span class="ce-count-capped">{capped}</span>\n'
            f'<a href="{escape(exact_count_url)}" class="btn btn-xs btn-default ce-exact-count">{count_all}</a>\n</div>'
        )
    else:
        parts.append(f'<div class="pull-right ce-record-count">\n<strong>{label}:</strong> '
                     f'<span class="ce-count">{int(grid.count)}</span>\n</div>')
    return Markup("\n".join(p for p in parts if p))


def _crud_template(can_show, can_edit, can_delete, row_urls):
    """The show / edit / delete links of a row around the placeholder key
    __CE_PK__ (ce/widgets/grid_lib.html), rendered once per language."""
    def render():
        module = current_app.jinja_env.get_template("ce/widgets/grid_lib.html").module
        return Markup(module.btn_crud_template(can_show, can_edit, can_delete, row_urls))

    if not _html_cacheable():
        return render()
    key = (can_show, can_edit, can_delete, tuple(sorted(row_urls.items())), _locale_key())
    return _cache("crud", 1024).get_or_make(key, render)


def grid_widget(widget):
    """A fast grid's list widget (ce/widgets/grid.html): FAB's permissions, add
    link and actions as base_list.html works them out, the bar, header row and
    rows rendered in Python, and the rest kept as a frame per user and view."""
    args = widget.template_args
    name = args["modelview_name"]
    filters = current_app.jinja_env.filters
    visible = filters["is_item_visible"]

    def permissions():
        return (tuple(visible(p, name) for p in ("can_add", "can_show", "can_edit", "can_delete"))
                + (tuple(filters["get_actions_on_list"](args["actions"], name)),))

    ukey = user_key()
    if ukey is None:
        perms = permissions()
    else:  # builtin roles: their permissions are code
        perms = _cache("grid_permissions", 2048).get_or_make((name, ukey[3]), permissions)
    can_add, can_show, can_edit, can_delete, action_keys = perms
    actions = {k: args["actions"][k] for k in action_keys}
    with_crud = can_show or can_edit or can_delete
    crud = _crud_template(can_show, can_edit, can_delete, args["row_urls"]) if with_crud else ""
    add_path = filters["safe_url_for"](name + ".add") if can_add else None
    if add_path:
        add_path = filters["set_link_filters"](add_path, args["filters"])
    grid = args["grid"]

    def header():
        return grid_header(grid, args["page_url"], args["exact_count_url"], can_add, add_path, actions, name)

    def head():
        return grid_head(args["include_columns"], args["order_columns"], args["label_columns"], name,
                         actions, with_crud)

    def rows():
        return grid_rows(args["value_columns"], args["pks"], args["include_columns"],
                         args["formatters_columns"], actions, crud)

    template = current_app.jinja_env.get_template(widget.grid_template)

    def render(values):
        return Markup(template.render(count=grid.count, actions=actions, modelview_name=name, **values))

    key = None if ukey is None else (widget.grid_template, name, ukey, int(grid.count) > 0, action_keys, crud)
    return framed("grid_frame", key, render, {"header": header, "head": head, "rows": rows})


def register(app):
    app.jinja_env.globals["url_for"] = static_url_for(app.jinja_env.globals["url_for"])
    # The templates' _() / ngettext with the request's translations (Flask-Babel
    # installs the same callables around its per-call lookup).
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: request_translations().ugettext(s),
        ngettext=lambda s, p, n: request_translations().ungettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, s: request_translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: request_translations().unpgettext(c, s, p, n),
    )
    app.add_template_global(navbar, "ce_navbar")
    app.add_template_global(grid_rows, "ce_grid_rows")
    app.add_template_global(grid_head, "ce_grid_head")
