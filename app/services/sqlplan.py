"""Steering SQLite's index choice for pages read in key order (SPEC §6).

SQLite has no range statistics and, once ANALYZE ran, none that say how many rows
a region's sub-select names.  Given a region range (`region_code >= '3201' AND
< '3202'`) or a membership in a sub-select (`unit_id IN (SELECT the region's
units)`), it reads that index and then sorts every matching row, even when the
page wants the first few rows in key order, which walking the primary key finds
at once.  `walk_by_key` hides such terms from its index chooser (`col || ''`,
`col + 0`: the same values); a list of literal ids (one unit) is left as it is,
since walking the key to find a few rows of one unit would read the table.
PostgreSQL plans from its statistics: its clauses are returned unchanged.
"""
from sqlalchemy import Column, Integer, String, and_, literal_column
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList, Grouping
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.selectable import ScalarSelect
from sqlalchemy.sql.visitors import replacement_traverse

from app.extensions import db

_RANGES = (operators.ge, operators.gt, operators.le, operators.lt)


def walk_by_key(clause, table, dialect_name):
    """`clause` with `table`'s range-compared text columns and sub-select
    memberships hidden from SQLite's index chooser (other databases: unchanged)."""
    if dialect_name != "sqlite" or clause is None:
        return clause
    keys = {c.key for c in table.primary_key.columns}

    def hide(element):
        if not (isinstance(element, BinaryExpression) and isinstance(element.left, Column)):
            return None
        col = element.left
        if col.table is not table or col.key in keys:
            return None
        if element.operator in _RANGES and isinstance(col.type, String):
            return BinaryExpression(col.op("||")(literal_column("''")), element.right, element.operator)
        if element.operator is operators.in_op and isinstance(element.right, ScalarSelect) \
                and isinstance(col.type, Integer):
            return BinaryExpression(col.op("+")(literal_column("0")), element.right, element.operator)
        return None

    return replacement_traverse(clause, {}, hide)


def without_city_index(clause):
    """`clause` with its city codes (models.regions.city_code) hidden from SQLite's
    index chooser (`|| ''`: the same text, which no index matches), for a query
    read along another index: the national feed pages by (updated_at, id), and
    SQLite without statistics would take ix_hr_city instead and sort a whole
    city (0.8 s on 5 M records).  On PostgreSQL, unchanged."""
    if db.session.get_bind().dialect.name != "sqlite":
        return clause

    def hide(element):
        if isinstance(element, FunctionElement) and element.name == "substr":
            return element.op("||")(literal_column("''"))
        return None

    return replacement_traverse(clause, {}, hide)


# ---------------------------------------------------------------------------
# Counts from a tally table (models.HourTally): a table's rows counted per key
# (unit, year, category, status), kept by triggers.  A count whose conditions are
# all equalities (or IN lists) on those key columns is the sum of the matching
# tally rows.  Anything else (a range, a LIKE, a join, an OR, a sub-select) is
# not recognised and the caller counts the rows themselves.

_TALLY_OPERATORS = (operators.eq, operators.in_op)


def conjuncts(clause):
    """The terms of an AND (nested ANDs and parentheses flattened)."""
    while isinstance(clause, Grouping):
        clause = clause.element
    if isinstance(clause, BooleanClauseList) and clause.operator is operators.and_:
        for term in clause.clauses:
            yield from conjuncts(term)
    else:
        yield clause


def column_terms(clause, table, ops):
    """[(column name, term)] of `clause`'s AND-ed terms when each compares a
    column of `table` with a bound value by one of `ops`; None otherwise."""
    if clause is None:
        return None
    found = []
    for term in conjuncts(clause):
        if not (isinstance(term, BinaryExpression) and term.operator in ops
                and isinstance(term.left, Column) and term.left.table is table
                and isinstance(term.right, BindParameter)):
            return None
        found.append((term.left.name, term))
    return found


def tally_clause(clause, table, tally_table, key, required):
    """`clause` (conditions on `table`) as the same conditions on `tally_table`'s
    columns of the same names, or None when a term is not an equality or IN list
    of a `key` column against bound values, or when a `required` column has no
    condition (rows without it are not tallied)."""
    keys = {name: tally_table.c[name] for name in key}
    found = column_terms(clause, table, _TALLY_OPERATORS)
    if found is None:
        return None
    terms, used = [], set()
    for name, term in found:
        if name not in keys or (term.operator is operators.in_op and not term.right.expanding):
            return None
        terms.append(BinaryExpression(keys[name], term.right, term.operator, type_=term.type))
        used.add(name)
    if not terms or not set(required) <= used:
        return None
    return and_(*terms)
