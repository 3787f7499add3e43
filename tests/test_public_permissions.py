"""Pages of a visitor who is not signed in (the login page above all): FAB checks
every menu item against the Public role; the role and its permissions are read
once per request (app/views/security.py get_public_permissions), not twice per
menu item, and never kept across requests (an administrator may change the
Public role while the app runs)."""
from sqlalchemy import event

from app.extensions import db


def _statements(app):
    seen = []

    def grab(conn, cursor, statement, parameters, context, executemany):
        seen.append(" ".join(statement.split()))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", grab)
    return seen, lambda: event.remove(engine, "before_cursor_execute", grab)


def test_the_login_page_reads_the_public_role_once(app):
    client = app.test_client()
    client.get("/login/")  # templates compiled, the pool warm
    seen, stop = _statements(app)
    try:
        resp = client.get("/login/")
    finally:
        stop()
    assert resp.status_code == 200 and 'name="password"' in resp.get_data(as_text=True)
    roles = [s for s in seen if "FROM ab_role" in s]
    assert len(roles) == 1, seen
    assert len(seen) <= 3, seen


def test_a_change_to_the_public_role_counts_from_the_next_request(app):
    sm = app.appbuilder.sm
    with app.app_context():
        pvm = sm.find_permission_view_menu("menu_access", "Certificates")
        assert pvm is not None
        pvm_id = pvm.id
    with app.test_request_context("/login/"):
        assert not sm.has_access("menu_access", "Certificates")
        seen, stop = _statements(app)
        try:
            for _ in range(5):
                assert not sm.has_access("menu_access", "Certificates")
        finally:
            stop()
        assert seen == []  # read once for the request, above
        db.session.remove()
    with app.app_context():
        public = sm.find_role(app.config["AUTH_ROLE_PUBLIC"])
        public.permissions.append(db.session.get(sm.permissionview_model, pvm_id))
        db.session.commit()
        db.session.remove()
    try:
        with app.test_request_context("/login/"):
            assert sm.has_access("menu_access", "Certificates")
            db.session.remove()
    finally:
        with app.app_context():
            public = sm.find_role(app.config["AUTH_ROLE_PUBLIC"])
            public.permissions = [p for p in public.permissions if p.id != pvm_id]
            db.session.commit()
            db.session.remove()
    with app.test_request_context("/login/"):
        assert not sm.has_access("menu_access", "Certificates")
        db.session.remove()
