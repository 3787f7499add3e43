"""National data interchange (部省对接): incremental feed, REST API with JWT, file export."""
import csv
import datetime
import io
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlalchemy import select, update

from app.extensions import db
from app.models import AuditLog, Category, HourRecord, LearningForm, Person, Source, Status, Unit
from app.security.scope import scope_of
from app.services import national
from app.services.errors import OutOfScope, ValidationFailed
from app.services.persons import attach_person
from app.services.records import place_record

YEAR = datetime.date.today().year - 1


@pytest.fixture
def no_lag(app, monkeypatch):
    monkeypatch.setitem(app.config, "NATIONAL_FEED_LAG_SECONDS", 0)


def _scope(app, username):
    return scope_of(app.appbuilder.sm.find_user(username=username))


def _nanjing_approved_ids():
    return set(db.session.execute(
        select(HourRecord.id).where(
            HourRecord.status == Status.APPROVED,
            HourRecord.region_code.like("3201%"),
        )
    ).scalars())


def _new_record(person, course, status=Status.APPROVED, year=YEAR, **kw):
    r = HourRecord(
        person=person, year=year, category=Category.PRO, learning_form=LearningForm.TRAIN_ONSITE,
        course_name=course, organizer_name="测试举办单位", start_date=datetime.date(year, 6, 1),
        end_date=datetime.date(year, 6, 2), hours=Decimal("12"), source=Source.UNIT_IMPORT,
        status=status, **kw,
    )
    place_record(r, person)
    db.session.add(r)
    return r


def _person_in(region_prefix):
    return db.session.execute(
        select(Person).join(Unit, Unit.id == Person.unit_id)
        .where(Unit.region_code.like(region_prefix + "%")).order_by(Person.id)
    ).scalars().first()


# ------------------------------------------------------------------ the feed


def test_cursor_never_skips_or_repeats_under_inserts_and_updates(app, ctx, no_lag):
    scope = _scope(app, "bureau_nj")
    nj = _person_in("3201")
    sz = _person_in("3205")
    delivered = []  # every item, in delivery order
    cursor, pages = None, 0
    revoked_id = corrected_id = again_id = None
    while True:
        page = national.changes(cursor=cursor, page_size=7, scope=scope)
        delivered.extend(page.items)
        cursor = page.next_cursor
        pages += 1
        # Between pages, other users keep working:
        if pages == 1:
            # a record already delivered is revoked,
            revoked_id = next(i["id"] for i in page.items if i["status"] == "APPROVED")
            db.session.execute(update(HourRecord).where(HourRecord.id == revoked_id)
                               .values(status=Status.REVOKED, revoke_reason="证明材料不实"))
            # a new approved record is added in Nanjing, one in Suzhou,
            _new_record(nj, "分页期间新增的课程")
            _new_record(sz, "苏州新增的课程")
            db.session.commit()
        if pages == 2:
            # a record not yet delivered is corrected (its hours change),
            seen = {i["id"] for i in delivered}
            corrected_id = max(_nanjing_approved_ids() - seen)
            rec = db.session.get(HourRecord, corrected_id)
            rec.hours = Decimal("7.5")
            # and a delivered one is corrected too.
            again_id = next(i["id"] for i in delivered if i["id"] != revoked_id and not i["removed"])
            again = db.session.get(HourRecord, again_id)
            again.organizer_name = "更正后的举办单位"
            db.session.commit()
        if not page.has_more:
            break
    assert pages > 5

    versions = [(i["id"], i["updated_at"]) for i in delivered]
    assert len(versions) == len(set(versions)), "a version was delivered twice"

    # The consumer's copy after applying the feed in order equals the database.
    copy = {}
    for item in delivered:
        if item["removed"]:
            copy.pop(item["id"], None)
        else:
            copy[item["id"]] = item
    assert set(copy) == _nanjing_approved_ids()
    for rid, item in copy.items():
        rec = db.session.get(HourRecord, rid)
        assert Decimal(item["hours"]) == rec.hours
        assert item["organizer_name"] == rec.organizer_name
        assert item["region_code"].startswith("3201")
    # The revoked record came twice: first approved, then as a tombstone without personal data.
    states = [i for i in delivered if i["id"] == revoked_id]
    assert [s["status"] for s in states] == ["APPROVED", "REVOKED"]
    assert states[1]["removed"] is True and "id_number" not in states[1] and "name" not in states[1]
    # The corrected record that had not been delivered yet came once, corrected.
    assert [Decimal(i["hours"]) for i in delivered if i["id"] == corrected_id] == [Decimal("7.5")]
    assert copy[again_id]["organizer_name"] == "更正后的举办单位"
    assert len([i for i in delivered if i["id"] == again_id]) == 2
    # Nothing from Suzhou.
    assert not any(i.get("course_name") == "苏州新增的课程" for i in delivered)
    assert any(i.get("course_name") == "分页期间新增的课程" for i in delivered)

    # Caught up: the same cursor, nothing new.
    page = national.changes(cursor=cursor, page_size=7, scope=scope)
    assert page.items == [] and page.next_cursor == cursor and not page.has_more


def _pull_all(scope, cursor=None, page_size=500, **filters):
    items = []
    while True:
        page = national.changes(cursor=cursor, page_size=page_size, scope=scope, **filters)
        items += page.items
        cursor = page.next_cursor
        if not page.has_more:
            return items, cursor


def test_never_approved_records_never_appear_and_a_full_pull_is_exact(app, ctx, no_lag):
    """Drafts, pending, returned and withdrawn records, with their personal data,
    never leave the province; a full pull from an empty cursor returns exactly the
    records in scope that are approved or once were (revoked), each once."""
    scope = _scope(app, "bureau_nj")
    nj = _person_in("3201")
    for status in (Status.DRAFT, Status.SUBMITTED, Status.RETURNED, Status.WITHDRAWN):
        _new_record(nj, f"从未核准的课程{status.name}", status=status)
    revoked = _new_record(nj, "已撤销的课程", status=Status.REVOKED, revoke_reason="证明材料不实")
    db.session.commit()
    items, _cursor = _pull_all(scope, page_size=7)
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids)), "a record came twice"
    H = HourRecord
    never = set(db.session.execute(select(H.id).where(
        H.region_code.like("3201%"), H.status.notin_((Status.APPROVED, Status.REVOKED)))).scalars())
    assert len(never) >= 4 and not never & set(ids)
    once = set(db.session.execute(select(H.id).where(
        H.region_code.like("3201%"), H.status.in_((Status.APPROVED, Status.REVOKED)))).scalars())
    assert set(ids) == once and national.in_scope_count(scope=scope) == len(once)
    assert not any(i.get("course_name", "").startswith("从未核准") for i in items)
    tomb = next(i for i in items if i["id"] == revoked.id)
    assert tomb == {"id": revoked.id, "status": "REVOKED", "updated_at": tomb["updated_at"], "removed": True}


def test_a_record_enters_when_first_approved_and_leaves_as_a_tombstone(app, ctx, no_lag):
    from app.services import approval

    scope = _scope(app, "bureau_nj")
    _items, cursor = _pull_all(scope)
    pending = db.session.execute(select(HourRecord).where(
        HourRecord.region_code.like("3201%"), HourRecord.status == Status.SUBMITTED)
        .order_by(HourRecord.id)).unique().scalars().first()
    pending.organizer_name = "核准前的更正"
    db.session.commit()
    items, cursor = _pull_all(scope, cursor)
    assert items == []  # a change before approval sends nothing
    admin = app.appbuilder.sm.find_user(username="admin")
    assert approval.transition([pending.id], "approve", user=admin, scope=scope_of(admin)).done
    items, cursor = _pull_all(scope, cursor)
    assert [(i["id"], i["status"], i["organizer_name"]) for i in items] == [(pending.id, "APPROVED", "核准前的更正")]
    # Changed while approved: sent again.
    db.session.get(HourRecord, pending.id).course_name = "核准后的更正"
    db.session.commit()
    items, cursor = _pull_all(scope, cursor)
    assert [(i["id"], i["course_name"]) for i in items] == [(pending.id, "核准后的更正")]
    assert approval.transition([pending.id], "revoke", user=admin, scope=scope_of(admin),
                               comment="证明材料不实").done
    items, cursor = _pull_all(scope, cursor)
    assert items == [{"id": pending.id, "status": "REVOKED", "updated_at": items[0]["updated_at"], "removed": True}]


def test_once_approved_is_what_follows_approval_and_nothing_before_it():
    """The feed reads the statuses reachable from 已核准 (app.services.approval's
    state machine).  None of them may be reachable without passing 已核准, or a
    never-approved record could enter the feed: then a stored "first approved"
    mark would be needed instead."""
    from app.services.approval import TRANSITIONS

    assert set(national.ONCE_APPROVED) == {Status.APPROVED, Status.REVOKED}
    before, todo = {Status.DRAFT}, [Status.DRAFT]
    while todo:  # every status a record can have without ever being approved
        status = todo.pop()
        for sources, target in TRANSITIONS.values():
            if status in sources and target != Status.APPROVED and target not in before:
                before.add(target)
                todo.append(target)
    assert before == {Status.DRAFT, Status.SUBMITTED, Status.RETURNED, Status.WITHDRAWN}
    assert not before & set(national.ONCE_APPROVED)


def test_times_are_rfc3339_with_the_beijing_offset(app, ctx, no_lag):
    """Stored naive UTC, answered as +08:00 (15:00 UTC is 23:00 in Beijing)."""
    nj = _person_in("3201")
    r = _new_record(nj, "时间格式的课程", reviewed_at=datetime.datetime(2024, 8, 15, 15, 0))
    db.session.commit()
    item = national.feed_record(r.id, scope=_scope(app, "bureau_nj"))
    assert item["approved_at"] == "2024-08-15T23:00:00+08:00"
    stamp = datetime.datetime.fromisoformat(item["updated_at"])
    assert stamp.utcoffset() == datetime.timedelta(hours=8)
    assert stamp.replace(tzinfo=None) - datetime.timedelta(hours=8) == r.updated_at
    assert item["hours"] == 12 and isinstance(item["hours"], int)
    r.hours = Decimal("7.5")
    db.session.commit()
    assert national.feed_record(r.id, scope=_scope(app, "bureau_nj"))["hours"] == 7.5
    assert national.rfc3339(None) is None
    # The cursor keeps the stored UTC value exactly.
    cursor = national.encode_cursor(r.updated_at, r.id)
    assert national.decode_cursor(cursor) == (r.updated_at, r.id)


def test_csv_export_writes_rfc3339_approval_times(app, client):
    auth = _token(client, "bureau_nj")
    raw = client.get("/api/v1/national_record/export", headers=auth,
                     query_string={"region": "320100", "year": YEAR}).get_data().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(raw)))
    col = rows[0].index("认定时间")
    assert len(rows) > 1
    for row in rows[1:]:
        assert datetime.datetime.fromisoformat(row[col]).utcoffset() == datetime.timedelta(hours=8), row[col]


def _drain(scope, now, cursor=None):
    while True:
        page = national.changes(cursor=cursor, page_size=500, scope=scope, now=now)
        cursor = page.next_cursor
        if not page.has_more:
            return cursor


def test_late_commit_is_not_skipped_thanks_to_the_lag(app, ctx, monkeypatch):
    """Transaction A stamps updated_at, transaction B stamps a later one and commits
    first, A commits afterwards: A's row must still be read."""
    scope = _scope(app, "bureau_nj")
    nj = _person_in("3201")
    sec = datetime.timedelta(seconds=1)
    t0 = datetime.datetime.utcnow() + 5 * sec

    # Without a lag, A's row falls behind the cursor (handed out after B) and is lost:
    monkeypatch.setitem(app.config, "NATIONAL_FEED_LAG_SECONDS", 0)
    _new_record(nj, "先提交的课程甲", updated_at=t0 - 1 * sec)  # B
    db.session.commit()
    cursor = _drain(scope, t0)
    late = _new_record(nj, "晚提交的课程甲", updated_at=t0 - 2 * sec)  # A
    db.session.commit()
    page = national.changes(cursor=cursor, page_size=500, scope=scope, now=t0 + 30 * sec)
    assert late.id not in [i["id"] for i in page.items]

    # With the lag, the reader stays behind `now - lag`, so the same race is safe:
    monkeypatch.setitem(app.config, "NATIONAL_FEED_LAG_SECONDS", 60)
    t1 = t0 + 600 * sec
    quick = _new_record(nj, "先提交的课程乙", updated_at=t1 - 10 * sec)  # B
    db.session.commit()
    cursor = _drain(scope, t1, cursor)
    late2 = _new_record(nj, "晚提交的课程乙", updated_at=t1 - 30 * sec)  # A
    db.session.commit()
    page = national.changes(cursor=cursor, page_size=500, scope=scope, now=t1)
    assert page.items == []
    page = national.changes(cursor=cursor, page_size=500, scope=scope, now=t1 + 61 * sec)
    assert [i["id"] for i in page.items] == [late2.id, quick.id]


def test_moving_a_person_bumps_updated_at_and_redelivers(app, ctx, no_lag):
    """Set-based updates elsewhere (persons.attach_person) must move rows in the feed."""
    province = _scope(app, "bureau_js")
    cursor = None
    while True:
        page = national.changes(cursor=cursor, page_size=1000, scope=province)
        cursor = page.next_cursor
        if not page.has_more:
            break
    person = _person_in("3201")
    suzhou_unit = db.session.execute(select(Unit).where(Unit.region_code.like("3205%"))).scalars().first()
    moved = set(db.session.execute(select(HourRecord.id).where(
        HourRecord.person_id == person.id, HourRecord.status.in_(national.ONCE_APPROVED))).scalars())
    assert moved
    attach_person(person, suzhou_unit)
    db.session.commit()
    page = national.changes(cursor=cursor, page_size=1000, scope=province)
    assert {i["id"] for i in page.items} == moved
    assert all(i["region_code"] == suzhou_unit.region_code for i in page.items if not i["removed"])


def test_a_city_feed_reads_the_updated_at_index(app, ctx, no_lag):
    """A city bureau's feed pages along (updated_at, id): on SQLite the city code
    of its scope is hidden from the index chooser, which without statistics (as
    here) would otherwise read ix_hr_city and sort the whole city."""
    from sqlalchemy import event

    statements = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "ORDER BY hour_record.updated_at" in statement:
            statements.append((statement, parameters))

    engine = db.session.get_bind()
    event.listen(engine, "before_cursor_execute", capture)
    try:
        page = national.changes(scope=_scope(app, "bureau_nj"))
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    nanjing = set(db.session.execute(select(HourRecord.id).where(HourRecord.region_code.like("3201%"))).scalars())
    assert page.items and {r["id"] for r in page.items} <= nanjing
    (statement, parameters), = statements
    if engine.dialect.name == "sqlite":
        assert "substr(hour_record.region_code, 1, 4) || ''" in statement
        plan = " ".join(row[3] for row in db.session.connection().exec_driver_sql(
            "EXPLAIN QUERY PLAN " + statement, parameters))
        assert "ix_hr_updated" in plan and "ix_hr_city" not in plan, plan
    else:  # PostgreSQL plans from its statistics: the scope as it is
        assert "substr(hour_record.region_code, 1, 4) =" in statement


def test_bad_cursor_and_filters_are_refused(app, ctx):
    scope = _scope(app, "bureau_nj")
    token = national.encode_cursor(datetime.datetime(2025, 1, 1), 5)
    with pytest.raises(ValidationFailed):
        national.changes(cursor=token[:-2] + "xx", scope=scope)
    with pytest.raises(ValidationFailed):
        national.changes(page_size=5000, scope=scope)
    with pytest.raises(ValidationFailed):
        national.changes(year="20x5", scope=scope)
    with pytest.raises(OutOfScope):
        national.changes(region="320500", scope=scope)


# ---------------------------------------------------------------- REST API


def _token(client, username):
    resp = client.post("/api/v1/security/login",
                       json={"username": username, "password": "Demo@2026", "provider": "db"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return {"Authorization": "Bearer " + resp.get_json()["access_token"]}


def test_bureau_client_pulls_every_nanjing_record_exactly_once(app, client, no_lag):
    auth = _token(client, "bureau_nj")
    got, cursor, pages = [], "", 0
    while True:
        resp = client.get("/api/v1/national_record/changes",
                          query_string={"cursor": cursor, "page_size": 10}, headers=auth)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        body = resp.get_json()
        got.extend(i["id"] for i in body["items"] if not i["removed"])
        cursor = body["next_cursor"]
        pages += 1
        if not body["has_more"]:
            break
    with app.app_context():
        expected = _nanjing_approved_ids()
    assert pages >= len(expected) // 10
    assert len(got) == len(set(got))
    assert set(got) == expected

    # The same pull for one district and year.
    got_year, cursor = [], ""
    while True:
        body = client.get("/api/v1/national_record/changes", headers=auth, query_string={
            "page_size": 25, "region": "320100", "year": YEAR, "cursor": cursor}).get_json()
        got_year.extend(i["id"] for i in body["items"] if not i["removed"])
        cursor = body["next_cursor"]
        if not body["has_more"]:
            break
    with app.app_context():
        expected_year = {i for i in expected if db.session.get(HourRecord, i).year == YEAR}
    assert sorted(got_year) == sorted(expected_year)


def test_api_get_is_scoped_and_answers_as_the_feed(app, client, no_lag):
    with app.app_context():
        nj_ids = _nanjing_approved_ids()
        sz_id = db.session.execute(select(HourRecord.id).where(
            HourRecord.region_code.like("3205%"), HourRecord.status == Status.APPROVED)).scalars().first()
        pending_nj = db.session.execute(select(HourRecord.id).where(
            HourRecord.region_code.like("3201%"), HourRecord.status != Status.APPROVED)).scalars().first()
    auth = _token(client, "bureau_nj")
    one = sorted(nj_ids)[0]
    resp = client.get(f"/api/v1/national_record/{one}", headers=auth)
    assert resp.status_code == 200
    body = resp.get_json()
    with app.app_context():
        page = national.changes(page_size=1000, scope=_scope(app, "bureau_nj"))
    assert body == next(i for i in page.items if i["id"] == one)
    # foreign, never-approved or unknown rows are not found
    for pk in (sz_id, pending_nj, 2 ** 31 - 1):
        resp = client.get(f"/api/v1/national_record/{pk}", headers=auth)
        assert resp.status_code == 404 and "权限范围" in resp.get_json()["message"]
    # Suzhou's bureau sees the Suzhou row and not Nanjing's.
    sz_auth = _token(app.test_client(), "bureau_sz")
    assert client.get(f"/api/v1/national_record/{sz_id}", headers=sz_auth).status_code == 200
    assert client.get(f"/api/v1/national_record/{one}", headers=sz_auth).status_code == 404
    # Read-only: other methods are refused with the methods allowed.
    for method in (client.delete, client.put, client.post):
        resp = method(f"/api/v1/national_record/{one}", headers=auth)
        assert resp.status_code == 405 and set(resp.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    # FAB's generic list and _info routes are not offered.
    assert client.get("/api/v1/national_record/", headers=auth).status_code == 404
    assert client.get("/api/v1/national_record/_info", headers=auth).status_code == 404


def test_api_refuses_without_token_or_permission(client, app):
    from flask_jwt_extended import create_access_token

    with app.app_context():
        uid = str(app.appbuilder.sm.find_user(username="bureau_nj").id)
        expired = create_access_token(identity=uid, expires_delta=datetime.timedelta(seconds=-5))
    for headers, why in (({}, "未登录"), ({"Authorization": "Bearer not-a-token"}, "格式不正确"),
                         ({"Authorization": "Bearer a.b.c"}, "格式不正确"),
                         ({"Authorization": "Basic eDp5"}, "未登录"),
                         ({"Authorization": "Bearer " + expired}, "已过期")):
        resp = client.get("/api/v1/national_record/changes", headers=headers)
        assert resp.status_code == 401, (headers, resp.get_data(as_text=True))
        assert resp.is_json and why in resp.get_json()["message"], resp.get_json()
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    # A unit clerk has no access to the interchange.
    auth = _token(app.test_client(), "clerk_a")
    assert client.get("/api/v1/national_record/changes", headers=auth).status_code == 403
    assert client.get("/api/v1/national_record/1", headers=auth).status_code == 403
    assert "权限" in client.get("/api/v1/national_record/export", headers=auth).get_json()["message"]
    # Wrong password; a body without a password names the field.
    resp = client.post("/api/v1/security/login", json={"username": "bureau_nj", "password": "x", "provider": "db"})
    assert resp.status_code == 401 and resp.get_json()["message"] == "用户名或密码错误"
    resp = client.post("/api/v1/security/login", json={"username": "bureau_nj"})
    assert resp.status_code == 400 and resp.get_json()["field"] == "password"
    # A refresh with an access token is a 401 too (flask-jwt-extended said 422).
    resp = client.post("/api/v1/security/refresh", headers=_token(client, "bureau_nj"))
    assert resp.status_code == 401


def test_api_bad_parameters_are_400_naming_the_field(client):
    auth = _token(client, "bureau_nj")
    url = "/api/v1/national_record/changes"
    for args, field in (({"year": "0"}, "year"), ({"year": "20x5"}, "year"), ({"year": ""}, "year"),
                        ({"page_size": "0"}, "page_size"), ({"page_size": "1001"}, "page_size"),
                        ({"region": "3"}, "region"), ({"region": "32010x"}, "region"),
                        ({"cursor": "garbage"}, "cursor")):
        resp = client.get(url, query_string=args, headers=auth)
        assert resp.status_code == 400, (args, resp.get_data(as_text=True))
        body = resp.get_json()
        assert body["field"] == field, body
        assert (field in body["message"]) if field != "cursor" else ("游标无效" in body["message"]), body
    resp = client.get("/api/v1/national_record/export", query_string={"format": "pdf"}, headers=auth)
    assert resp.status_code == 400 and resp.get_json()["field"] == "format"
    # The bounds themselves are accepted.
    for args in ({"year": "2000"}, {"year": "2100"}, {"page_size": "1"}, {"page_size": "1000"}, {"region": ""}):
        assert client.get(url, query_string=args, headers=auth).status_code == 200, args


def test_api_changes_refuses_foreign_region_and_bad_cursor(client):
    auth = _token(client, "bureau_nj")
    resp = client.get("/api/v1/national_record/changes", query_string={"region": "320500"}, headers=auth)
    assert resp.status_code == 403
    resp = client.get("/api/v1/national_record/changes", query_string={"cursor": "garbage"}, headers=auth)
    assert resp.status_code == 400
    assert "游标无效" in resp.get_json()["message"]


def test_openapi_document_describes_the_feed(client):
    auth = _token(client, "bureau_nj")
    spec = client.get("/api/v1/_openapi", headers=auth).get_json()
    feed = spec["paths"]["/api/v1/national_record/changes"]["get"]
    names = {p["name"] for p in feed["parameters"]}
    assert names == {"cursor", "region", "year", "page_size"}
    assert feed["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/NationalFeedPage"}
    assert "next_cursor" in spec["components"]["schemas"]["NationalFeedPage"]["properties"]
    assert "/api/v1/security/login" in spec["paths"]
    assert "/api/v1/national_record/{pk}" in spec["paths"]


# ------------------------------------------------------------------ export


def _expected_rows(region_prefix, year):
    return db.session.execute(
        select(HourRecord).where(
            HourRecord.status == Status.APPROVED, HourRecord.year == year,
            HourRecord.region_code.like(region_prefix + "%"),
        ).order_by(HourRecord.id)
    ).unique().scalars().all()


def test_api_csv_export_has_bom_and_layout_headers(app, client):
    auth = _token(client, "bureau_nj")
    resp = client.get("/api/v1/national_record/export",
                      query_string={"region": "320100", "year": YEAR, "format": "csv"}, headers=auth)
    assert resp.status_code == 200
    raw = resp.get_data()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert tuple(rows[0]) == national.NATIONAL_HEADERS
    for header in ("证件类型", "证件号码", "姓名", "单位名称", "行政区划代码", "科目类别", "学习形式",
                   "举办单位", "开始日期", "结束日期", "学时", "来源"):
        assert header in rows[0]
    with app.app_context():
        expected = _expected_rows("3201", YEAR)
        assert len(rows) - 1 == len(expected) > 0
        first = expected[0]
        head = dict(zip(rows[0], rows[1]))
        assert head["证件号码"] == first.person.id_number  # full number: it is the national key
        assert head["姓名"] == first.person.name
        assert head["单位名称"] == first.unit.name
        assert head["科目类别"] == first.category.value
        assert head["开始日期"] == first.start_date.isoformat()
        assert float(head["学时"]) == float(first.hours)
        assert all(r[rows[0].index("行政区划代码")].startswith("3201") for r in rows[1:])
        # the export is in the audit log
        assert db.session.execute(select(AuditLog).where(AuditLog.action == "export_national")).scalars().first()
    resp = client.get("/api/v1/national_record/export",
                      query_string={"region": "320500", "year": YEAR}, headers=auth)
    assert resp.status_code == 403


def test_web_xlsx_export(app, login_as):
    c = login_as("bureau_nj")
    html = c.get("/national/").get_data(as_text=True)
    assert "部省对接" in html and "320102" in html and "320508" not in html
    assert 'id="swagger-link"' in html
    swagger = c.get("/swagger/v1").get_data(as_text=True)
    assert "/api/v1/_openapi" in swagger and "//cdn" not in swagger and "unpkg" not in swagger
    resp = c.get("/national/export", query_string={"region": "320102", "year": YEAR, "format": "xlsx"})
    assert resp.status_code == 200
    ws = load_workbook(io.BytesIO(resp.get_data())).active
    values = list(ws.values)
    assert tuple(values[0]) == national.NATIONAL_HEADERS
    with app.app_context():
        expected = _expected_rows("320102", YEAR)
        assert len(values) - 1 == len(expected) > 0
        assert sorted(v[1] for v in values[1:]) == sorted(r.person.id_number for r in expected)
    # Foreign region: refused, not an empty file.
    assert c.get("/national/export", query_string={"region": "320500", "year": YEAR}).status_code == 404
    # A unit clerk may not export the national layout.
    clerk = login_as("clerk_a")
    resp = clerk.get("/national/export", query_string={"region": "320102", "year": YEAR})
    assert resp.status_code in (302, 403)
    assert resp.status_code != 200


def _open_transaction_stamping_a_row(person):
    """Another connection opens a transaction, stamps a row now and keeps it open."""
    conn = db.engine.connect()
    tx = conn.begin()
    conn.execute(select(1))
    stamp = datetime.datetime.utcnow()
    rid = conn.execute(HourRecord.__table__.insert().values(
        person_id=person.id, year=YEAR, category=Category.PRO, learning_form=LearningForm.STUDY,
        course_name="长事务中的课程", start_date=datetime.date(YEAR, 4, 1), end_date=datetime.date(YEAR, 4, 1),
        hours=Decimal(8), source=Source.INDUSTRY_IMPORT, status=Status.APPROVED, late_report=False,
        unit_id=person.unit_id, region_code=person.unit.region_code, created_at=stamp, updated_at=stamp,
    ).returning(HourRecord.__table__.c.id)).scalar_one()
    return conn, tx, rid


def test_long_transaction_holds_the_horizon(app, ctx, no_lag):
    """Even with no lag, a row of a transaction still open cannot be overtaken on
    PostgreSQL (the horizon stays before the oldest open transaction); on SQLite,
    where one writer excludes the others, the row simply waits for its commit."""
    from tests.conftest import IS_PG

    scope = _scope(app, "bureau_nj")
    nj = _person_in("3201")
    cursor = _drain(scope, None)
    if not IS_PG:
        # SQLite: the open write transaction blocks other writers; the feed reads on.
        conn, tx, rid = _open_transaction_stamping_a_row(nj)
        page = national.changes(cursor=cursor, page_size=500, scope=scope)
        assert rid not in [i["id"] for i in page.items]
        tx.commit()
        conn.close()
        page = national.changes(cursor=cursor, page_size=500, scope=scope)
        assert [i["id"] for i in page.items] == [rid]
        return
    conn, tx, rid = _open_transaction_stamping_a_row(nj)
    try:
        # Another person of the city: the open transaction holds nj's yearly total
        # (person_year_total, kept by triggers), which a second record of nj's would
        # wait for; the feed's horizon is the question here, not that lock.
        other = db.session.execute(
            select(Person).join(Unit, Unit.id == Person.unit_id)
            .where(Unit.region_code.like("3201%"), Person.id != nj.id).order_by(Person.id)
        ).scalars().first()
        quick = _new_record(other, "短事务中的课程")  # stamped later, committed first
        db.session.commit()
        page = national.changes(cursor=cursor, page_size=500, scope=scope)
        assert page.items == [] and page.next_cursor == cursor
        tx.commit()
    finally:
        conn.close()
    page = national.changes(cursor=cursor, page_size=500, scope=scope)
    assert [i["id"] for i in page.items] == [rid, quick.id]


# ------------------------------------------- industry import in the same layout


def _industry_user(app):
    from stdnum.cn import uscc

    from app.models import UnitKind
    from app.security import roles as R

    body = "11320000MB0000008"
    unit = Unit(name="省卫生健康行业主管部门", credit_code=body + uscc.calc_check_digit(body + "0"),
                kind=UnitKind.INDUSTRY, region_code="320000")
    db.session.add(unit)
    db.session.commit()
    sm = app.appbuilder.sm
    user = sm.add_user("industry_nat", "行业", "经办", "industry_nat@demo.invalid", sm.find_role(R.INDUSTRY), "Demo@2026")
    user.unit_id = unit.id
    db.session.commit()
    return user, unit


def test_exported_national_file_imports_through_the_industry_pipeline(app, login_as, tmp_path, monkeypatch):
    """The file the bureau exports is the layout industry authorities deliver: the
    import pipeline (issue 4) recognises it, refuses to store its rows twice, and
    stores new rows in it as 行业导入, which then flow out through the national feed."""
    from openpyxl import Workbook

    from app.services import importer

    monkeypatch.setitem(app.config, "NATIONAL_FEED_LAG_SECONDS", 0)
    resp = login_as("bureau_nj").get("/national/export",
                                     query_string={"region": "320102", "year": YEAR, "format": "xlsx"})
    path = tmp_path / "national.xlsx"
    path.write_bytes(resp.get_data())
    rows = list(load_workbook(path).active.values)
    n = len(rows) - 1
    assert n > 0
    with app.app_context():
        user, unit = _industry_user(app)
        res = importer.analyse(str(path), "industry", user, filename="national.xlsx")
        assert res.layout == "national" and res.errors == []
        assert (res.rows_new, res.rows_dup_stored) == (0, n)  # nothing is stored twice

        # The authority's own courses in the same layout: new rows.
        wb = Workbook()
        ws = wb.active
        ws.append(list(rows[0]))
        course = rows[0].index("课程名称")
        for r in rows[1:]:
            r = list(r)
            r[course] = r[course] + "（行业继续教育）"
            ws.append(r)
        own = tmp_path / "industry.xlsx"
        wb.save(own)
        res = importer.store(str(own), "industry", user, filename="industry.xlsx")
        assert res.rows_stored == n
        stored = db.session.execute(select(HourRecord).where(HourRecord.reported_by_unit_id == unit.id)).unique().scalars().all()
        assert len(stored) == n
        assert {r.source for r in stored} == {Source.INDUSTRY_IMPORT}
        assert all(r.region_code == "320102" for r in stored)
        ids = {r.id for r in stored}
        counted = {r.id for r in stored if r.status == Status.APPROVED}
    # They reach the national system through the bureau's feed.
    with app.app_context():
        scope = _scope(app, "bureau_nj")
        items = []
        cursor = None
        while True:
            page = national.changes(cursor=cursor, page_size=500, scope=scope, year=YEAR)
            items += page.items
            cursor = page.next_cursor
            if not page.has_more:
                break
    delivered = {i["id"] for i in items if not i["removed"]}
    assert counted == ids and ids <= delivered
    assert {i["source"] for i in items if i["id"] in ids} == {"INDUSTRY_IMPORT"}


def test_xlsx_export_writes_a_formula_like_name_as_text_that_imports_back(app, login_as, tmp_path):
    """A person named =1+2 is exported as text behind an apostrophe, never as a
    formula; the industry import reads the file back as the names in the database."""
    from python_calamine import CalamineWorkbook

    from app.services import importer
    from app.services.demo import resident_id

    with app.app_context():
        unit = db.session.execute(select(Unit).where(Unit.region_code == "320102").order_by(Unit.id)).scalars().first()
        number = resident_id("320102", datetime.date(1987, 7, 7), 901)
        person = Person(name="=1+2", id_number=number, unit_id=unit.id, unit_confirmed=True)
        db.session.add(person)
        db.session.flush()
        _new_record(person, "+SUM(A1)")
        db.session.commit()
    resp = login_as("bureau_nj").get("/national/export",
                                     query_string={"region": "320102", "year": YEAR, "format": "xlsx"})
    assert resp.status_code == 200
    path = tmp_path / "national.xlsx"
    path.write_bytes(resp.get_data())

    ws = load_workbook(path).active
    assert ws.title == "学时数据" and tuple(c.value for c in ws[1]) == national.NATIONAL_HEADERS
    assert not [c.coordinate for row in ws.iter_rows() for c in row if c.data_type == "f"]
    row = next(r for r in ws.iter_rows(min_row=2) if r[1].value == number)
    id_number, name, course, start, approved = row[1], row[2], row[9], row[11], row[15]
    assert (name.value, name.data_type) == ("'=1+2", "s") and (course.value, course.data_type) == ("'+SUM(A1)", "s")
    assert id_number.data_type == "s" and id_number.number_format == "@"
    assert start.is_date and start.value == datetime.datetime(YEAR, 6, 1)
    assert approved.data_type == "s" and approved.value.endswith("+08:00")
    assert datetime.datetime.fromisoformat(approved.value).utcoffset() == datetime.timedelta(hours=8)
    values = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()
    got = next(r for r in values if r[1] == number)
    assert (got[2], got[9], got[11]) == ("'=1+2", "'+SUM(A1)", datetime.date(YEAR, 6, 1))

    with app.app_context():
        user, _unit = _industry_user(app)
        res = importer.analyse(str(path), "industry", user, filename="national.xlsx")
    # the names match the database (a name "'=1+2" would be refused): every row is a stored one
    assert (res.layout, res.errors, res.rows_new, res.rows_dup_stored) == ("national", [], 0, len(values) - 1)


def test_large_xlsx_export_runs_as_a_job(app, login_as, monkeypatch):
    import time

    monkeypatch.setitem(app.config, "EXPORT_INLINE_MAX_ROWS", 5)
    c = login_as("bureau_nj")
    resp = c.get("/national/export", query_string={"region": "320100", "year": YEAR, "format": "xlsx"})
    assert resp.status_code == 302 and "/national/job/" in resp.headers["Location"]
    job_url = resp.headers["Location"]
    for _ in range(100):
        html = c.get(job_url).get_data(as_text=True)
        if 'id="job-done"' in html or 'id="job-error"' in html:
            break
        time.sleep(0.2)
    assert 'id="job-done"' in html, html
    resp = c.get(job_url + "/download")
    assert resp.status_code == 200
    values = list(load_workbook(io.BytesIO(resp.get_data())).active.values)
    with app.app_context():
        expected = _expected_rows("3201", YEAR)
    assert tuple(values[0]) == national.NATIONAL_HEADERS
    assert sorted(v[1] for v in values[1:]) == sorted(r.person.id_number for r in expected)
    # Another bureau cannot open or download it.
    other = login_as("bureau_sz")
    assert other.get(job_url).status_code == 404
    assert other.get(job_url + "/download").status_code == 404
    # CSV still streams at once.
    resp = c.get("/national/export", query_string={"region": "320100", "year": YEAR, "format": "csv"})
    assert resp.status_code == 200 and resp.get_data().startswith(b"\xef\xbb\xbf")


# ------------------------------------------------- the national system's account


def _cli_account(app, *args):
    result = app.test_cli_runner().invoke(args=["ce", "national-account", *args])
    assert result.exit_code == 0, result.output
    fields = dict(line.split(":", 1) for line in result.output.splitlines() if ":" in line and not line.startswith("The"))
    return {k.strip(): v.strip() for k, v in fields.items()}, result.output


def test_national_account_reads_its_region_and_nothing_else(app, client, no_lag):
    from app.security import roles as R

    out, text = _cli_account(app, "create", "--region", "3201")
    assert out["username"] == "national_3201" and out["region"] == "320100"
    password = out["password"]
    assert len(password) >= 40 and text.count(password) == 1
    with app.app_context():
        user = app.appbuilder.sm.find_user(username="national_3201")
        assert [r.name for r in user.roles] == [R.NATIONAL_SYNC]
        assert user.password != password and not user.must_change_password
        nj_ids = _nanjing_approved_ids()
        sz_id = db.session.execute(select(HourRecord.id).where(
            HourRecord.region_code.like("3205%"), HourRecord.status == Status.APPROVED)).scalars().first()
    # A second account of the same name is refused; a bad region too.
    result = app.test_cli_runner().invoke(args=["ce", "national-account", "create", "--region", "3201"])
    assert result.exit_code != 0 and "已被使用" in result.output
    result = app.test_cli_runner().invoke(args=["ce", "national-account", "create", "--region", "99"])
    assert result.exit_code != 0 and "不存在" in result.output

    auth = _token_for(client, "national_3201", password)
    items, cursor = [], ""
    while True:
        body = client.get("/api/v1/national_record/changes", headers=auth,
                          query_string={"cursor": cursor, "page_size": 50}).get_json()
        items += body["items"]
        cursor = body["next_cursor"]
        if not body["has_more"]:
            break
    assert {i["id"] for i in items if not i["removed"]} == nj_ids
    assert client.get(f"/api/v1/national_record/{sz_id}", headers=auth).status_code == 404
    assert client.get("/api/v1/national_record/changes", headers=auth,
                      query_string={"region": "320500"}).status_code == 403
    assert client.get("/api/v1/national_record/export", headers=auth,
                      query_string={"region": "320100", "year": YEAR}).status_code == 200
    assert client.get("/api/v1/_openapi", headers=auth).status_code == 200
    # Nothing else: no web page, not even its profile.
    web = app.test_client()
    from tests.conftest import login

    resp = login(web, "national_3201", password)  # the web form refuses a machine account
    assert 'name="password"' in resp.get_data(as_text=True)
    for url in ("/hourrecordview/list/", "/national/", "/dashboard/", "/users/userinfo/", "/swagger/v1"):
        resp = web.get(url)
        assert resp.status_code in (302, 403, 404), url
        assert "national_3201" not in resp.get_data(as_text=True) or resp.status_code != 200
    # Each use is in the audit log, under the account's region (the bureau sees it).
    with app.app_context():
        entries = db.session.execute(select(AuditLog).where(AuditLog.username == "national_3201")
                                     .order_by(AuditLog.id)).scalars().all()
        actions = [e.action for e in entries]
        assert actions.count("national_pull") >= 2 and "export_national" in actions
        assert {e.region_code for e in entries if e.action == "national_pull"} == {"320100"}
        create = db.session.execute(select(AuditLog).where(AuditLog.action == "create_account",
                                                           AuditLog.object_id == str(user.id))).scalar_one()
        assert "NationalSync" in create.detail

    # A new credential: the old one stops working.
    out, _text = _cli_account(app, "reset", "national_3201")
    assert out["password"] != password
    resp = client.post("/api/v1/security/login",
                       json={"username": "national_3201", "password": password, "provider": "db"})
    assert resp.status_code == 401
    _token_for(client, "national_3201", out["password"])


def _token_for(client, username, password):
    resp = client.post("/api/v1/security/login",
                       json={"username": username, "password": password, "provider": "db"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return {"Authorization": "Bearer " + resp.get_json()["access_token"]}


def test_national_sync_role_has_the_api_only(app, ctx):
    from app.security import roles as R
    from app.services.roles_sync import sync_roles

    sync_roles()
    role = app.appbuilder.sm.find_role(R.NATIONAL_SYNC)
    assert {(pv.view_menu.name, pv.permission.name) for pv in role.permissions} == {
        ("NationalRecordApi", "can_get"), ("NationalRecordApi", "can_export"), ("OpenApi", "can_get")}
