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
from sqlalchemy import Column, Integer, String, literal_column
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression
from sqlalchemy.sql.selectable import ScalarSelect
from sqlalchemy.sql.visitors import replacement_traverse

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
