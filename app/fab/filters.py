"""A view's or an API's active filters, per request (app.views and app.api)."""
import copy

from flask import has_request_context, request

from app.fab.datamodel import filter_value_problems


class RequestFiltersMixin:
    """A view's active filters per request.  FAB keeps them in `self._filters`,
    one object on the view that every thread of a worker shares (gunicorn's
    GUNICORN_THREADS); `get_filter_args` clears and refills it on each request,
    so two requests at once could each run with the other's filters.  Here each
    request gets its own: a shallow copy of the view's (its search columns and
    their filter classes) without active filters."""

    @property
    def _filters(self):
        template = self.__dict__.get("_ce_filters")
        if template is None or not has_request_context():
            return template
        # Kept on the request object itself (not `g`, which a request shares
        # with any other run inside its app context).
        mine = request.__dict__.setdefault("_ce_filters", {})
        filters = mine.get(id(self))
        if filters is None:
            filters = mine[id(self)] = copy.copy(template)
            filters.filters, filters.values = [], []
        return filters

    @_filters.setter
    def _filters(self, value):
        self.__dict__["_ce_filters"] = value

    def _handle_filters_args(self, rison_args):
        """An API's filters (FAB's ModelRestApi): a value its column cannot hold is
        refused with 400 naming the filter and why (a grid shows the same message
        and matches nothing, see `_get_list_widget`)."""
        from flask_appbuilder.exceptions import FABException

        joined = super()._handle_filters_args(rison_args)
        problems = filter_value_problems(self._filters, getattr(self, "label_columns", {}))
        if problems:
            raise FABException("; ".join(str(p) for p in problems))
        return joined
