"""The signed-in user, loaded on every request (app/views/security.py load_user):
one statement brings its roles, its groups and their roles, its unit and its
person, and that statement reads the account tables by index however many
accounts the province has (a province's applicants each have one)."""
from sqlalchemy import event, select

from app.extensions import db
from app.models import CEUser
from tests.conftest import IS_PG


def _statements(app):
    seen = []

    def grab(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", grab)
    return seen, lambda: event.remove(engine, "before_cursor_execute", grab)


def test_user_with_roles_and_groups_is_loaded_by_one_statement(app):
    sm = app.appbuilder.sm
    with app.app_context():
        user = db.session.execute(select(CEUser).where(CEUser.username == "clerk_a")).scalar_one()
        roles = {r.name: r for r in db.session.execute(select(sm.role_model)).scalars()}
        # Two roles of its own and two groups with two roles each: the flat joins
        # give 2 x (2 x 2) rows, which must still make one user, two roles, two groups.
        user.roles = [roles["UnitOperator"], roles["UnitAdmin"]]
        groups = [sm.group_model(name=f"组{i}", label=f"组{i}") for i in (1, 2)]
        groups[0].roles = [roles["Applicant"], roles["Organizer"]]
        groups[1].roles = [roles["Applicant"], roles["Industry"]]
        db.session.add_all(groups)
        db.session.flush()
        # (FAB's Group.users names FAB's User class, not this app's subclass: link
        # the rows as FAB's group form would, through the association table.)
        user_groups = CEUser.groups.property.secondary
        db.session.execute(user_groups.insert(), [{"user_id": user.id, "group_id": grp.id} for grp in groups])
        db.session.commit()
        pk, unit_name, person_id = user.id, user.unit.name, user.person_id
        db.session.remove()

    seen, stop = _statements(app)
    try:
        with app.app_context():
            loaded = sm.load_user(pk)
            own = sorted(r.name for r in loaded.roles)
            by_group = {grp.name: sorted(r.name for r in grp.roles) for grp in loaded.groups}
            everything = sorted({r.name for r in sm.get_user_roles(loaded)})
            unit, person = loaded.unit.name, loaded.person_id
            db.session.remove()
    finally:
        stop()
    assert len(seen) == 1, seen
    assert own == ["UnitAdmin", "UnitOperator"]
    assert by_group == {"组1": ["Applicant", "Organizer"], "组2": ["Applicant", "Industry"]}
    assert everything == ["Applicant", "Industry", "Organizer", "UnitAdmin", "UnitOperator"]
    assert (unit, person) == (unit_name, person_id)


def test_inactive_or_unknown_user_is_not_loaded(app):
    sm = app.appbuilder.sm
    with app.app_context():
        user = db.session.execute(select(CEUser).where(CEUser.username == "clerk_a")).scalar_one()
        user.active = False
        db.session.commit()
        pk = user.id
        assert sm.load_user(pk) is None
        assert sm.load_user(10 ** 9) is None
        assert sm.load_user("x") is None
        db.session.remove()


def test_user_statement_reads_the_account_tables_by_index(app):
    """No table is read whole: SQLite materialized joinedload's nested
    `LEFT JOIN (ab_user_role JOIN ab_role)` by scanning every account's roles."""
    sm = app.appbuilder.sm
    with app.app_context():
        conn = db.session.connection()
        compiled = sm._load_user_stmt.compile(dialect=conn.dialect)
        sql = str(compiled)
        params = compiled.construct_params({"pk": 1})
        if IS_PG:
            # A demo-sized table is read whole cheaper than through any index:
            # forbid that, so the plan shows whether an index can serve each join.
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = [r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql, params)]
            read_whole = [line for line in plan if "Seq Scan" in line]
        else:
            positional = tuple(params[name] for name in compiled.positiontup)
            plan = [r[3] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, positional)]
            read_whole = [line for line in plan if line.startswith("SCAN") or "MATERIALIZE" in line]
        db.session.rollback()
        db.session.remove()
    assert plan
    assert not read_whole, "\n".join(plan)


def test_login_lookup_ignores_case_and_reads_the_lower_username_index(app):
    """FAB signs in by lower(username) = lower(typed name): the index on that
    expression serves it, where the unique index on username cannot."""
    sm = app.appbuilder.sm
    seen, stop = _statements(app)
    with app.app_context():
        engine = db.engine
    grabbed = []

    def grab(conn, cursor, statement, parameters, context, executemany):
        grabbed.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", grab)
    try:
        with app.app_context():
            user = sm.find_user(username="CLERK_A")
            assert user is not None and user.username == "clerk_a"
            db.session.remove()
    finally:
        event.remove(engine, "before_cursor_execute", grab)
        stop()
    statement, parameters = next((s, p) for s, p in grabbed if "lower(ab_user.username)" in s)
    with app.app_context():
        conn = db.session.connection()
        if IS_PG:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
        else:
            plan = "\n".join(r[3] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))
        db.session.rollback()
        db.session.remove()
    assert "ix_ab_user_username_lower" in plan, plan


def test_account_and_pending_person_lookups_read_their_indexes_after_analyze(app):
    """A unit's accounts, a region's bureau accounts, a person's account and a
    unit's pending persons are found by index, also once the planner has
    statistics (ANALYZE) of tables where nearly every row has no unit, no region
    or no pending unit: SQLite counts the NULLs as one value, which made a full
    index on those columns look useless to it."""
    from app.models import Person
    from app.security.scope import scope_clause, scope_of
    from app.services.accounts import pending_attachments_query

    with app.app_context():
        password = db.session.execute(select(CEUser.password).where(CEUser.username == "clerk_a")).scalar()
        applicant = db.session.execute(
            select(app.appbuilder.sm.role_model.id).where(app.appbuilder.sm.role_model.name == "Applicant")
        ).scalar()
        persons = [{"name": f"统计{i}", "id_type": "PASSPORT", "id_number": f"T{i:08d}", "is_freelancer": False,
                    "unit_confirmed": True} for i in range(1500)]
        db.session.execute(Person.__table__.insert(), persons)
        first = db.session.execute(select(CEUser.id).order_by(CEUser.id.desc())).scalar() + 1
        db.session.execute(CEUser.__table__.insert(), [
            {"id": first + i, "first_name": f"申请人{i}", "last_name": "", "username": f"applicant{i}",
             "password": password, "active": True, "email": f"applicant{i}@example.invalid"} for i in range(1500)
        ])
        links = CEUser.roles.property.secondary
        db.session.execute(links.insert(), [{"user_id": first + i, "role_id": applicant} for i in range(1500)])
        db.session.commit()
        conn = db.session.connection()
        conn.exec_driver_sql("ANALYZE")
        db.session.commit()

        def plan(stmt):
            conn = db.session.connection()
            compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
            params = compiled.construct_params()
            if IS_PG:
                conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
                return "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + str(compiled), params))
            positional = tuple(params[name] for name in compiled.positiontup)
            return "\n".join(r[3] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), positional))

        unit_admin = db.session.execute(select(CEUser).where(CEUser.username == "unitadmin_a")).scalar_one()
        bureau = db.session.execute(select(CEUser).where(CEUser.username == "bureau_nj")).scalar_one()
        checks = {
            "ix_ab_user_unit_id": select(CEUser.id).where(scope_clause(CEUser, scope_of(unit_admin))),
            "ix_ab_user_region_code": select(CEUser.id).where(scope_clause(CEUser, scope_of(bureau))),
            "ix_ab_user_person_id": select(CEUser.id).where(CEUser.person_id == 1),
            "ix_person_pending_unit": pending_attachments_query(unit_admin),
        }
        plans = {index: plan(stmt) for index, stmt in checks.items()}
        db.session.rollback()
        db.session.remove()
    for index, shown in plans.items():
        assert index in shown, f"{index}:\n{shown}"
