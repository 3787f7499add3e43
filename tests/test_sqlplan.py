"""services.sqlplan.walk_by_key: on SQLite a region's range and a membership in a
sub-select are hidden from the index chooser with the same values; a list of
literal ids is kept; other databases get the clause unchanged."""
import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from app.models import HourRecord, Person
from app.security.scope import Scope, scope_clause
from app.services.sqlplan import walk_by_key


def _sql(clause, dialect):
    return str(select(1).where(clause).compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


@pytest.mark.parametrize("model, scope, hidden, kept", [
    (HourRecord, Scope(region_prefixes=("3201",)), "(hour_record.region_code || '') >= '3201'",
     "substr(hour_record.region_code, 1, 4) = '3201'"),
    (HourRecord, Scope(unit_ids=(7,)), None, "hour_record.unit_id = 7"),
    (HourRecord, Scope(unit_ids=(7, 8)), None, "hour_record.unit_id IN (7, 8)"),
    (Person, Scope(region_prefixes=("32",)), "(person.unit_id + 0) IN (SELECT unit.id", "unit.region_code >= '32'"),
    (Person, Scope(unit_ids=(7,)), None, "person.unit_id = 7"),
])
def test_walk_by_key_hides_ranges_and_sub_selects_only_on_sqlite(app, model, scope, hidden, kept):
    clause = scope_clause(model, scope)
    walked = _sql(walk_by_key(clause, model.__table__, "sqlite"), sqlite.dialect())
    assert kept in walked, walked
    if hidden:
        assert hidden in walked, walked
    else:
        assert walked == _sql(clause, sqlite.dialect())
    assert walk_by_key(clause, model.__table__, "postgresql") is clause
    assert _sql(clause, postgresql.dialect()) == _sql(walk_by_key(clause, model.__table__, "postgresql"),
                                                      postgresql.dialect())
