"""Export exactly the rows a grid shows — its filters and sort, inside the user's
row scope — to .xlsx, streamed (app.services.xlsx_stream) so memory stays flat.

The grid's request is parsed by Flask-AppBuilder itself (`get_filter_args` /
`get_order_args` on the view's search filters and datamodel), joined with the
view's base filters (which hold ScopeFilter), and applied by the datamodel, so
the export and the list page cannot disagree.  The columns are the view's
list columns with its Chinese labels; the query's statement is executed on the
session's connection (Core rows, about twice as fast as ORM `Query.yield_per`),
streamed with `yield_per`, never loaded as ORM objects.

Cells: enum members as their (translated) labels, ID numbers as text (masked for
the roles app.views.formatting masks), dates as dates, numbers as numbers;
xlsx_stream neutralises strings starting with = + - @ (no formula injection).
"""
import datetime
import os
import tempfile
import time

from flask import current_app, request
from flask_appbuilder.urltools import get_filter_args, get_order_args
from flask_babel import gettext as _
from sqlalchemy import Boolean, DateTime, Enum, String, type_coerce
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import aliased

from app.extensions import db
from app.models.enums import label
from app.security.scope import current_scope
from app.services import jobs, xlsx_stream
from app.services.errors import DomainError
from app.services.localtime import to_beijing

BATCH = 5000
PROGRESS_EVERY = 50000  # rows between two progress reports of an export job

# The attribute shown for a relationship column (e.g. PersonView's "unit").
REL_DISPLAY = ("name", "username", "full_name", "code", "id")


class ExportPlan:
    """Column expressions, headers and cell converters for one view's export."""

    def __init__(self, view, scope=None):
        from app.security.scope import sees_full_id
        from app.services.validators import id_number_for_list

        self.view = view
        model = view.datamodel.obj
        mapper = sa_inspect(model)
        self.headers, self.exprs, self.types, self.kinds, self.joins = [], [], [], [], []
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
            self.types.append(expr.type)
            if isinstance(expr.type, Enum):
                # Read the stored string: SQLAlchemy's per-row enum lookup (Python code)
                # costs a fifth of a million-row export; converters() labels each
                # distinct string once instead.
                expr = type_coerce(expr, String())
            self.exprs.append(expr.label(f"c{len(self.exprs)}"))
            self.headers.append(str(view.label_columns.get(col) or col))

    def converters(self, dialect):
        """One function per column (None: the value goes out as it is), chosen from
        the column's SQL type once; xlsx_stream runs each once per distinct value."""
        from app.services.validators import mask_id_number

        yes, no = _("是"), _("否")

        def bool_cell(v):
            return yes if v else no

        funcs = []
        for t, kind in zip(self.types, self.kinds):
            if kind == "mask":
                funcs.append(mask_id_number)
            elif isinstance(t, Enum):
                member = t.dialect_impl(dialect).result_processor(dialect, None)  # stored string -> member
                funcs.append(lambda stored, member=member: label(member(stored)))
            elif isinstance(t, Boolean):
                funcs.append(bool_cell)
            elif isinstance(t, DateTime):
                funcs.append(to_beijing)  # stored UTC, shown as on the page
            else:
                funcs.append(None)
        return funcs


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


def write_xlsx(headers, rows, path, *, title="导出", progress=None, total=None, converters=None,
               text_columns=()):
    """Stream `rows` (sequences of cell values in header order) into an .xlsx at
    `path` with bold `headers`; `converters` and `text_columns` as in
    xlsx_stream.write_xlsx.
    Reports `progress(percent, message)` every PROGRESS_EVERY rows when `total`
    is known.  Returns the row count."""
    reported = 0

    def on_chunk(n):
        nonlocal reported
        if n - reported >= PROGRESS_EVERY:
            reported = n
            progress(min(99, n * 100 // total), _("已导出%(n)d行", n=n))

    return xlsx_stream.write_xlsx(path, headers, rows, title=title, converters=converters,
                                  text_columns=text_columns, on_chunk=on_chunk if progress and total else None)


def export_view(view, path, scope=None, progress=None, total=None):
    """Write the grid's current rows to `path`.  Returns the number of rows."""
    plan = ExportPlan(view, scope or current_scope())
    title = str(getattr(view, "list_title", None) or "导出")
    conn = db.session.connection()
    # yield_per on this statement only (Connection.execution_options would stay on the session's connection)
    with conn.execute(_select(view, plan).statement, execution_options={"yield_per": BATCH}) as result:
        return write_xlsx(plan.headers, result, path, title=title, progress=progress, total=total,
                          converters=plan.converters(conn.dialect),
                          text_columns=[i for i, kind in enumerate(plan.kinds) if kind])


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


# The request's filter arguments may name a person (an ID number, a name): the job
# row keeps them encrypted with the data key ring (SM4-GCM, this purpose as the
# associated data) for the job to replay unchanged, and a masked copy to show.
# RQ's job data carries only the job's id.
QUERY_PURPOSE = "ce_job.params.query"


def job_params(view, total, filename, user):
    """The parameters of a large export's job (views.imports.export_grid)."""
    from app.models.crypto import keyring
    from app.services.audit import mask_personal

    query = request_query()
    return {"view": view.__class__.__name__, "query_sealed": keyring().encrypt(query, QUERY_PURPOSE),
            "query_shown": mask_personal(query), "user_id": user.id, "total": total, "filename": filename}


def job_query(params):
    """The filter arguments of an export job, in clear, for the job to replay."""
    from app.models.crypto import keyring

    sealed = params.get("query_sealed")
    return keyring().decrypt(sealed, QUERY_PURPOSE) if sealed else params.get("query", "")


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

    query = job_query(params)
    with app.test_request_context("/?" + query):
        login_user(user)
        g._ce_scope = scope
        t0 = time.perf_counter()
        n = export_view(view, path, scope=scope, progress=progress, total=params.get("total"))
        seconds = time.perf_counter() - t0
    from app.services import audit

    audit.record("export", view.datamodel.obj.__name__, None, user=user, unit_id=user.unit_id,
                 region_code=user.region_code, rows=n, query=query, job=job_id,
                 id_numbers=id_numbers_in(view, scope))
    db.session.commit()
    return {"rows": n, "seconds": round(seconds, 2), "_path": path, "filename": params.get("filename")}


def id_numbers_in(view, scope=None):
    """"full" or "masked" when the view's export has an ID number column, else None
    (for the export's audit entry)."""
    from app.security.scope import sees_full_id
    from app.services.validators import id_number_for_list

    fmts = getattr(view, "formatters_columns", {}) or {}
    if not any(fmts.get(c) is id_number_for_list for c in view.list_columns):
        return None
    return "full" if sees_full_id(scope) else "masked"


def _find_view(class_name):
    for v in current_app.appbuilder.baseviews:
        if v.__class__.__name__ == class_name:
            return v
    raise DomainError(_("未找到要导出的列表"))


def request_query():
    return request.query_string.decode("utf-8", "replace")
