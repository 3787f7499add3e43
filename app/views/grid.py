"""The list page of every scoped grid, fast at province scale.

`FastListMixin` replaces FAB's list query (a full COUNT(*) and an OFFSET over
whole rows on every page) with `CEInterface.query_page`: a capped count, an id
page from an index, one joined query for the rows, and keyset anchors in the
page links.  The count is exact on request (`count_<View>=exact`).  Views whose
datamodel is not a CEInterface, or that sort by a related column, keep FAB's
behaviour.
"""
import copy
from functools import partial

from flask import flash, has_request_context, request, session, url_for
from flask_appbuilder.fields import QuerySelectField
from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
from flask_appbuilder.widgets import ListWidget
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape
from wtforms import StringField

from app.fab.datamodel import LOOKUP_COLUMNS, SEARCH_SELECT_LIMIT, CEInterface, filter_value_problems
from app.fab.filters import RequestFiltersMixin
from app.views.gridrender import grid_widget, same_page_url
from app.views.pagecache import CachedSearchWidget


class CEListWidget(ListWidget):
    """FAB's list widget; a fast grid's (with a GridPage) is ce/widgets/grid.html."""

    template = "ce/widgets/list.html"
    grid_template = "ce/widgets/grid.html"

    def __call__(self, **kwargs):
        if self.template_args.get("grid") is None or kwargs:
            return super().__call__(**kwargs)
        return grid_widget(self)


def _grid_url(view_name, page=None, anchor="", exact=False):
    args = request.args.to_dict()
    if page is not None:
        args["page_" + view_name] = page
    if anchor:
        args["anchor_" + view_name] = anchor
    else:
        args.pop("anchor_" + view_name, None)
    if exact:
        args["count_" + view_name] = "exact"
    return same_page_url(args)


class FastListMixin(RequestFiltersMixin):
    list_widget = CEListWidget
    search_widget = CachedSearchWidget
    # Search drop-downs of related rows (persons, units) show at most this many.
    search_select_limit = SEARCH_SELECT_LIMIT

    def render_template(self, template, **kwargs):
        # The search panel is open while filters are active (imports/grid_list.html).
        kwargs.setdefault("ce_filters_active", bool(has_request_context() and self._filters.filters))
        return super().render_template(template, ce_query_suffix=query_suffix, **kwargs)

    def update_redirect(self):
        """FAB's back history, which skips a URL equal to the last one, but also
        writes the session back (a new signed cookie) when it skipped: not then."""
        history = session.get("page_history")
        if history and history[-1] == request.url:
            return
        super().update_redirect()

    def _init_forms(self):
        super()._init_forms()
        # FAB fills a search drop-down with every related row in scope: a million
        # persons for a bureau.  Persons, units and users are typed instead (name
        # or number, see datamodel.LOOKUP_COLUMNS); other relations list at most
        # `search_select_limit` rows (the filter itself takes any id).
        for name in self.search_columns:
            unbound = getattr(self.search_form, name, None)
            if unbound is None or getattr(unbound, "field_class", None) is not QuerySelectField:
                continue
            related = self.datamodel.get_related_model(name)
            if related.__name__ in LOOKUP_COLUMNS:
                label = unbound.args[0] if unbound.args else unbound.kwargs.get("label")
                setattr(self.search_form, name, StringField(
                    label, widget=BS3TextFieldWidget(), render_kw={"placeholder": str(_l("名称或编号"))},
                ))
            else:
                unbound.kwargs["query_func"] = self._limited_related_query(name)

    def _limited_related_query(self, col_name):
        datamodel = self.datamodel.get_related_interface(col_name)
        rel_filters = (self.search_form_query_rel_fields or {}).get(col_name)
        limit = self.search_select_limit

        def query_func():
            filters = datamodel.get_filters()
            if rel_filters:
                filters = filters.add_filter_list(rel_filters)
            if isinstance(datamodel, CEInterface):
                return datamodel.query_page(filters, page=0, page_size=limit, count=False).items
            return datamodel.query(filters, page=0, page_size=limit)[1]

        return query_func

    def _get_list_widget(self, filters, actions=None, order_column="", order_direction="",
                         page=None, page_size=None, widgets=None, **kwargs):
        if not order_column and self.base_order:
            order_column, order_direction = self.base_order
        if not isinstance(self.datamodel, CEInterface) or not self.datamodel._simple_order(order_column):
            return super()._get_list_widget(
                filters, actions=actions, order_column=order_column, order_direction=order_direction,
                page=page, page_size=page_size, widgets=widgets, **kwargs,
            )
        widgets = widgets or {}
        actions = actions or self.actions
        page_size = page_size or self.page_size
        name = self.__class__.__name__
        for problem in filter_value_problems(filters, self.label_columns):
            flash(problem, "warning")  # the filter matches nothing (datamodel._TypedFilter)
        grid = self.datamodel.query_page(
            joined_filters(filters, self._base_filters),
            order_column, order_direction, page=page or 0, page_size=page_size,
            list_columns=self.list_columns,
            exact_count=request.args.get("count_" + name) == "exact",
            as_values=True,
        )
        if grid.values is not None:
            pks, values = grid.pks, grid.values
        else:
            pks = [self._serialize_pk_if_composite(pk) for pk in self.datamodel.get_keys(grid.items)]
            values = self.datamodel.get_values(grid.items, self.list_columns)
        widgets["list"] = self.list_widget(
            label_columns=self.label_columns,
            include_columns=self.list_columns,
            value_columns=values,
            order_columns=self.order_columns,
            formatters_columns=self.formatters_columns,
            page=grid.page,
            page_size=page_size,
            count=grid.count,
            pks=pks,
            actions=actions,
            filters=filters,
            modelview_name=name,
            grid=grid,
            page_url=partial(_grid_url_for_page, name, grid.anchor),
            exact_count_url=_grid_url(name, exact=True),
            row_urls=_row_urls(name, filters),
            **kwargs,
        )
        return widgets


def query_suffix():
    """"?" and this page's query string, or "", escaped (the export link keeps
    the filters)."""
    qs = request.query_string.decode()
    return escape("?" + qs) if qs else Markup("")


def joined_filters(filters, base_filters):
    """FAB's `filters.get_joined_filters(base_filters)` without building a new
    Filters object, which converts every column of the model again (some thirty
    filter objects a request): a shallow copy with both lists of active filters."""
    joined = copy.copy(filters)
    joined.filters = filters.filters + base_filters.filters
    joined.values = filters.values + base_filters.values
    return joined


def _row_urls(view_name, filters):
    """show / edit / delete URLs with a placeholder key, built once per page;
    related-view filters are carried as FAB's set_link_filters does."""
    carried = "".join(
        f"&_flt_0_{flt.column_name}={value}" for flt, value in filters.get_filters_values() if flt.is_related_view
    )
    urls = {}
    for kind in ("show", "edit", "delete"):
        try:
            path = url_for(f"{view_name}.{kind}", pk="__CE_PK__")
        except Exception:  # the view has no such route
            continue
        if carried and kind != "delete":
            path += ("&" if "?" in path else "?") + carried[1:]
        urls[kind] = path
    return urls


def _grid_url_for_page(view_name, anchor, page):
    return _grid_url(view_name, page=page, anchor=anchor)
