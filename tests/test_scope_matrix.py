"""The row-scope matrix (SPEC §1): every demo account × every grid.

Expected rows come from queries written here from the SPEC's definitions
(applicant = own records, unit roles = persons of their unit, bureau = region
subtree by code prefix, organizer = records it reported, admin = all), not from
app.security.scope, so a wrong rule there shows up as a difference.
"""
import datetime
import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, CEUser, HourRecord, Person, Region, Unit
from app.security import roles as R
from app.services import audit
from tests.conftest import _config, csrf_token, post
from tests.elevated import TOUCHED, dispose, make_elevated_app

USERS = ["admin", "bureau_js", "bureau_nj", "bureau_sz", "unitadmin_a", "clerk_a", "clerk_b",
         "agency_clerk", "organizer", "zhangsan", "lisi", "wangwu"]
GRIDS = {
    "HourRecordView": (HourRecord, "/hourrecordview"),
    "PersonView": (Person, "/personview"),
    "UnitView": (Unit, "/unitview"),
    "RegionView": (Region, "/regionview"),
    "AuditLogView": (AuditLog, "/auditlogview"),
}
# SPEC §1: province 32, city 3201, district 320102.
BUREAU_PREFIX = {"bureau_js": "32", "bureau_nj": "3201", "bureau_sz": "3205"}


# --------------------------------------------------------------- expectations


def _user(username):
    return db.session.execute(select(CEUser).where(CEUser.username == username)).scalar_one()


def _role(username):
    return {r.name for r in _user(username).roles}


def may(username, view, perm):
    """What the role definitions grant (Admin: everything)."""
    roles = _role(username)
    if R.ADMIN in roles:
        return True
    return any((view, perm) in R.permissions_of(r) for r in roles)


def expected_pks(username, grid):
    """Primary keys `username` may see in `grid`, by the SPEC's definitions."""
    u = _user(username)
    roles = {r.name for r in u.roles}
    model = GRIDS[grid][0]
    rows = db.session.execute(select(model)).scalars().all()
    if grid == "RegionView":
        return {r.code for r in rows}  # public reference data
    if R.ADMIN in roles:
        return {str(r.id) for r in rows}

    def person_unit(person):
        return person.unit

    keep = set()
    for row in rows:
        if grid == "HourRecordView":
            unit = row.person.unit
            region = unit.region_code if unit else ""
            ok = (
                (username in BUREAU_PREFIX and region.startswith(BUREAU_PREFIX[username]))
                or (roles & {R.UNIT_ADMIN, R.UNIT_OPERATOR} and row.person.unit_id == u.unit_id)
                or (R.ORGANIZER in roles and row.reported_by_unit_id == u.unit_id)
                or (R.APPLICANT in roles and row.person_id == u.person_id)
            )
        elif grid == "PersonView":
            region = row.unit.region_code if row.unit else ""
            reported = {h.reported_by_unit_id for h in db.session.execute(
                select(HourRecord).where(HourRecord.person_id == row.id)).scalars()}
            ok = (
                (username in BUREAU_PREFIX and region.startswith(BUREAU_PREFIX[username]))
                or (roles & {R.UNIT_ADMIN, R.UNIT_OPERATOR} and row.unit_id == u.unit_id)
                or (R.ORGANIZER in roles and u.unit_id in reported)
                or (R.APPLICANT in roles and row.id == u.person_id)
            )
        elif grid == "UnitView":
            own_person = db.session.get(Person, u.person_id) if u.person_id else None
            ok = (
                (username in BUREAU_PREFIX and row.region_code.startswith(BUREAU_PREFIX[username]))
                or (roles & {R.UNIT_ADMIN, R.UNIT_OPERATOR, R.ORGANIZER} and row.id == u.unit_id)
                or (own_person is not None and own_person.unit_id == row.id)
            )
        elif grid == "AuditLogView":
            ok = (
                (username in BUREAU_PREFIX and (row.region_code or "").startswith(BUREAU_PREFIX[username]))
                or (roles & {R.UNIT_ADMIN, R.UNIT_OPERATOR} and row.unit_id == u.unit_id)
            )
        if ok:
            keep.add(str(row.id))
    return keep


def all_pks(grid):
    model = GRIDS[grid][0]
    if grid == "RegionView":
        return set(db.session.execute(select(Region.code)).scalars())
    return {str(i) for i in db.session.execute(select(model.id)).scalars()}


def seed_audit_entries():
    """The demo has no log yet: one entry per unit (with its region), one without scope."""
    for unit in db.session.execute(select(Unit)).scalars():
        audit.record("edit", "Unit", unit.id, unit_id=unit.id, region_code=unit.region_code,
                     new={"name": unit.name})
    audit.record("sync_roles", None, None)
    db.session.commit()


def listed_pks(client, grid):
    """Every primary key the grid lists to `client`, page by page."""
    base = GRIDS[grid][1]
    found, page = set(), 0
    while True:
        resp = client.get(f"{base}/list/?psize_{grid}=500&page_{grid}={page}")
        assert resp.status_code == 200, (grid, resp.status_code)
        html = resp.get_data(as_text=True)
        pks = set(re.findall(re.escape(base) + r"/show/([0-9A-Za-z]+)", html))
        if not pks - found:
            return found
        found |= pks
        page += 1


def row_state(model, pk):
    """Every column of one row (None when the row is gone)."""
    row = db.session.get(model, pk if model is Region else int(pk))
    if row is None:
        return None
    return {c.key: getattr(row, c.key) for c in model.__table__.columns}


def foreign_pks(app, username, grid, n=3):
    with app.app_context():
        outside = sorted(all_pks(grid) - expected_pks(username, grid), key=lambda s: (len(s), s))
    if len(outside) <= n:
        return outside
    return [outside[0], outside[len(outside) // 2], outside[-1]]


# ---------------------------------------------------------------- lists


@pytest.mark.parametrize("username", USERS)
def test_lists_show_exactly_the_scope(app, login_as, username):
    with app.app_context():
        seed_audit_entries()
    client = login_as(username)
    for grid, (model, base) in GRIDS.items():
        with app.app_context():
            allowed = may(username, grid, "can_list")
            expected = expected_pks(username, grid)
            everything = all_pks(grid)
        if not allowed:
            resp = client.get(f"{base}/list/")
            assert resp.status_code in (302, 403), (username, grid)
            assert "/show/" not in resp.get_data(as_text=True)
            continue
        listed = listed_pks(client, grid)
        assert listed == expected, (username, grid, sorted(listed ^ expected)[:10])
        if grid == "RegionView" or username == "admin":
            assert listed == everything
        elif grid != "AuditLogView" or username.startswith("bureau"):
            # Every scoped account sees something of its own; below the province, never everything.
            assert listed, (username, grid)
            if username != "bureau_js":
                assert listed != everything, (username, grid)


def test_bureau_nj_never_sees_suzhou(app, login_as):
    client = login_as("bureau_nj")
    listed = listed_pks(client, "HourRecordView")
    with app.app_context():
        suzhou = {str(r.id) for r in db.session.execute(select(HourRecord)).scalars()
                  if r.person.unit.region_code.startswith("3205")}
        nanjing = {str(r.id) for r in db.session.execute(select(HourRecord)).scalars()
                   if r.person.unit.region_code.startswith("3201")}
    assert suzhou and nanjing
    assert not listed & suzhou
    assert listed == nanjing
    html = client.get("/hourrecordview/list/?psize_HourRecordView=500").get_data(as_text=True)
    assert "南京金陵科技有限公司" in html
    assert "苏州工业园区智造有限公司" not in html and "苏州市立医院" not in html
    # a filter in the URL cannot widen the scope either
    html = client.get("/hourrecordview/list/?_flt_0_region_code=320500").get_data(as_text=True)
    assert "/hourrecordview/show/" not in html


# --------------------------------------------- show / edit / delete, real roles


@pytest.mark.parametrize("username", [u for u in USERS if u != "admin"])
def test_foreign_rows_are_not_found(app, login_as, username):
    client = login_as(username)
    for grid, (model, base) in GRIDS.items():
        if grid == "RegionView":
            continue  # public: nothing is foreign
        for pk in foreign_pks(app, username, grid):
            with app.app_context():
                before = row_state(model, pk)
            for url in (f"{base}/show/{pk}", f"{base}/edit/{pk}"):
                resp = client.get(url)
                assert resp.status_code in (403, 404), (username, url, resp.status_code)
            resp = post(client, f"{base}/edit/{pk}", {"name": "越权修改", "course_name": "越权修改"})
            assert resp.status_code in (403, 404), (username, grid, pk)
            resp = post(client, f"{base}/delete/{pk}")
            assert resp.status_code in (403, 404), (username, grid, pk)
            with app.app_context():
                assert row_state(model, pk) == before, (username, grid, pk)


@pytest.mark.parametrize("username", [u for u in USERS if u != "admin"])
def test_own_rows_are_shown(app, login_as, username):
    """The other side of the matrix: rows in scope do open (so a 404 above means 'not yours')."""
    client = login_as(username)
    for grid, (model, base) in GRIDS.items():
        with app.app_context():
            if not may(username, grid, "can_show"):
                continue
            own = sorted(expected_pks(username, grid))
        if not own:
            continue
        resp = client.get(f"{base}/show/{own[0]}")
        assert resp.status_code == 200, (username, grid)


# ------------------------------ show / edit / delete, with write permission


@pytest.fixture
def elevated(app):
    application = make_elevated_app(_config(app.config["SQLALCHEMY_DATABASE_URI"]))
    yield application
    dispose(application)


def _login(app, username):
    from tests.conftest import login

    client = app.test_client()
    assert login(client, username).status_code == 200
    return client


def edit_data(app, username, grid, pk):
    """A valid edit form for row `pk`, choosing relations inside the user's own scope
    (so that, were the row loaded without the scope, the edit would succeed)."""
    with app.app_context():
        own_persons = sorted(int(p) for p in expected_pks(username, "PersonView")) or [
            p for p in db.session.execute(select(Person.id)).scalars()]
        own_units = sorted(int(p) for p in expected_pks(username, "UnitView")) or [
            u for u in db.session.execute(select(Unit.id)).scalars()]
        model = GRIDS[grid][0]
        row = db.session.get(model, pk if model is Region else int(pk))
        if grid == "HourRecordView":
            year = datetime.date.today().year - 1
            return {
                "person": str(own_persons[0]), "year": str(year), "category": "PRO",
                "learning_form": "TRAIN_ONSITE", "course_name": "越权修改-" + pk,
                "organizer_name": "某单位", "start_date": f"{year}-03-01", "end_date": f"{year}-03-02",
                "hours": "8", "source": row.source.name, "status": row.status.name,
            }
        if grid == "PersonView":
            return {
                "name": "越权修改", "id_type": row.id_type.name, "id_number": row.id_number,
                "unit": str(own_units[0]), "title": "工程师", "specialty": "x", "phone": "1",
            }
        if grid == "UnitView":
            return {
                "name": "越权修改", "credit_code": row.credit_code, "kind": row.kind.name,
                "region": row.region_code, "contact_name": "x", "contact_phone": "1", "approved": "y",
            }
        if grid == "RegionView":
            return {"code": row.code, "name": "越权修改", "parent": row.parent_code or ""}
        return {"action": "x"}


@pytest.mark.parametrize("username", ["bureau_nj", "bureau_sz", "clerk_a", "clerk_b", "agency_clerk",
                                      "organizer", "zhangsan", "wangwu"])
def test_write_permission_does_not_open_foreign_rows(app, elevated, username):
    client = _login(elevated, username)
    for grid, (model, base) in GRIDS.items():
        if grid == "RegionView":
            continue
        for pk in foreign_pks(elevated, username, grid):
            with elevated.app_context():
                before = row_state(model, pk)
            assert client.get(f"{base}/show/{pk}").status_code in (403, 404), (grid, pk)
            assert client.get(f"{base}/edit/{pk}").status_code in (403, 404), (grid, pk)
            resp = post(client, f"{base}/edit/{pk}", edit_data(elevated, username, grid, pk))
            assert resp.status_code in (403, 404), (grid, pk)
            resp = post(client, f"{base}/delete/{pk}")
            assert resp.status_code in (403, 404), (grid, pk)
            with elevated.app_context():
                assert row_state(model, pk) == before, (username, grid, pk)


@pytest.mark.parametrize("grid", ["HourRecordView", "PersonView", "UnitView", "RegionView"])
def test_the_same_edit_succeeds_in_scope(app, elevated, grid):
    """Control for the test above: the edit form it posts is valid, so only the
    scope can have stopped it."""
    username = "admin" if grid == "RegionView" else "clerk_a"
    model, base = GRIDS[grid]
    with elevated.app_context():
        pk = sorted(expected_pks(username, grid), key=lambda s: (len(s), s))[-1]
    client = _login(elevated, username)
    resp = post(client, f"{base}/edit/{pk}", edit_data(elevated, username, grid, pk))
    assert resp.status_code == 302, resp.get_data(as_text=True)[-3000:]
    with elevated.app_context():
        state = row_state(model, pk)
    changed = state["course_name"] if grid == "HourRecordView" else state["name"]
    assert changed.startswith("越权修改")


def test_delete_in_scope_works_and_get_delete_is_refused(app, elevated):
    client = _login(elevated, "clerk_a")
    with elevated.app_context():
        pks = sorted(expected_pks("clerk_a", "HourRecordView"))
    resp = client.get(f"/hourrecordview/delete/{pks[0]}")
    assert resp.status_code == 302
    with elevated.app_context():
        assert row_state(HourRecord, pks[0]) is not None, "GET must not delete"
    resp = post(client, f"/hourrecordview/delete/{pks[0]}")
    assert resp.status_code == 302
    with elevated.app_context():
        assert row_state(HourRecord, pks[0]) is None
        entry = db.session.execute(
            select(AuditLog).where(AuditLog.action == "delete", AuditLog.object_id == pks[0])
        ).scalar_one()
        assert entry.username == "clerk_a"


def test_get_delete_is_refused_for_admin(app, login_as):
    client = login_as("admin")
    with app.app_context():
        pk = min(all_pks("HourRecordView"), key=int)
    resp = client.get(f"/hourrecordview/delete/{pk}", follow_redirects=True)
    assert resp.status_code == 200
    with app.app_context():
        assert row_state(HourRecord, pk) is not None


# ---------------------------------------------------------------- actions


def _records(app, username, foreign):
    with app.app_context():
        own = expected_pks(username, "HourRecordView")
        everything = all_pks("HourRecordView")
    pool = (everything - own) if foreign else own
    return sorted(pool, key=int)[:3]


def _touched(app):
    with app.app_context():
        return {str(r.id) for r in db.session.execute(
            select(HourRecord).where(HourRecord.review_comment == TOUCHED)).scalars()}


def test_stock_fab_action_post_ignores_the_scope(app, elevated):
    """Why ScopedModelView overrides the actions: stock FAB acts on any id posted."""
    client = _login(elevated, "clerk_a")
    foreign = _records(elevated, "clerk_a", foreign=True)
    resp = post(client, "/stockprobe/action_post", {"action": "touch", "rowid": foreign})
    assert resp.status_code == 302
    assert _touched(elevated) == set(foreign)


@pytest.mark.parametrize("username", ["clerk_a", "clerk_b", "bureau_nj", "bureau_sz", "organizer",
                                      "agency_clerk", "zhangsan", "lisi", "wangwu", "unitadmin_a"])
def test_scoped_action_post_touches_only_own_rows(app, elevated, username):
    client = _login(elevated, username)
    own = _records(elevated, username, foreign=False)
    foreign = _records(elevated, username, foreign=True)
    assert own and foreign
    resp = post(client, "/probeaction/action_post", {"action": "touch", "rowid": own + foreign + ["x", ""]})
    assert resp.status_code == 302
    assert _touched(elevated) == set(own)


def test_scoped_single_action_refuses_foreign_id(app, elevated):
    client = _login(elevated, "clerk_a")
    with elevated.app_context():
        unit_b = db.session.execute(select(HourRecord.id).where(HourRecord.unit_id == 2)).scalars().first()
        unit_a = db.session.execute(select(HourRecord.id).where(HourRecord.unit_id == 1)).scalars().first()
    resp = post(client, f"/probeaction/action/touch/{unit_b}")
    assert resp.status_code == 302
    html = client.get("/", follow_redirects=True).get_data(as_text=True)
    assert "不在您的权限范围内" in html
    assert _touched(elevated) == set()
    # GET is refused even in scope (a link must never change data)
    client.get(f"/probeaction/action/touch/{unit_a}")
    assert _touched(elevated) == set()
    post(client, f"/probeaction/action/touch/{unit_a}")
    assert _touched(elevated) == {str(unit_a)}


def test_action_without_permission_is_refused(app, login_as):
    """On the real app, the action needs its permission before any row is loaded."""
    client = login_as("clerk_b")
    with app.app_context():
        own = sorted(expected_pks("clerk_b", "HourRecordView"))[:2]
    before = _touched(app)
    resp = post(client, "/hourrecordview/action_post", {"action": "touch", "rowid": own})
    assert resp.status_code in (302, 403, 404)
    assert _touched(app) == before


# ---------------------------------------------------------------- CSRF


def test_state_changing_post_without_csrf_token_is_refused(app, elevated):
    client = _login(elevated, "admin")
    with elevated.app_context():
        pk = sorted(expected_pks("clerk_a", "HourRecordView"), key=int)[0]
        before = row_state(HourRecord, pk)
        persons = db.session.execute(select(db.func.count(Person.id))).scalar()
    data = edit_data(elevated, "admin", "HourRecordView", pk)
    assert client.post(f"/hourrecordview/edit/{pk}", data=data).status_code == 400
    assert client.post(f"/hourrecordview/delete/{pk}").status_code == 400
    assert client.post("/probeaction/action_post", data={"action": "touch", "rowid": [pk]}).status_code == 400
    assert client.post(f"/probeaction/action/touch/{pk}").status_code == 400
    assert client.post("/personview/add", data={"name": "无令牌", "id_type": "RESIDENT",
                                                "id_number": "11010519491231002X"}).status_code == 400
    # a wrong token is no better than none
    assert client.post(f"/hourrecordview/delete/{pk}", data={"csrf_token": "forged"}).status_code == 400
    with elevated.app_context():
        assert row_state(HourRecord, pk) == before
        assert db.session.execute(select(db.func.count(Person.id))).scalar() == persons
    assert _touched(elevated) == set()
    # ... while the same delete with the session's token goes through
    resp = client.post(f"/hourrecordview/delete/{pk}", data={"csrf_token": csrf_token(client)})
    assert resp.status_code == 302
    with elevated.app_context():
        assert row_state(HourRecord, pk) is None


def test_login_without_csrf_token_is_refused(client):
    resp = client.post("/login/", data={"username": "admin", "password": "Demo@2026"})
    assert resp.status_code in (200, 400)
    assert "退出" not in client.get("/", follow_redirects=True).get_data(as_text=True)


# ---------------------------------------------------------------- exports


def _export_keys(app, username, grid):
    """What the export must hold: one key per expected row (a multiset)."""
    from collections import Counter

    with app.app_context():
        pks = expected_pks(username, grid)
        model = GRIDS[grid][0]
        rows = [db.session.get(model, pk if model is Region else int(pk)) for pk in pks]
        if grid == "HourRecordView":
            return Counter((r.person.name, r.course_name, r.start_date.isoformat()) for r in rows)
        if grid in ("PersonView", "UnitView", "RegionView"):
            return Counter(r.name for r in rows)
        return Counter({"rows": len(rows)})


@pytest.mark.parametrize("username", USERS)
def test_exports_hold_exactly_the_scope(app, login_as, username):
    import io
    from collections import Counter

    import openpyxl

    with app.app_context():
        seed_audit_entries()
    client = login_as(username)
    checked = 0
    for grid, (model, base) in GRIDS.items():
        with app.app_context():
            allowed = may(username, grid, "can_export")
        expected = _export_keys(app, username, grid)  # before: an export is itself logged
        resp = client.get(f"{base}/export/")
        if not allowed:
            assert resp.status_code in (302, 403, 404), (username, grid)
            assert not resp.data.startswith(b"PK"), (username, grid)
            continue
        assert resp.status_code == 200 and resp.data.startswith(b"PK"), (username, grid, resp.status_code)
        sheet = openpyxl.load_workbook(io.BytesIO(resp.data)).worksheets[0]
        header, *rows = list(sheet.iter_rows(values_only=True))
        rows = [r for r in rows if any(v not in (None, "") for v in r)]
        if grid == "HourRecordView":
            i, j, k = header.index("姓名"), header.index("课程（项目）名称"), header.index("开始日期")
            got = Counter((r[i], r[j], r[k].date().isoformat() if hasattr(r[k], "date") else str(r[k])[:10])
                          for r in rows)
        elif grid in ("PersonView", "UnitView", "RegionView"):
            name_col = {"PersonView": "姓名", "UnitView": "单位名称", "RegionView": "名称"}[grid]
            got = Counter(r[header.index(name_col)] for r in rows)
        else:
            got = Counter({"rows": len(rows)})
        assert got == expected, (username, grid, sum(got.values()), sum(expected.values()))
        checked += 1
    # every role but the applicant exports something
    assert bool(checked) == (username not in ("zhangsan", "lisi", "wangwu")), (username, checked)
