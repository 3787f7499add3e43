"""Export exactly the rows a grid shows — its filters and sort, inside the user's
row scope — to .xlsx, streamed (openpyxl write-only) so memory stays flat.

The grid's request is parsed by Flask-AppBuilder itself (`get_filter_args` /
`get_order_args` on the view's search filters and datamodel), joined with the
view's base filters (which hold ScopeFilter), and applied by the datamodel, so
the export and the list page cannot disagree.  The columns are the view's
list columns with its Chinese labels; rows are read as plain tuples with
`yield_per`, never as ORM objects.

Cells: enum members as their (translated) labels, ID numbers as text (masked for
the roles app.views.formatting masks), dates as dates, numbers as numbers, and
strings starting with = + - @ prefixed with an apostrophe (no formula injection).
"""
import datetime
import decimal
import enum
import os
import tempfile
import time

from flask import current_app, request
from flask_appbuilder.urltools import get_filter_args, get_order_args
from flask_babel import gettext as _
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import aliased

from app.extensions import db
from app.models.enums import label
from app.security.scope import current_scope
from app.services import jobs
from app.services.errors import DomainError

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
BATCH = 5000

# The attribute shown for a relationship column (e.g. PersonView's "unit").
REL_DISPLAY = ("name", "username", "full_name", "code", "id")


def neutralise(value):
    """A string that a spreadsheet would run as a formula gets a leading apostrophe."""
    if value and value[0] in DANGEROUS:
        return "'" + value
    return value


class ExportPlan:
    """Column expressions, headers and cell converters for one view's export."""

    def __init__(self, view, scope=None):
        from app.views.formatting import id_number_for_list, sees_full_id

        self.view = view
        model = view.datamodel.obj
        mapper = sa_inspect(model)
        self.headers, self.exprs, self.kinds, self.joins = [], [], [], []
        aliases = {}
        mask = not sees_full_id(scope)
        formatters = getattr(view, "formatters_columns", {}) or {}
        for col in view.list_columns:
            root, _dot, leaf = col.partition(".")
            if leaf:
                rel = mapper.relationships.get(root)
                if rel is None:
                    continue
                alias = aliases.get(root)
                if alias is None:
                    alias = aliases[root] = aliased(rel.mapper.class_, name=f"x_{root}")
                    self.joins.append((alias, getattr(model, root)))
                expr = getattr(alias, leaf, None)
                if expr is None:
                    continue
            elif root in mapper.relationships:
                rel = mapper.relationships[root]
                if rel.uselist:
                    continue
                target = rel.mapper.class_
                attr = next((a for a in REL_DISPLAY if a in sa_inspect(target).column_attrs), None)
                if attr is None:
                    continue
                alias = aliases.get(root)
                if alias is None:
                    alias = aliases[root] = aliased(target, name=f"x_{root}")
                    self.joins.append((alias, getattr(model, root)))
                expr = getattr(alias, attr)
            elif root in mapper.column_attrs:
                expr = getattr(model, root)
            else:
                continue  # a Python property: not exportable set-based
            fmt = formatters.get(col)
            is_id = fmt is id_number_for_list
            self.kinds.append("mask" if is_id and mask else ("text" if is_id else None))
            self.exprs.append(expr.label(f"c{len(self.exprs)}"))
            self.headers.append(str(view.label_columns.get(col) or col))

    def converters(self):
        """One function per column (None: the value goes out as it is), chosen from
        the column's SQL type once, so the per-row work is a list comprehension."""
        from sqlalchemy import Boolean, Enum, Numeric, String, Text

        from app.services.validators import mask_id_number

        labels = {}

        def enum_cell(v):
            text = labels.get(v)
            if text is None:
                text = labels[v] = label(v)  # gettext once per member, not per cell
            return text

        def text_cell(v):
            return "'" + v if v and v[0] in DANGEROUS else v

        def masked_cell(v):
            return text_cell(mask_id_number(v))

        def number_cell(v):
            f = float(v)
            return int(f) if f.is_integer() else f

        yes, no = _("是"), _("否")

        def bool_cell(v):
            return yes if v else no

        funcs = []
        for expr, kind in zip(self.exprs, self.kinds):
            t = expr.type
            if kind == "mask":
                funcs.append(masked_cell)
            elif isinstance(t, Enum):
                funcs.append(enum_cell)
            elif isinstance(t, Boolean):
                funcs.append(bool_cell)
            elif isinstance(t, Numeric) and getattr(t, "asdecimal", False):
                funcs.append(number_cell)
            elif isinstance(t, (String, Text)):
                funcs.append(text_cell)
            else:
                funcs.append(None)
        return funcs

    def convert(self, row):
        """Generic conversion of one row (used where the SQL types are unknown)."""
        out = []
        for value, kind in zip(row, self.kinds):
            if value is None:
                out.append(None)
            elif isinstance(value, str):
                if kind == "mask":
                    from app.services.validators import mask_id_number

                    value = mask_id_number(value)
                out.append(neutralise(value) if value[:1] in DANGEROUS else value)
            elif isinstance(value, enum.Enum):
                out.append(label(value))
            elif isinstance(value, decimal.Decimal):
                f = float(value)
                out.append(int(f) if f.is_integer() else f)
            elif isinstance(value, bool):
                out.append(_("是") if value else _("否"))
            else:
                out.append(value)  # int, float, date, datetime
        return out

    def rows(self, result):
        funcs = self.converters()
        pairs = list(enumerate(funcs))
        if all(f is None for f in funcs):
            return (list(r) for r in result)
        active = [(i, f) for i, f in pairs if f is not None]

        def gen():
            for r in result:
                r = list(r)
                for i, f in active:
                    v = r[i]
                    if v is not None:
                        r[i] = f(v)
                yield r

        return gen()


def grid_query(view, args=None):
    """The grid's query exactly as its list page builds it, without paging."""
    dm = view.datamodel
    filters = dm.get_filters(view.search_columns, getattr(view, "search_filters", None) or {})
    get_filter_args(filters)
    joined = filters.get_joined_filters(view._base_filters)
    order = get_order_args().get(view.__class__.__name__)
    if order:
        order_column, order_direction = order
    elif view.base_order:
        order_column, order_direction = view.base_order
    else:
        order_column, order_direction = "", ""
    if order_column and order_column not in (view.order_columns or []) and (order_column, order_direction) != tuple(view.base_order or ()):
        order_column, order_direction = "", ""
    query = dm.session.query(dm.obj)
    query = dm.apply_all(query, joined, order_column, order_direction)
    # A stable order for ties (FAB pages by the same rule).
    pk = dm.get_pk()
    if order_column and getattr(dm.obj, order_column, None) is not pk:
        query = query.order_by(pk.desc() if order_direction == "desc" else pk.asc())
    return query


def _select(view, plan):
    query = grid_query(view)
    for alias, rel in plan.joins:
        query = query.outerjoin(alias, rel)
    return query.with_entities(*plan.exprs)


def count_rows(view):
    return grid_query(view).order_by(None).count()


def write_xlsx(headers, rows, path, *, title="导出", progress=None, total=None):
    """Stream `rows` (iterables of cell values) into an .xlsx at `path`; returns the row count."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title[:31])
    bold = Font(bold=True)
    head = []
    for h in headers:
        c = WriteOnlyCell(ws, value=h)
        c.font = bold
        head.append(c)
    ws.append(head)
    n = 0
    append = ws.append
    for row in rows:
        append(row)
        n += 1
        if progress and total and n % 50000 == 0:
            progress(min(99, n * 100 // total), _("已导出%(n)d行", n=n))
    wb.save(path)
    return n


def export_view(view, path, scope=None, progress=None, total=None):
    """Write the grid's current rows to `path`.  Returns the number of rows."""
    plan = ExportPlan(view, scope or current_scope())
    stmt = _select(view, plan).yield_per(BATCH)
    title = str(getattr(view, "list_title", None) or "导出")
    return write_xlsx(plan.headers, plan.rows(stmt), path, title=title,
                      progress=progress, total=total)


def export_dir():
    folder = os.path.join(current_app.config["VAR_DIR"], "exports")
    os.makedirs(folder, exist_ok=True)
    return folder


def export_filename(view):
    title = str(getattr(view, "list_title", None) or "导出")
    return f"{title}_{datetime.datetime.now():%Y%m%d%H%M%S}.xlsx"


def temp_path():
    fd, path = tempfile.mkstemp(suffix=".xlsx", dir=export_dir())
    os.close(fd)
    return path


# ---- large exports as jobs: the request's filter arguments are replayed in the job


@jobs.handler("export")
def _job_export(job_id, params, progress):
    from app.models import CEUser
    from app.security.scope import scope_of

    user = db.session.get(CEUser, params["user_id"])
    if user is None:
        raise DomainError(_("用户不存在"))
    view = _find_view(params["view"])
    scope = scope_of(user)
    path = os.path.join(export_dir(), f"job-{job_id}.xlsx")
    app = current_app._get_current_object()
    # FAB's argument parsers and the scope read the request and the signed-in user.
    from flask import g
    from flask_login import login_user

    with app.test_request_context("/?" + params.get("query", "")):
        login_user(user)
        g._ce_scope = scope
        t0 = time.perf_counter()
        n = export_view(view, path, scope=scope, progress=progress, total=params.get("total"))
        seconds = time.perf_counter() - t0
    from app.services import audit

    audit.record("export", view.datamodel.obj.__name__, None, user=user, unit_id=user.unit_id,
                 region_code=user.region_code, rows=n, query=params.get("query", ""), job=job_id)
    db.session.commit()
    return {"rows": n, "seconds": round(seconds, 2), "_path": path, "filename": params.get("filename")}


def _find_view(class_name):
    for v in current_app.appbuilder.baseviews:
        if v.__class__.__name__ == class_name:
            return v
    raise DomainError(_("未找到要导出的列表"))


def request_query():
    return request.query_string.decode("utf-8", "replace")
