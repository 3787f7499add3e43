"""A grid page's table in Python, with Flask-AppBuilder's markup (issue 7).

FAB's list template calls a Jinja macro per cell and builds each sort and page
link with url_for; at 25 rows and a dozen columns that is most of a page's
time.  Here the bar above a grid (pagination, page size, record count, FAB's
add / back / actions buttons), the header row and the rows are built as
strings, with FAB's links, formatters and escaping.  Nothing is cached: each
request renders its own page.
"""
from urllib.parse import urlencode

from flask import current_app, request
from flask_babel import gettext as _
from markupsafe import Markup, escape


def same_page_url(args):
    """This page's URL with other query arguments (a list page's links differ only
    in them; one url_for per link costs a route build each)."""
    path = request.script_root + request.path
    return path + "?" + urlencode(args) if args else path


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
    args = request.args.to_dict()
    oc, od = "_oc_" + modelview_name, "_od_" + modelview_name
    current, direction = args.get(oc), args.get(od)
    cells = []
    if with_actions:
        cells.append('<th class="action_checkboxes"><input id="check_all" class="action_check_all" '
                     f'name="check_all" type="checkbox" aria-label="{escape(_("全选本页"))}"></th>')
    if with_crud:
        cells.append(f'<th class="col-md-1 col-lg-1 col-sm-1"><span class="sr-only">{escape(_("操作"))}</span></th>')
    for col in include_columns:
        label = escape(label_columns.get(col))
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


def _fab_macro(name, *args):
    """A macro of FAB's lib.html (the add, back and actions buttons)."""
    module = current_app.jinja_env.get_template("appbuilder/general/lib.html").module
    return Markup(getattr(module, name)(*args))


def grid_header(grid, page_url, exact_count_url, can_add, add_path, actions, modelview_name):
    """The bar above a grid: pagination, page size, add, actions, back, and the
    record count (exact, or "超过 N 条" with a button for the exact count)."""
    parts = [_pagination(grid, page_url), _page_size_menu(grid, modelview_name)]
    if can_add and add_path:
        parts.append(_fab_macro("lnk_add", add_path))
    if actions:
        parts.append(_fab_macro("render_actions", actions, modelview_name))
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
    __CE_PK__ (ce/widgets/grid_lib.html), rendered once per page."""
    module = current_app.jinja_env.get_template("ce/widgets/grid_lib.html").module
    return Markup(module.btn_crud_template(can_show, can_edit, can_delete, row_urls))


def grid_widget(widget):
    """A fast grid's list widget (ce/widgets/grid.html): FAB's permissions, add
    link and actions as base_list.html works them out, and the bar, header row
    and rows rendered in Python."""
    args = widget.template_args
    name = args["modelview_name"]
    filters = current_app.jinja_env.filters
    visible = filters["is_item_visible"]
    can_add, can_show, can_edit, can_delete = (visible(p, name) for p in ("can_add", "can_show", "can_edit",
                                                                          "can_delete"))
    actions = {k: args["actions"][k] for k in filters["get_actions_on_list"](args["actions"], name)}
    with_crud = can_show or can_edit or can_delete
    crud = _crud_template(can_show, can_edit, can_delete, args["row_urls"]) if with_crud else ""
    add_path = filters["safe_url_for"](name + ".add") if can_add else None
    if add_path:
        add_path = filters["set_link_filters"](add_path, args["filters"])
    grid = args["grid"]
    template = current_app.jinja_env.get_template(widget.grid_template)
    return Markup(template.render(
        count=grid.count, actions=actions, modelview_name=name,
        header=grid_header(grid, args["page_url"], args["exact_count_url"], can_add, add_path, actions, name),
        head=grid_head(args["include_columns"], args["order_columns"], args["label_columns"], name,
                       actions, with_crud),
        rows=grid_rows(args["value_columns"], args["pks"], args["include_columns"],
                       args["formatters_columns"], actions, crud),
    ))


def register(app):
    app.add_template_global(grid_rows, "ce_grid_rows")
    app.add_template_global(grid_head, "ce_grid_head")
