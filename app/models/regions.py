"""Region codes in SQL: a code's subtree as an index range, and the city part of
a code that the hour-record indexes hold.  The row scope (app/security/scope.py)
states who sees which region; this module says how a region is written in SQL."""
from sqlalchemy import and_, func, literal_column


def region_prefix(code):
    """'320000' -> '32', '320100' -> '3201', '320102' -> '320102'."""
    if not code:
        return None
    code = str(code)
    while len(code) > 2 and code.endswith("00"):
        code = code[:-2]
    return code


def _next_prefix(prefix):
    # '3201' -> '3202'; region codes are digits, so the successor is a plain increment.
    return str(int(prefix) + 1).zfill(len(prefix))


def region_range(column, prefix):
    """`column` lies in the subtree of `prefix`, as an index-friendly range
    (FAB's 'starts with' is ILIKE and uses no index)."""
    return and_(column >= prefix, column < _next_prefix(prefix))


CITY_DIGITS = 4


def city_code(column):
    """The city part of a region code, `substr(column, 1, 4)`: the expression of
    the hour-record indexes ix_hr_city and ix_hr_year_cat_city, which are declared
    with this function.  SQLite and PostgreSQL use an expression index only for a
    query expression identical to the index's, so 1 and 4 are SQL literals here:
    as bound parameters the expression would no longer match."""
    return func.substr(column, literal_column("1"), literal_column(str(CITY_DIGITS)))


def hour_record_region(column, prefix):
    """Hour records in the subtree of `prefix`.  A city (a 4-digit prefix) adds the
    equal city code to the range: its newest-first grid pages then read the
    city-code indexes in id order, where the range alone walks the primary key
    past every other city's records (issue 7).  The range stays for the queries
    that the region_code indexes serve: with the city code alone, SQLite reads a
    whole city to count the declarations waiting for approval instead of seeking
    (status, region_code).  Both say the same of the 6-digit codes hour records
    carry.  A province or a district keeps the range alone."""
    subtree = region_range(column, prefix)
    if len(prefix) == CITY_DIGITS:
        return and_(subtree, city_code(column) == prefix)
    return subtree
