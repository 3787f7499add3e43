"""The data interface every grid uses: FAB's SQLAInterface, made to stay fast at
province scale (millions of hour records, SPEC §6):

* filters match how users search (region subtree as an index range, not ILIKE;
  a relation filter compares the foreign key, with no extra query);
* no full COUNT(*) on every page: a count capped at `COUNT_CAP` rows
  ("超过 N 条"), an exact count only when it is cheap (the last page is in
  sight, or a unit's grid: the sum of a few rows of the tally the triggers
  keep, models.HourTally) or when the user asks for it;
* paging selects the page's ids first (an index-only query), then loads those
  rows with the related columns the list shows in one joined query;
* deep pages reached from a neighbouring page use the neighbour's first id as
  a keyset anchor (`id <= anchor`), so page 4 000 costs what page 2 costs.

`CEInterface.query_page()` is what ScopedModelView's list uses; `query()` keeps
FAB's (count, items) contract for everything else.
"""
import hashlib
from dataclasses import dataclass, field

from flask import request
from flask_appbuilder.models.filters import BaseFilter
from dateutil import parser as date_parser
from flask_appbuilder.models.sqla.filters import (
    FilterEqual,
    FilterGreater,
    FilterIn,
    FilterNotEqual,
    FilterNotIn,
    FilterRelation,
    FilterSmaller,
    SQLAFilterConverter,
    get_field_setup_query,
    set_value_to_type,
)
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.utils.base import get_column_root_relation, is_column_dotted
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    BigInteger, Date, DateTime, Enum, Float, Integer, Numeric, SmallInteger, bindparam, false, func, literal_column,
    or_, select,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import aliased, joinedload

from app.models.crypto import Encrypted
from app.models.regions import region_prefix, region_range
from app.security.scope import current_scope
from app.services.localtime import from_beijing
from app.services.sqlplan import tally_clause, walk_by_key

# Counting stops here: beyond it the grid says "超过 N 条" (more than N rows).
COUNT_CAP = 10_000
# Related-row drop-downs of search forms list at most this many rows.
SEARCH_SELECT_LIMIT = 500


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


def _fk_column(datamodel, relation_name):
    """The local foreign-key column of a many-to-one relation, or None."""
    prop = datamodel.list_properties.get(relation_name)
    cols = list(getattr(prop, "local_columns", ()) or ())
    return cols[0] if len(cols) == 1 else None


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# Text a user may type into a relation filter instead of picking from a list:
# a grid over a million persons cannot offer them all in a drop-down.
LOOKUP_COLUMNS = {
    "Person": ("id_number", "name"),
    "Unit": ("credit_code", "name"),
    "CEUser": ("username",),
}


def _typed_pk(text_value):
    """A short number typed for a relation is a row's id (an 18-digit ID or
    credit-code number is not)."""
    pk = _int_or_none(text_value)
    return pk if pk is not None and len(text_value) < 10 else None


def lookup_clause(related, text_value):
    """The rows of `related` a user means by typing `text_value`: the row with
    that id for a short number, else the rows whose lookup column (LOOKUP_COLUMNS)
    equals the text."""
    text_value = str(text_value if text_value is not None else "").strip()
    pk = _typed_pk(text_value)
    if pk is not None:
        return getattr(related, "id") == pk
    lookups = LOOKUP_COLUMNS.get(related.__name__, ())
    if not text_value or not lookups:
        return false()
    return or_(*[getattr(related, c) == text_value for c in lookups])


def _relation_condition(datamodel, relation_name, value):
    """`fk = id` for a number, `fk IN (rows whose lookup column equals the text)`
    otherwise; None when the value cannot match anything."""
    col = _fk_column(datamodel, relation_name)
    if col is None:
        return None
    text_value = str(value if value is not None else "").strip()
    pk = _typed_pk(text_value)
    if pk is not None:
        return col == pk
    related = datamodel.get_related_model(relation_name)
    return col.in_(select(getattr(related, "id")).where(lookup_clause(related, text_value)))


class FilterRelationFKEqual(FilterRelation):
    """Relation equals the row with this id (`person_id = 5`, without loading the
    person first as FAB does), or the rows whose name / number is the text."""

    name = _l("Relation")
    arg_name = "rel_o_m"

    def apply(self, query, value):
        cond = _relation_condition(self.datamodel, self.column_name, value)
        return query if cond is None else query.filter(cond)


class FilterRelationFKNotEqual(FilterRelation):
    name = _l("No Relation")
    arg_name = "nrel_o_m"

    def apply(self, query, value):
        cond = _relation_condition(self.datamodel, self.column_name, value)
        if cond is None:
            return query
        col = _fk_column(self.datamodel, self.column_name)
        return query.filter(~cond | col.is_(None))


class FilterValueError(ValueError):
    """A filter's text its column cannot hold; str() says why, for the user."""


# An empty box for a number, a date or an Enum: the filter is left out.
NO_CONDITION = object()


def typed_filter_value(datamodel, column_name, value):
    """A filter's text as its column's type, as FAB's set_value_to_type makes it,
    except where FAB passes on what the database then rejects (a name that is no
    member of an Enum, a number beyond the column's integer type: a server error)
    or quietly compares with NULL (text for a number or a date): those raise
    FilterValueError.  An Enum takes a member's name (PRO) or its label (专业科目).
    Left empty, such a column's filter is NO_CONDITION."""
    column = datamodel.list_columns.get(column_name)
    type_ = getattr(column, "type", None)
    text = str(value if value is not None else "").strip()
    if not text and isinstance(type_, (Enum, Integer, Numeric, Float, Date, DateTime)):
        return NO_CONDITION
    if isinstance(type_, Enum) and type_.enum_class is not None:
        for member in type_.enum_class:
            if text in (member.name, str(member.value)):
                return member
        labels = "、".join(str(m.value) for m in type_.enum_class)
        raise FilterValueError(_("应为以下之一：%(labels)s", labels=labels))
    if isinstance(type_, Integer):
        try:
            number = int(text)
        except ValueError:
            raise FilterValueError(_("不是整数")) from None
        bits = 15 if isinstance(type_, SmallInteger) else 63 if isinstance(type_, BigInteger) else 31
        if not -(2 ** bits) <= number < 2 ** bits:
            raise FilterValueError(_("超出范围"))
        return number
    if isinstance(type_, (Numeric, Float)):
        try:
            number = float(text)
        except ValueError:
            raise FilterValueError(_("不是数字")) from None
        if number != number or number in (float("inf"), float("-inf")):
            raise FilterValueError(_("不是数字"))
        return number
    if isinstance(type_, (Date, DateTime)):
        try:
            moment = date_parser.parse(text)
        except (ValueError, OverflowError):
            raise FilterValueError(_("不是日期，例如 2024-03-01")) from None
        # Times are typed as shown (Beijing time) and stored as UTC.
        return from_beijing(moment) if isinstance(type_, DateTime) else moment.date()
    return set_value_to_type(datamodel, column_name, value)


class _TypedFilter:
    """FAB's filter, its value checked by typed_filter_value: a value the column
    cannot hold matches nothing (the grid says why: filter_value_problems, in
    FastListMixin._get_list_widget; an API answers 400), or, for a negated
    filter, leaves every row in."""

    matches_nothing_when_invalid = True

    def typed(self, value):
        return typed_filter_value(self.datamodel, self.column_name, value)

    def apply(self, query, value):
        try:
            value = self.typed(value)
        except FilterValueError:
            return query.filter(false()) if self.matches_nothing_when_invalid else query
        if value is NO_CONDITION:
            return query
        query, field = get_field_setup_query(query, self.model, self.column_name)
        return self.condition(query, field, value)


class CEFilterEqual(_TypedFilter, FilterEqual):
    def condition(self, query, field, value):
        return query.filter(field == value)


class CEFilterNotEqual(_TypedFilter, FilterNotEqual):
    matches_nothing_when_invalid = False

    def condition(self, query, field, value):
        return query.filter(field != value)


class CEFilterGreater(_TypedFilter, FilterGreater):
    def condition(self, query, field, value):
        return query.filter(field > value)


class CEFilterSmaller(_TypedFilter, FilterSmaller):
    def condition(self, query, field, value):
        return query.filter(field < value)


class _TypedListFilter(_TypedFilter):
    """FAB's IN filters (a list of values): the values the column cannot hold are
    left out of the list."""

    def apply(self, query, value):
        values, invalid = [], False
        for item in value if isinstance(value, (list, tuple)) else [value]:
            try:
                typed = self.typed(item)
            except FilterValueError:
                invalid = True
                continue
            if typed is not NO_CONDITION:
                values.append(typed)
        if not values:
            return query.filter(false()) if invalid and self.matches_nothing_when_invalid else query
        query, field = get_field_setup_query(query, self.model, self.column_name)
        return self.condition(query, field, values)


class CEFilterIn(_TypedListFilter, FilterIn):
    def condition(self, query, field, values):
        return query.filter(field.in_(values))


class CEFilterNotIn(_TypedListFilter, FilterNotIn):
    matches_nothing_when_invalid = False

    def condition(self, query, field, values):
        return query.filter(field.not_in(values))


_TYPED_FILTERS = {FilterEqual: CEFilterEqual, FilterNotEqual: CEFilterNotEqual, FilterGreater: CEFilterGreater,
                  FilterSmaller: CEFilterSmaller, FilterIn: CEFilterIn, FilterNotIn: CEFilterNotIn}


def filter_value_problems(filters, label_columns):
    """What is wrong with the values of a grid's filters, one message per value
    its column cannot hold, naming the column by its label."""
    problems = []
    for flt, value in zip(filters.filters, filters.values):
        if not isinstance(flt, _TypedFilter):
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            try:
                flt.typed(item)
            except FilterValueError as exc:
                label = label_columns.get(flt.column_name, flt.column_name)
                problems.append(_("筛选「%(label)s」的值「%(value)s」无效：%(why)s", label=label, value=item, why=exc))
    return problems


class CEFilterConverter(SQLAFilterConverter):
    conversion_table = (
        ("is_region_code", [FilterRegionSubtree, CEFilterEqual, CEFilterNotEqual]),
        # Stored encrypted: only a whole value can be looked up (its blind index).
        ("is_encrypted", [CEFilterEqual, CEFilterNotEqual]),
        ("is_relation_many_to_one", [FilterRelationFKEqual, FilterRelationFKNotEqual]),
    ) + tuple((test, [_TYPED_FILTERS.get(f, f) for f in filters])
              for test, filters in SQLAFilterConverter.conversion_table)


class CountInfo(int):
    """A row count that may be a lower bound: `capped` means "more than `self`"."""

    capped = False

    def __new__(cls, value, capped=False):
        obj = super().__new__(cls, value)
        obj.capped = capped
        return obj


@dataclass
class GridPage:
    """One page of a grid: its rows, how many rows the filters give, and the
    anchor that lets the neighbouring pages be fetched by keyset."""

    items: list  # ORM objects, or None when the rows came as pks + values
    count: CountInfo
    page: int
    page_size: int
    anchor: str = ""  # "<first id>.<page>.<fingerprint>" of this page, or ""
    exact_count_available: bool = True
    extra: dict = field(default_factory=dict)
    pks: list = None
    values: list = None


class CEInterface(SQLAInterface):
    filter_converter_class = CEFilterConverter
    count_cap = COUNT_CAP

    def is_encrypted(self, col_name):
        column = self.list_columns.get(col_name)
        return isinstance(getattr(column, "type", None), Encrypted)

    def is_region_code(self, col_name):
        return col_name == "region_code"

    # ------------------------------------------------------------ FAB contract

    def query(self, filters=None, order_column="", order_direction="", page=None,
              page_size=None, select_columns=None, outer_default_load=False):
        """FAB's (count, items).  Without a page size (the related-row drop-downs
        of forms) this is FAB's own query; with one, it pages like `query_page`
        but counts exactly, as FAB's callers expect."""
        if not page_size or not self._simple_order(order_column):
            return super().query(filters, order_column, order_direction, page, page_size,
                                 select_columns, outer_default_load)
        result = self.query_page(filters, order_column, order_direction, page or 0, page_size,
                                 list_columns=select_columns, exact_count=True)
        return int(result.count), result.items

    # ------------------------------------------------------------- fast paging

    def _simple_order(self, order_column):
        return not order_column or (not is_column_dotted(order_column) and order_column in self.list_columns)

    def _id_query(self, filters):
        """SELECT id with the filters (FAB's filters call .filter()/.join(), which a
        Core select has too: no ORM Query is built for a page)."""
        stmt = select(self.get_pk())
        if filters:
            stmt = filters.apply_all(stmt)
        return stmt

    def _fingerprint(self, filters, order_column, order_direction, page_size):
        parts = [self.obj.__name__, order_column, order_direction, str(page_size), current_scope().key]
        if filters:
            parts += [f"{f.column_name}:{f.arg_name}:{v}" for f, v in zip(filters.filters, filters.values)]
        return hashlib.sha1("|".join(parts).encode()).hexdigest()[:10]

    def _anchor_from_request(self, fingerprint):
        """(first id, page) of an earlier page of the same grid, from the URL."""
        if not request:
            return None
        for key, value in request.args.items():
            if not key.startswith("anchor_"):
                continue
            parts = value.split(".")
            if len(parts) == 3 and parts[2] == fingerprint:
                first, page = _int_or_none(parts[0]), _int_or_none(parts[1])
                if first is not None and page is not None and page >= 0:
                    return first, page
        return None

    def query_page(self, filters=None, order_column="", order_direction="", page=0,
                   page_size=25, list_columns=None, exact_count=False, count=True, as_values=False):
        """One page of rows in scope and filters, ordered by `order_column` then id.

        Returns a GridPage.  The count is exact when fewer than `count_cap` rows
        match, when `exact_count` is asked for, or when the page shows the end;
        otherwise it is a lower bound with `capped` set (without `count`, no
        counting query runs at all).  With `as_values` the rows come as `pks` and
        `values` (see load_values) where the list columns allow it."""
        page = max(int(page or 0), 0)
        pk = self.get_pk()
        if not order_column or order_column == self.get_pk_name():
            order_column, order_direction = self.get_pk_name(), order_direction or "asc"
            col = None
        else:
            col = getattr(self.obj, order_column)
        desc = order_direction == "desc"
        fingerprint = self._fingerprint(filters, order_column, order_direction, page_size)
        offset = page * page_size
        keyset = col is None and isinstance(pk.type, Integer)
        anchor = self._anchor_from_request(fingerprint) if keyset and page > 0 else None
        base = self._id_query(filters)
        # FAB's filters join a related table for a dotted column only (person.name).
        one_table = not (filters and any(is_column_dotted(f.column_name) for f in filters.filters))

        # How many rows match: the tally's exact sum where the conditions allow
        # it (a unit's grid), else an index-only count of at most `count_cap`
        # rows; none when the page lies past the cap anyway.
        tally = self._tally_count(base) if one_table else None
        exact = exact_count or (count and tally is not None)
        n = None
        if exact or (count and offset + page_size < self.count_cap):
            n = self._scalar(self._counting(base, tally, exact_count))
        # Many rows match: walking the primary key newest first finds a page
        # after a few rows, where SQLite would otherwise pick the region or
        # year index and sort them all (SPEC §6; services.sqlplan).
        by_key = one_table and col is None and (n is None or n > self.count_cap)
        paged = self._prefer_pk_order(base) if by_key else base
        key_order = pk.desc() if desc else pk.asc()

        ids = None
        if anchor is not None:
            first, anchor_page = anchor
            if page >= anchor_page:
                # Keyset: rows from the anchor page's first row on, then a short offset.
                q = paged.filter(pk <= first if desc else pk >= first).order_by(key_order)
                ids = self._ids(q.offset((page - anchor_page) * page_size).limit(page_size + 1))
            else:
                # Walking back: rows before the anchor in reverse order.
                back = (anchor_page - page) * page_size
                q = paged.filter(pk > first if desc else pk < first).order_by(pk.asc() if desc else pk.desc())
                rows = self._ids(q.offset(back - page_size).limit(page_size))
                if len(rows) == page_size:
                    ids = list(reversed(rows))
                    # Is there a row after this page?  The anchor row itself.
                    ids.append(first)
        if ids is None:
            q = paged
            if col is not None:
                q = q.order_by(col.desc() if desc else col.asc())
            ids = self._ids(q.order_by(key_order).offset(offset).limit(page_size + 1))
        more = len(ids) > page_size
        ids = ids[:page_size]

        if not more and (ids or page == 0):
            total = CountInfo(offset + len(ids))
        elif n is not None and (exact or n <= self.count_cap):
            total = CountInfo(n)
        elif n is not None:
            total = CountInfo(self.count_cap, capped=True)
        else:
            total = CountInfo(max(offset + page_size, self.count_cap if count else 0), capped=True)

        token = f"{ids[0]}.{page}.{fingerprint}" if ids and keyset else ""
        loaded = self.load_values(ids, list_columns) if as_values and list_columns else None
        if loaded is not None:
            return GridPage(items=None, count=total, page=page, page_size=page_size, anchor=token,
                            pks=loaded[0], values=loaded[1])
        items = self._load_rows(ids, list_columns)
        return GridPage(items=items, count=total, page=page, page_size=page_size, anchor=token)

    def _counting(self, base, tally, exact_count):
        """The statement counting `base`'s rows: the tally's sum, an exact count,
        or a count of at most `count_cap` + 1 rows."""
        if tally is not None:
            return tally
        if exact_count:
            return select(func.count()).select_from(base.order_by(None).subquery())
        # (the rows as a constant: SQLite copies a selected id into the subquery)
        capped = (base.order_by(None).with_only_columns(literal_column("1"), maintain_column_froms=True)
                  .limit(self.count_cap + 1).subquery())
        return select(func.count()).select_from(capped)

    def _tally_count(self, query):
        """The exact count of `query`'s rows (a select of the model's table alone)
        as a sum over the model's tally table (`__tally__`, e.g. models.HourTally),
        or None when a condition of the query is not an equality on the tally's
        key (see sqlplan.tally_clause)."""
        tally = getattr(self.obj, "__tally__", None)
        if tally is None:
            return None
        where = tally_clause(query.whereclause, self.obj.__table__, tally.__table__, tally.tally_key,
                             tally.tally_required)
        if where is None:
            return None
        return select(func.coalesce(func.sum(tally.n), 0)).where(where)

    # Plain column selects run on the session's connection: the ORM execution
    # layer (compile state, result processing for entities) costs more than the
    # query itself on a small page.
    def _scalar(self, stmt):
        return self.session.connection().execute(stmt).scalar()

    def _ids(self, stmt):
        return self.session.connection().execute(stmt).scalars().all()

    def _prefer_pk_order(self, query):
        """`query` (a select of the model's table alone) with, on SQLite, this
        table's region ranges and sub-select memberships hidden from the index
        chooser (services.sqlplan.walk_by_key), so that the newest-first page is
        read along the primary key or an index leading on the equality filters
        and then id (year, category, unit), instead of sorting a whole region
        (SPEC §6).  PostgreSQL keeps the query as it is."""
        dialect = self.session.get_bind().dialect.name
        if dialect != "sqlite" or query.whereclause is None:
            return query
        return select(self.get_pk()).where(walk_by_key(query.whereclause, self.obj.__table__, dialect))

    def _load_rows(self, ids, list_columns):
        """The rows with these ids, in this order, with the related rows the list
        shows loaded in the same query (no query per row)."""
        if not ids:
            return []
        query = self.session.query(self.obj).filter(self.get_pk().in_(ids))
        for rel in self._list_relations(list_columns):
            query = query.options(joinedload(getattr(self.obj, rel)))
        by_id = {getattr(o, self.get_pk_name()): o for o in query}
        return [by_id[i] for i in ids if i in by_id]

    def load_values(self, ids, list_columns):
        """(pks, values) of the rows with these ids, in this order, as FAB's
        `get_keys` and `get_values` would give them, read as plain columns (and the
        many-to-one columns the list shows, outer-joined) instead of ORM objects.
        None when a list column is not a mapped column (a property or a whole
        related object): the caller then loads objects."""
        plan = self._values_plan(tuple(list_columns))
        if plan is None:
            return None
        if not ids:
            return [], []
        stmt, enums = plan
        fetched = {row[0]: row for row in self.session.connection().execute(stmt, {"ids": ids})}
        width = len(list_columns) + 1
        pks, values = [], []
        for i in ids:
            row = fetched.get(i)
            if row is None:
                continue
            vals = list(row[1:width])
            for k in enums:  # FAB lists an Enum by its value
                if vals[k] is not None:
                    vals[k] = vals[k].value
            pks.append(i)
            values.append(dict(zip(list_columns, vals)))
        return pks, values

    def _values_plan(self, list_columns):
        """(a statement selecting the key and the list columns of the rows with
        the ids `ids`, outer-joining the many-to-one relations they name; the
        positions of Enum columns), or None when a list column is not a mapped
        column (a property, a whole related object): the caller then loads ORM
        objects.  Built once per list: the same statement object every page."""
        cache = self.__dict__.setdefault("_ce_values_plans", {})
        if list_columns in cache:
            return cache[list_columns]
        mapper = sa_inspect(self.obj)
        exprs, joins, enums, aliases = [], [], [], {}
        plan = None
        for k, column in enumerate(list_columns):
            root, _dot, leaf = column.partition(".")
            if leaf:
                rel = mapper.relationships.get(root)
                if rel is None or rel.uselist or "." in leaf:
                    break
                alias = aliases.get(root)
                if alias is None:
                    alias = aliases[root] = aliased(rel.mapper.class_)
                    joins.append((alias, getattr(self.obj, root)))
                if leaf not in sa_inspect(rel.mapper.class_).column_attrs:
                    break
                expr = getattr(alias, leaf)
            elif root in mapper.column_attrs:
                expr = getattr(self.obj, root)
            else:
                break
            if isinstance(expr.type, Enum):
                enums.append(k)
            exprs.append(expr)
        else:
            stmt = select(self.get_pk(), *exprs)
            for alias, rel in joins:
                stmt = stmt.outerjoin(alias, rel)
            plan = (stmt.where(self.get_pk().in_(bindparam("ids", expanding=True))), enums)
        cache[list_columns] = plan
        return plan

    def _list_relations(self, list_columns):
        rels = []
        for column in list_columns or ():
            root = get_column_root_relation(column) if is_column_dotted(column) else column
            if root in rels:
                continue
            if self.is_relation_many_to_one(root) or self.is_relation_one_to_one(root):
                rels.append(root)
        return rels


