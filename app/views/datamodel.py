"""The data interface every grid uses: FAB's SQLAInterface with filters that
match how users search (region subtree as an index range, not ILIKE)."""
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.filters import FilterEqual, FilterNotEqual, SQLAFilterConverter, get_field_setup_query
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _l

from app.security.scope import region_prefix, region_range


class FilterRegionSubtree(BaseFilter):
    """区划代码 in the subtree of the given code: 320100 -> every 3201xx row."""

    name = _l("属于区划")
    arg_name = "rgn"

    def apply(self, query, value):
        prefix = region_prefix(str(value or "").strip())
        if not prefix or not prefix.isdigit():
            return query
        query, field = get_field_setup_query(query, self.model, self.column_name)
        return query.filter(region_range(field, prefix))


class CEFilterConverter(SQLAFilterConverter):
    conversion_table = (
        ("is_region_code", [FilterRegionSubtree, FilterEqual, FilterNotEqual]),
    ) + SQLAFilterConverter.conversion_table


class CEInterface(SQLAInterface):
    filter_converter_class = CEFilterConverter

    def is_region_code(self, col_name):
        return col_name == "region_code"
