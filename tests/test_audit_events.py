"""The events 等保 2.0 三级 asks the audit log to cover (issue 26), each with who,
when, from where (ip), what and the outcome: lockouts, logout, role and
permission changes, exports of personal data (filter, row count, whether ID
numbers were whole), every display of a whole ID number.  (Logins, password
changes and the national account's pulls: tests/test_accounts.py,
test_login_limits.py, test_national.py.)"""
import json

from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog
from tests.conftest import post
from tests.test_login_limits import _limited, _login

PW = "Demo@2026"


def entries(app, action, **where):
    with app.app_context():
        q = select(AuditLog).where(AuditLog.action == action)
        for k, v in where.items():
            q = q.where(getattr(AuditLog, k) == v)
        rows = db.session.execute(q.order_by(AuditLog.id)).scalars().all()
        out = [(r, json.loads(r.detail) if r.detail else {}) for r in rows]
        db.session.remove()
        return out


def test_lockout_and_refused_attempts_are_audited(backend, app):
    other = _limited(backend, TRUSTED_PROXY_HOPS=1, AUTH_FAILED_PER_ACCOUNT="3 per 10 minute")
    for n in range(3):
        _login(other, "clerk_a", f"guess-{n}", xff=f"198.51.100.{n}")
    locked = entries(other, "login_locked", username="clerk_a")
    assert len(locked) == 1
    row, detail = locked[0]
    assert row.ip == "198.51.100.2" and detail["lock"] == "account" and detail["outcome"] == "locked"
    assert row.user_id is not None and row.at is not None
    assert _login(other, "clerk_a", PW, xff="203.0.113.9").status_code == 429
    refused = entries(other, "login_refused_locked", username="clerk_a")
    assert len(refused) == 1
    row, detail = refused[0]
    assert row.ip == "203.0.113.9" and detail["outcome"] == "refused" and detail["retry_at"]


def test_logout_is_audited(app, login_as):
    c = login_as("clerk_a")
    c.get("/logout/")
    rows = entries(app, "logout", username="clerk_a")
    assert len(rows) == 1
    row, detail = rows[0]
    assert row.ip == "127.0.0.1" and detail["reason"] == "logout" and row.unit_id is not None


def test_role_permission_changes_are_audited(app, login_as):
    from flask_appbuilder.security.sqla.models import PermissionView, Role

    with app.app_context():
        pvs = db.session.execute(select(PermissionView).limit(2)).scalars().all()
        first, second = pvs[0].id, pvs[1].id
        names = [str(p) for p in pvs]
        db.session.remove()
    admin = login_as("admin")
    resp = post(admin, "/roles/add", {"name": "ProbeRole", "permissions": [first]}, follow_redirects=True)
    assert resp.status_code == 200
    created = entries(app, "create_role", username="admin")
    assert len(created) == 1 and created[0][1]["new"] == {"name": "ProbeRole", "permissions": [names[0]]}
    with app.app_context():
        role_id = db.session.execute(select(Role.id).where(Role.name == "ProbeRole")).scalar_one()
        db.session.remove()
    resp = post(admin, f"/roles/edit/{role_id}", {"name": "ProbeRole", "permissions": [second]},
                follow_redirects=True)
    assert resp.status_code == 200
    changed = entries(app, "change_role", object_id=str(role_id))
    assert len(changed) == 1
    row, detail = changed[0]
    assert detail["granted"] == [names[1]] and detail["revoked"] == [names[0]] and row.ip == "127.0.0.1"


def test_export_records_filter_rows_and_id_numbers(app, login_as):
    c = login_as("clerk_a")
    resp = c.get("/personview/export/?_flt_0_name=%E5%BC%A0")
    assert resp.status_code == 200
    rows = entries(app, "export", username="clerk_a")
    assert len(rows) == 1
    row, detail = rows[0]
    assert "_flt_0_name" in detail["query"] and isinstance(detail["rows"], int) and detail["rows"] >= 1
    assert detail["id_numbers"] == "full" and row.object_type == "Person"
    b = login_as("bureau_nj")
    b.get("/personview/export/")
    (row, detail), = entries(app, "export", username="bureau_nj")
    assert detail["id_numbers"] == "masked"


def test_every_display_of_whole_id_numbers_is_audited(app, login_as):
    clerk = login_as("clerk_a")  # unit staff see whole ID numbers of their unit
    resp = clerk.get("/personview/list/")
    assert resp.status_code == 200
    shown = entries(app, "view_id_number", username="clerk_a")
    assert len(shown) == 1
    row, detail = shown[0]
    assert detail["path"] == "/personview/list/" and detail["count"] >= 1 and row.ip == "127.0.0.1"
    # the entry names the numbers masked, never in clear
    assert all("*" in n for n in detail["id_numbers"]) and len(detail["id_numbers"]) == min(detail["count"], 20)
    html = resp.get_data(as_text=True)
    assert not any(n in html for n in detail["id_numbers"])  # masked form is not what the page showed
    # bureau staff see masked numbers only: no entry
    login_as("bureau_nj").get("/personview/list/")
    assert entries(app, "view_id_number", username="bureau_nj") == []


def test_an_id_number_typed_as_login_name_is_kept_nowhere_in_clear(backend, app):
    """A failed login with an ID number as the login name: the audit entry's
    user column masks it, the failed-login counter is named by its blind index."""
    from app.services.demo import resident_id
    from app.services.validators import mask_id_number
    import datetime

    other = _limited(backend, AUTH_FAILED_PER_ACCOUNT="3 per 10 minute")
    number = resident_id("320102", datetime.date(1979, 1, 2), 77)
    for n in range(3):
        _login(other, number, f"guess-{n}", xff=f"198.51.100.{n}")
    assert _login(other, number, PW).status_code == 429  # still counted per account
    rows = entries(other, "login_failed", username=mask_id_number(number))
    assert len(rows) == 3
    with other.app_context():
        details = [d for (d,) in db.session.execute(select(AuditLog.detail).where(AuditLog.detail.is_not(None)))]
        names = [u for (u,) in db.session.execute(select(AuditLog.username).where(AuditLog.username.is_not(None)))]
        limits = other.appbuilder.sm.failed_logins
        counters = repr(vars(limits._memory))
    assert not any(number in d for d in details) and number not in names
    assert "bidx:" in counters and number not in counters
