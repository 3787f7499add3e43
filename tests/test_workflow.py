"""个人申报 → 单位核准 (issue 3): status machine, routing, scope on review pages and
proof downloads, bulk approval, concurrent review, audit trail, requirement,
uploads, year-end and departure review."""
import datetime
import io
import json
import re
import threading
from decimal import Decimal

import pytest
from PIL import Image
from reportlab.pdfgen import canvas
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage, MultiDict

from app.extensions import db
from app.models import (
    Attachment, AuditLog, CEUser, Category, HourRecord, LearningForm, Person, PersonReview,
    PersonUnitHistory, ReviewKind, Source, Status, Unit,
)
from app.security import roles as R
from app.security.scope import scope_of
from app.services import approval, attachments, declarations, requirement, reviews
from app.services.errors import InvalidTransition, OutOfScope, ValidationFailed
from tests.conftest import post

TODAY = datetime.date.today()
YEAR = TODAY.year
# Dates inside this year and not in the future.
D1 = max(datetime.date(YEAR, 1, 1), TODAY - datetime.timedelta(days=20))
D2 = max(D1, TODAY - datetime.timedelta(days=18))

USERS = ["admin", "bureau_js", "bureau_nj", "bureau_sz", "unitadmin_a", "clerk_a", "clerk_b",
         "agency_clerk", "organizer", "zhangsan", "lisi", "wangwu"]


# ------------------------------------------------------------------ helpers


def pdf_bytes(text="proof"):
    buf = io.BytesIO()
    c = canvas.Canvas(buf)
    c.drawString(72, 720, text)
    c.save()
    return buf.getvalue()


def png_bytes():
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


def user(username):
    return db.session.execute(select(CEUser).where(CEUser.username == username)).scalar_one()


def scope(username):
    return scope_of(user(username))


def form(**over):
    data = {
        "year": str(YEAR), "category": "PRO", "learning_form": "TRAIN_ONSITE",
        "course_name": "测试课程：结构抗震", "organizer_name": "东南大学继续教育学院",
        "start_date": D1.isoformat(), "end_date": D2.isoformat(), "hours": "8",
    }
    data.update(over)
    return MultiDict(data)


def declare(username, submit=True, **over):
    """Service-level declaration by `username` (app context required); returns the id."""
    u = user(username)
    rec = declarations.create_draft(u, form(**over))
    if submit:
        attachments.add(rec.id, FileStorage(io.BytesIO(pdf_bytes()), "证明.pdf"), u, scope_of(u))
        declarations.submit(rec.id, u, scope_of(u))
    return rec.id


def status_of(record_id):
    db.session.expire_all()
    return db.session.get(HourRecord, record_id).status


def audit_rows(record_id, action=None):
    q = select(AuditLog).where(AuditLog.object_type == "HourRecord", AuditLog.object_id == str(record_id))
    if action:
        q = q.where(AuditLog.action == action)
    return db.session.execute(q.order_by(AuditLog.id)).scalars().all()


def http_declare(client, proof=None, op="submit", **over):
    data = dict(form(**over).items())
    data["op"] = op
    if proof is not None:
        data["proof"] = proof
    return post(client, "/declare/new", data, content_type="multipart/form-data", follow_redirects=True)


def record_by_course(course):
    db.session.expire_all()
    return db.session.execute(select(HourRecord).where(HourRecord.course_name == course)).scalar_one()


# ------------------------------------------------------------------ status machine


def test_status_machine_full_cycle(app):
    with app.app_context():
        rid = declare("zhangsan", submit=False)
        assert status_of(rid) == Status.DRAFT
        zs, clerk = user("zhangsan"), user("clerk_a")
        # A draft without proof cannot be submitted.
        with pytest.raises(ValidationFailed, match="证明材料"):
            declarations.submit(rid, zs, scope_of(zs))
        attachments.add(rid, FileStorage(io.BytesIO(pdf_bytes()), "a.pdf"), zs, scope_of(zs))
        declarations.submit(rid, zs, scope_of(zs))
        assert status_of(rid) == Status.SUBMITTED
        # Pending: the applicant can no longer edit, only withdraw.
        with pytest.raises(InvalidTransition):
            declarations.update_draft(rid, zs, form(hours="10"), scope_of(zs))
        declarations.withdraw(rid, zs, scope_of(zs))
        assert status_of(rid) == Status.WITHDRAWN
        declarations.update_draft(rid, zs, form(hours="10"), scope_of(zs))
        declarations.submit(rid, zs, scope_of(zs))
        # Return needs a reason.
        with pytest.raises(ValidationFailed, match="原因"):
            approval.decide_one(rid, "return", user=clerk, scope=scope_of(clerk), comment="  ")
        approval.decide_one(rid, "return", user=clerk, scope=scope_of(clerk), comment="发票不清晰")
        rec = db.session.get(HourRecord, rid)
        assert rec.status == Status.RETURNED and rec.review_comment == "发票不清晰"
        assert rec.reviewer_id == clerk.id and rec.reviewed_at is not None
        # Returned: edit and resubmit.
        declarations.update_draft(rid, zs, form(hours="12"), scope_of(zs))
        declarations.submit(rid, zs, scope_of(zs))
        approval.decide_one(rid, "approve", user=clerk, scope=scope_of(clerk))
        rec = db.session.get(HourRecord, rid)
        assert rec.status == Status.APPROVED and rec.hours == Decimal("12.0")
        # Approved: no withdraw, no second decision, no applicant edit.
        with pytest.raises(InvalidTransition):
            declarations.withdraw(rid, zs, scope_of(zs))
        with pytest.raises(InvalidTransition, match="已被他人处理"):
            approval.decide_one(rid, "return", user=clerk, scope=scope_of(clerk), comment="x")
        with pytest.raises(InvalidTransition):
            declarations.update_draft(rid, zs, form(hours="20"), scope_of(zs))
        # The applicant cannot approve their own record; a bureau cannot approve at all.
        other = declare("zhangsan", course_name="另一门课程")
        for name in ("zhangsan", "bureau_nj"):
            with pytest.raises(OutOfScope):
                approval.decide_one(other, "approve", user=user(name), scope=scope(name))
        assert status_of(other) == Status.SUBMITTED
        # Revoke (撤销认定) after approval, by the bureau of the region, with a reason.
        with pytest.raises(OutOfScope):
            approval.decide_one(rid, "revoke", user=user("bureau_sz"), scope=scope("bureau_sz"), comment="x")
        approval.decide_one(rid, "revoke", user=user("bureau_nj"), scope=scope("bureau_nj"), comment="证明材料造假")
        rec = db.session.get(HourRecord, rid)
        assert rec.status == Status.REVOKED and rec.revoke_reason == "证明材料造假"
        assert [a.action for a in audit_rows(rid)] == [
            "declare", "attach", "submit", "withdraw", "edit", "submit", "return", "edit", "submit",
            "approve", "revoke",
        ]


def test_transition_table():
    assert approval.can("submit", Status.DRAFT) and approval.can("submit", Status.RETURNED)
    assert approval.can("submit", Status.WITHDRAWN) and not approval.can("submit", Status.APPROVED)
    assert approval.can("approve", Status.SUBMITTED) and not approval.can("approve", Status.RETURNED)
    assert approval.can("revoke", Status.APPROVED) and not approval.can("revoke", Status.SUBMITTED)
    assert not approval.can("withdraw", Status.APPROVED)


# ------------------------------------------------------------------ routing


def test_routing_employee_to_unit_and_freelancer_to_agency(app, login_as):
    with app.app_context():
        z = declare("zhangsan", course_name="张三的申报")
        w = declare("wangwu", course_name="王五的申报")
        unit_a = user("clerk_a").unit_id
        agency = user("agency_clerk").unit_id
        assert db.session.get(HourRecord, z).unit_id == unit_a
        assert db.session.get(HourRecord, w).unit_id == agency
        assert db.session.get(Unit, agency).kind.name == "AGENCY"
    todo_clerk = login_as("clerk_a").get("/review/todo/list/?psize_ReviewTodoView=100").get_data(as_text=True)
    todo_agency = login_as("agency_clerk").get("/review/todo/list/?psize_ReviewTodoView=100").get_data(as_text=True)
    assert "张三的申报" in todo_clerk and "王五的申报" not in todo_clerk
    assert "王五的申报" in todo_agency and "张三的申报" not in todo_agency
    with app.app_context():
        with pytest.raises(OutOfScope):
            approval.decide_one(w, "approve", user=user("clerk_a"), scope=scope("clerk_a"))
        approval.decide_one(w, "approve", user=user("agency_clerk"), scope=scope("agency_clerk"))
        assert status_of(w) == Status.APPROVED


# ------------------------------------------------------------------ scope of pages and files


# SPEC §1: a bureau sees the region subtree of its code (province 32, city 3201, ...).
BUREAU_PREFIX = {"bureau_js": "32", "bureau_nj": "3201", "bureau_sz": "3205"}


def _expect_review_access(username, record_unit_region, record_unit_id):
    """Who may open /review/<id> of a record, from the SPEC: admins; bureau staff
    whose region contains the record's; the staff of the record's unit."""
    u = user(username)
    roles = {r.name for r in u.roles}
    if R.ADMIN in roles:
        return True
    if R.BUREAU in roles:
        return record_unit_region.startswith(BUREAU_PREFIX[username])
    if roles & {R.UNIT_ADMIN, R.UNIT_OPERATOR}:
        return u.unit_id == record_unit_id
    return False


def test_review_page_and_decisions_with_foreign_ids_for_every_role(app, login_as):
    with app.app_context():
        rid = declare("lisi", course_name="李四的外地申报")
        rec = db.session.get(HourRecord, rid)
        region, unit_id = rec.region_code, rec.unit_id
        expected = {u: _expect_review_access(u, region, unit_id) for u in USERS}
    assert expected["clerk_b"] and expected["bureau_sz"] and expected["bureau_js"]
    assert not expected["clerk_a"] and not expected["bureau_nj"] and not expected["lisi"]
    for username in USERS:
        c = login_as(username)
        resp = c.get(f"/review/{rid}")
        html = resp.get_data(as_text=True)
        if expected[username]:
            assert resp.status_code == 200 and "李四的外地申报" in html, username
        else:
            # 403: the role lacks the permission; 404: the row is outside the scope.
            assert resp.status_code in (302, 403, 404) and "李四的外地申报" not in html, username
        # Posting a decision on a foreign id changes nothing.
        if username not in ("clerk_b", "admin"):
            resp = post(c, f"/review/{rid}/decide", {"op": "approve"})
            # 403: no permission to decide (bureau, applicants, organizer); 404: foreign row.
            assert resp.status_code in (302, 403, 404), username
            with app.app_context():
                assert status_of(rid) == Status.SUBMITTED, username


def test_proof_download_only_within_scope_for_every_role(app, login_as):
    content = pdf_bytes("lisi proof")
    with app.app_context():
        lisi = user("lisi")
        rid = declarations.create_draft(lisi, form(course_name="李四的证明")).id
        att = attachments.add(rid, FileStorage(io.BytesIO(content), "李四证明.pdf"), lisi, scope_of(lisi))
        aid = att.id
        rec = db.session.get(HourRecord, rid)
        region = rec.region_code
    allowed = {"admin", "bureau_js", "bureau_sz", "clerk_b", "lisi"}
    assert region.startswith("3205")
    for username in USERS:
        resp = login_as(username).get(f"/proof/{aid}")
        if username in allowed:
            assert resp.status_code == 200, username
            assert resp.data == content and resp.mimetype == "application/pdf", username
            assert "attachment" in resp.headers["Content-Disposition"], username
        else:
            assert resp.status_code in (302, 403, 404) and resp.data != content, username
    # Inline preview for the reviewer.
    resp = login_as("clerk_b").get(f"/proof/{aid}?inline=1")
    assert resp.status_code == 200 and "inline" in resp.headers["Content-Disposition"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    # Stored outside the web root, under UPLOAD_DIR.
    with app.app_context():
        a, path = attachments.open_scoped(aid, scope("lisi"))
        assert path.startswith(app.config["UPLOAD_DIR"]) and not path.startswith(app.static_folder)


def test_applicant_cannot_touch_foreign_declarations(app, login_as):
    with app.app_context():
        rid = declare("lisi", submit=False, course_name="李四的草稿")
    c = login_as("zhangsan")
    assert "李四的草稿" not in c.get(f"/declare/edit/{rid}", follow_redirects=True).get_data(as_text=True)
    post(c, f"/declare/edit/{rid}", dict(form(course_name="被篡改").items()))
    post(c, f"/declare/submit/{rid}")
    with app.app_context():
        rec = db.session.get(HourRecord, rid)
        assert rec.course_name == "李四的草稿" and rec.status == Status.DRAFT


# ------------------------------------------------------------------ bulk approval


def test_bulk_approve_mixed_ids_in_grid_action(app, login_as):
    with app.app_context():
        mine = [declare("zhangsan", course_name=f"批量{i}") for i in range(3)]
        foreign = declare("lisi", course_name="苏州的申报")
        approval.decide_one(mine[2], "approve", user=user("unitadmin_a"), scope=scope("unitadmin_a"))
    c = login_as("clerk_a")
    html = c.get("/review/todo/list/?_flt_0_year=%d" % YEAR).get_data(as_text=True)
    assert "批量核准" in html
    resp = post(c, "/review/todo/action_post",
                {"action": "approve", "rowid": [str(i) for i in mine + [foreign, 99999999]]})
    # back to the to-do grid the reviewer acted on, with its filter
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/review/todo/list/?_flt_0_year=%d" % YEAR)
    html = c.get(resp.headers["Location"]).get_data(as_text=True)
    assert "核准 2 条" in html
    assert "1 条已被他人处理或不是待处理状态" in html
    assert "2 条记录不存在或不在您的权限范围内" in html
    with app.app_context():
        assert [status_of(i) for i in mine] == [Status.APPROVED] * 3
        assert status_of(foreign) == Status.SUBMITTED
        clerk = user("clerk_a")
        for i in mine[:2]:
            (row,) = audit_rows(i, "approve")
            assert row.username == "clerk_a"
            assert json.loads(row.detail) == {
                "old": {"status": "SUBMITTED"},
                "new": {"status": "APPROVED", "reviewer_id": clerk.id, "review_comment": None},
            }
        assert audit_rows(foreign, "approve") == []
        assert len(audit_rows(mine[2], "approve")) == 1  # only unitadmin_a's


def test_bulk_approve_service_reports_reasons(app):
    with app.app_context():
        ok = declare("zhangsan", course_name="可核准")
        done = declare("zhangsan", course_name="已核准")
        draft = declare("zhangsan", submit=False, course_name="草稿")
        foreign = declare("wangwu", course_name="机构的")
        clerk = user("clerk_a")
        approval.approve_records([done], user=clerk, scope=scope_of(clerk))
        result = approval.approve_records([ok, done, draft, foreign, "x", 10 ** 9], user=clerk, scope=scope_of(clerk))
        assert result.done_ids == [ok]
        assert result.wrong_status == {done: Status.APPROVED, draft: Status.DRAFT}
        assert sorted(result.not_found_ids) == sorted([foreign, 10 ** 9])
        assert status_of(foreign) == Status.SUBMITTED and status_of(draft) == Status.DRAFT


def test_approve_all_rows_of_current_filter(app, login_as):
    with app.app_context():
        for i in range(3):
            declare("zhangsan", course_name=f"本年申报{i}")
        clerk_scope = scope("clerk_a")
        pending_this_year = db.session.scalar(
            select(func.count(HourRecord.id)).where(
                HourRecord.unit_id == clerk_scope.unit_ids[0], HourRecord.status == Status.SUBMITTED,
                HourRecord.year == YEAR)
        )
        pending_other = db.session.scalar(
            select(func.count(HourRecord.id)).where(
                HourRecord.unit_id == clerk_scope.unit_ids[0], HourRecord.status == Status.SUBMITTED,
                HourRecord.year != YEAR)
        )
        foreign_pending = db.session.scalar(
            select(func.count(HourRecord.id)).where(
                HourRecord.unit_id != clerk_scope.unit_ids[0], HourRecord.status == Status.SUBMITTED)
        )
    assert pending_this_year >= 3 and foreign_pending > 0
    c = login_as("clerk_a")
    flt = f"_flt_0_year={YEAR}"
    html = c.get(f"/review/todo/list/?{flt}").get_data(as_text=True)
    assert f"当前筛选条件下共有 {pending_this_year} 条待核准申报" in html
    assert f"确定核准当前筛选条件下的全部 {pending_this_year} 条待核准申报吗" in html
    # A stale confirmation (count changed since the page was shown) approves nothing.
    html = post(c, f"/review/todo/approve_filtered?{flt}", {"confirmed_count": pending_this_year - 1},
                follow_redirects=True).get_data(as_text=True)
    assert f"筛选结果已变化（当前为 {pending_this_year} 条待核准）" in html
    html = post(c, f"/review/todo/approve_filtered?{flt}", {"confirmed_count": pending_this_year},
                follow_redirects=True).get_data(as_text=True)
    assert f"核准 {pending_this_year} 条" in html
    assert "当前筛选条件下共有 0 条待核准申报" in html
    with app.app_context():
        def pending(*cond):
            return db.session.scalar(select(func.count(HourRecord.id)).where(
                HourRecord.unit_id == clerk_scope.unit_ids[0], HourRecord.status == Status.SUBMITTED, *cond))

        assert pending(HourRecord.year == YEAR) == 0
        assert pending(HourRecord.year != YEAR) == pending_other
        assert db.session.scalar(select(func.count(HourRecord.id)).where(
            HourRecord.unit_id != clerk_scope.unit_ids[0], HourRecord.status == Status.SUBMITTED)) == foreign_pending
    # Without the permission (an applicant), the endpoint is closed.
    resp = post(login_as("zhangsan"), f"/review/todo/approve_filtered?{flt}", {"confirmed_count": 0})
    assert resp.status_code in (302, 403) and "approve_filtered" not in resp.headers.get("Location", "")


# ------------------------------------------------------------------ concurrency


def test_two_reviewers_same_record_one_wins_http(app, login_as):
    with app.app_context():
        rid = declare("zhangsan", course_name="并发审核")
    a, b = login_as("clerk_a"), login_as("unitadmin_a")
    # Both open the review page while it is pending.
    assert "btn-approve" in a.get(f"/review/{rid}").get_data(as_text=True)
    assert "btn-return" in b.get(f"/review/{rid}").get_data(as_text=True)
    ra = post(a, f"/review/{rid}/decide", {"op": "approve"}, follow_redirects=True).get_data(as_text=True)
    rb = post(b, f"/review/{rid}/decide", {"op": "return", "comment": "材料不全"},
              follow_redirects=True).get_data(as_text=True)
    assert "已核准" in ra
    assert "该申报已被他人处理（当前状态：已核准）" in rb
    with app.app_context():
        rec = db.session.get(HourRecord, rid)
        assert rec.status == Status.APPROVED and rec.review_comment is None
        assert [r.action for r in audit_rows(rid)][-1] == "approve"
        assert audit_rows(rid, "return") == []


def test_two_reviewers_same_record_concurrently(app):
    """Two sessions (threads, own connections) decide at the same moment."""
    with app.app_context():
        rid = declare("zhangsan", course_name="真正并发")
    barrier = threading.Barrier(2)
    outcomes = {}

    def review(username, op):
        with app.app_context():
            u = user(username)
            s = scope_of(u)
            db.session.rollback()  # no open read transaction before the decision
            barrier.wait()
            try:
                approval.decide_one(rid, op, user=u, scope=s, comment="退回原因")
                outcomes[username] = "won"
            except InvalidTransition as exc:
                outcomes[username] = str(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=review, args=("clerk_a", "approve")),
               threading.Thread(target=review, args=("unitadmin_a", "return"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["clerk_a", "unitadmin_a"]
    winners = [u for u, o in outcomes.items() if o == "won"]
    assert len(winners) == 1
    loser = "unitadmin_a" if winners == ["clerk_a"] else "clerk_a"
    assert "已被他人处理" in outcomes[loser]
    with app.app_context():
        st = status_of(rid)
        assert st == (Status.APPROVED if winners == ["clerk_a"] else Status.RETURNED)
        decisions = [r.action for r in audit_rows(rid) if r.action in ("approve", "return")]
        assert len(decisions) == 1


# ------------------------------------------------------------------ audit trail


def test_edit_audit_has_old_and_new_values_and_is_browsable_in_scope(app, login_as):
    c = login_as("zhangsan")
    http_declare(c, proof=(io.BytesIO(pdf_bytes()), "p.pdf"), op="save", course_name="审计课程", hours="8")
    with app.app_context():
        rid = record_by_course("审计课程").id
    data = dict(form(course_name="审计课程", hours="12.5").items())
    data["op"] = "save"
    post(c, f"/declare/edit/{rid}", data, follow_redirects=True)
    with app.app_context():
        (entry,) = audit_rows(rid, "edit")
        detail = json.loads(entry.detail)
        assert detail == {"old": {"hours": "8.0"}, "new": {"hours": "12.5"}}
        assert entry.username == "zhangsan" and entry.ip == "127.0.0.1"
        assert entry.unit_id == user("clerk_a").unit_id and entry.region_code == "320102"
        eid = entry.id
    # The audit log is append-only.
    with app.app_context():
        e = db.session.get(AuditLog, eid)
        e.action = "tampered"
        with pytest.raises(Exception):
            db.session.commit()
        db.session.rollback()
    # Bureau staff and the unit's admin browse it within their scope.
    for username, visible in (("bureau_nj", True), ("unitadmin_a", True), ("bureau_sz", False), ("clerk_b", False)):
        resp = login_as(username).get(f"/auditlogview/show/{eid}", follow_redirects=True)
        html = resp.get_data(as_text=True)
        assert ("12.5" in html) is visible, username


# ------------------------------------------------------------------ requirement


def _approved(person_username, category, hours, course):
    rid = declare(person_username, category=category, hours=str(hours), course_name=course)
    reviewer = "agency_clerk" if person_username == "wangwu" else "clerk_a"
    approval.decide_one(rid, "approve", user=user(reviewer), scope=scope(reviewer))
    return rid


def test_requirement_computation(app, login_as):
    with app.app_context():
        person_id = user("zhangsan").person_id
        base = requirement.year_totals(person_id, YEAR)
        # Clear this year's approved hours of zhangsan to start from zero.
        for rec in db.session.execute(select(HourRecord).where(
                HourRecord.person_id == person_id, HourRecord.year == YEAR)).scalars():
            rec.status = Status.WITHDRAWN
        db.session.commit()
        t = requirement.year_totals(person_id, YEAR)
        assert (t.professional, t.public, t.met) == (0, 0, False)
        assert t.required_total == Decimal("90") and t.required_professional == Decimal("60.0")
        _approved("zhangsan", "PRO", 50, "专业A")
        _approved("zhangsan", "PUB", 40, "公需A")
        t = requirement.year_totals(person_id, YEAR)
        assert t.total == 90 and not t.met and t.missing_professional == 10  # 专业科目 < 2/3
        pro_b = _approved("zhangsan", "PRO", 10, "专业B")
        t = requirement.year_totals(person_id, YEAR)
        assert t.met and t.professional == 60 and t.public == 40
        # A revoked record no longer counts.
        approval.decide_one(pro_b, "revoke", user=user("bureau_js"), scope=scope("bureau_js"), comment="材料虚假")
        assert not requirement.year_totals(person_id, YEAR).met
        # Pending declarations never count.
        declare("zhangsan", category="PRO", hours="100", course_name="待核准大课")
        assert requirement.year_totals(person_id, YEAR).professional == 50
        # Thresholds come from configuration.
        cfg = dict(app.config, REQUIRED_HOURS_TOTAL=80, REQUIRED_PROFESSIONAL_RATIO=0.5)
        assert requirement.totals_from(YEAR, 50, 40, cfg).met
        assert base.year == YEAR
    html = login_as("zhangsan").get(f"/declare/mine?year={YEAR}").get_data(as_text=True)
    assert "未达标" in html and "已撤销" in html and "材料虚假" in html


# ------------------------------------------------------------------ uploads


def test_bad_uploads_are_refused(app, login_as):
    c = login_as("zhangsan")
    html = http_declare(c, proof=(io.BytesIO(b"just some text, not a PDF\n" * 20), "fake.pdf"),
                        course_name="假PDF").get_data(as_text=True)
    assert "文件“fake.pdf”不是有效的PDF、JPG或PNG文件" in html
    with app.app_context():
        rec = record_by_course("假PDF")
        # Saved as a draft without the file; not submitted (no proof).
        assert rec.status == Status.DRAFT and rec.attachments == []
        rid = rec.id
    big = b"%PDF-1.4\n" + b"0" * (5 * 1024 * 1024)
    html = post(c, f"/declare/edit/{rid}", dict(form(course_name="假PDF").items(), op="save",
                proof=(io.BytesIO(big), "big.pdf")), content_type="multipart/form-data",
                follow_redirects=True).get_data(as_text=True)
    assert "文件不能超过5MB" in html
    # A real PNG named .pdf is accepted by its content, and stored as PNG.
    post(c, f"/declare/edit/{rid}", dict(form(course_name="假PDF").items(), op="save",
         proof=(io.BytesIO(png_bytes()), "scan.pdf")), content_type="multipart/form-data")
    with app.app_context():
        (att,) = db.session.get(HourRecord, rid).attachments
        assert att.content_type == "image/png" and att.filename == "scan.png"
        assert db.session.scalar(select(func.count(Attachment.id))) == 1
    with app.app_context():
        with pytest.raises(ValidationFailed):
            attachments.check_file("x.jpg", io.BytesIO(b""))
        assert attachments.sniff(b"\xff\xd8\xff\xe0abc")[0] == "image/jpeg"
        assert attachments.sniff(b"GIF89a") is None


# ------------------------------------------------------------------ form


def test_declaration_form_checks_on_server(app, login_as):
    c = login_as("zhangsan")
    page = c.get("/declare/new").get_data(as_text=True)
    assert "本年度已核准学时" in page and "年度要求：合计不少于90学时，其中专业科目不少于60学时" in page
    # Client-side checks carry the same Chinese messages (as JSON strings in the script).
    assert 'step="0.5"' in page and json.dumps("结束日期不能早于开始日期") in page
    cases = [
        (dict(course_name=""), "请填写课程（项目）名称"),
        (dict(start_date=D2.isoformat(), end_date=(D2 - datetime.timedelta(days=1)).isoformat()), "结束日期不能早于开始日期"),
        (dict(hours="0"), "学时应大于0"),
        (dict(hours="500"), "单条记录学时不能超过200"),
        (dict(hours="2.3"), "学时应以0.5为单位"),
        (dict(start_date=f"{YEAR - 1}-12-30", end_date=f"{YEAR - 1}-12-31"), f"学习日期应在认定年度{YEAR}年内"),
        (dict(learning_form=""), "请选择学习形式"),
    ]
    for over, message in cases:
        resp = http_declare(c, op="save", **over)
        assert resp.status_code == 400, message
        assert message in resp.get_data(as_text=True), message
    with app.app_context():
        assert db.session.scalar(select(func.count(HourRecord.id)).where(
            HourRecord.course_name == "测试课程：结构抗震")) == 0
    # A duplicate (same person, year, category, course, start date) is reported.
    http_declare(c, op="save", course_name="重复课程")
    resp = http_declare(c, op="save", course_name="重复课程")
    assert resp.status_code == 400 and "已存在相同的学时记录" in resp.get_data(as_text=True)


def test_applicant_flow_over_http(app, login_as):
    c = login_as("zhangsan")
    html = http_declare(c, proof=(io.BytesIO(pdf_bytes()), "结业证书.pdf"), course_name="网页申报").get_data(as_text=True)
    assert "申报已提交，等待单位核准" in html and "网页申报" in html
    with app.app_context():
        rec = record_by_course("网页申报")
        assert rec.status == Status.SUBMITTED and rec.source == Source.DECLARED
        assert rec.learning_form == LearningForm.TRAIN_ONSITE and rec.category == Category.PRO
        rid = rec.id
    html = post(c, f"/declare/withdraw/{rid}", follow_redirects=True).get_data(as_text=True)
    assert "申报已撤回" in html
    html = post(c, f"/declare/submit/{rid}", follow_redirects=True).get_data(as_text=True)
    assert "申报已提交" in html
    with app.app_context():
        assert status_of(rid) == Status.SUBMITTED


# ------------------------------------------------------------------ year-end and departure


def test_year_end_review(app, login_as):
    with app.app_context():
        zs_pid = user("zhangsan").person_id
        lisi_pid = user("lisi").person_id
        totals = requirement.year_totals(zs_pid, YEAR - 1)
    c = login_as("clerk_a")
    html = c.get(f"/unitreview/yearend?year={YEAR - 1}").get_data(as_text=True)
    assert "张三" in html and "李四" not in html
    html = post(c, "/unitreview/yearend", {"year": YEAR - 1, "person_id": [zs_pid, lisi_pid], "comment": "年度审核通过"},
                follow_redirects=True).get_data(as_text=True)
    assert "已完成 1 人的年度审核" in html and "1 人不在本单位或不在您的权限范围内" in html
    with app.app_context():
        (review,) = db.session.execute(select(PersonReview).where(PersonReview.kind == ReviewKind.YEAR_END)).scalars()
        assert review.person_id == zs_pid and review.year == YEAR - 1
        assert review.professional_hours == totals.professional and review.met == totals.met
        assert review.reviewer.username == "clerk_a"
        assert db.session.execute(select(AuditLog).where(AuditLog.action == "year_review")).scalar_one()
    # Another unit's clerk cannot review unit A's persons, nor choose unit A.
    with app.app_context():
        unit_a = user("clerk_a").unit_id
    resp = login_as("clerk_b").get(f"/unitreview/yearend?unit_id={unit_a}", follow_redirects=True)
    assert "张三" not in resp.get_data(as_text=True)


def test_departure_review_moves_person_and_routes_new_declarations(app, login_as):
    with app.app_context():
        zs = user("zhangsan")
        pid = zs.person_id
        agency = db.session.get(Unit, user("agency_clerk").unit_id)
        code = agency.credit_code
        old_ids = set(db.session.execute(select(HourRecord.id).where(HourRecord.person_id == pid)).scalars())
        pending = reviews.pending_count(pid)
        if not pending:
            declare("zhangsan", course_name="离职前待核准")
    c = login_as("clerk_a")
    # Refused while declarations are pending.
    html = post(c, f"/unitreview/departure/{pid}", {"credit_code": code}, follow_redirects=True).get_data(as_text=True)
    assert "待核准申报" in html
    with app.app_context():
        assert db.session.get(Person, pid).unit_id == user("clerk_a").unit_id
        ids = db.session.execute(select(HourRecord.id).where(
            HourRecord.person_id == pid, HourRecord.status == Status.SUBMITTED)).scalars().all()
    resp = post(c, "/review/todo/action_post", {"action": "approve", "rowid": ids})
    assert resp.status_code == 302
    # Another unit's clerk cannot even open the form.
    assert login_as("clerk_b").get(f"/unitreview/departure/{pid}").status_code == 404
    html = post(c, f"/unitreview/departure/{pid}", {"credit_code": code, "comment": "转为灵活就业"},
                follow_redirects=True).get_data(as_text=True)
    assert "离职审核已完成" in html
    with app.app_context():
        person = db.session.get(Person, pid)
        assert person.unit_id == agency.id and person.is_freelancer
        review = db.session.execute(select(PersonReview).where(PersonReview.kind == ReviewKind.DEPARTURE)).scalar_one()
        assert review.unit_id == user("clerk_a").unit_id and review.person_id == pid
        periods = db.session.execute(select(PersonUnitHistory).where(PersonUnitHistory.person_id == pid)
                                     .order_by(PersonUnitHistory.id)).scalars().all()
        assert periods[-2].end_date == TODAY and periods[-1].unit_id == agency.id and periods[-1].end_date is None
        # History intact: every record still exists, now under the agency.
        now_ids = set(db.session.execute(select(HourRecord.id).where(HourRecord.person_id == pid)).scalars())
        assert old_ids <= now_ids
        new_rid = declare("zhangsan", course_name="转出后的申报")
        assert db.session.get(HourRecord, new_rid).unit_id == agency.id
    assert "转出后的申报" in login_as("agency_clerk").get("/review/todo/list/").get_data(as_text=True)
    assert "转出后的申报" not in login_as("clerk_a").get("/review/todo/list/").get_data(as_text=True)
    # Unknown credit code.
    with app.app_context():
        with pytest.raises(ValidationFailed):
            reviews.find_target_unit("91320102MA1XXXXXX0")


def test_menu_entries_per_role(login_as):
    zs = login_as("zhangsan").get("/").get_data(as_text=True)
    assert "学时申报" in zs and "我的学时" in zs and "待核准申报" not in zs
    clerk = login_as("clerk_a").get("/").get_data(as_text=True)
    assert "待核准申报" in clerk and "年度审核" in clerk and "学时申报" not in clerk


def test_revoke_supersedes_certificates_that_counted_the_record(app):
    from app.models.certificate import Certificate, CertificateStatus
    from app.services import certificates

    with app.app_context():
        rid = _approved("zhangsan", "PRO", 20, "证书中的课程")
        person = db.session.get(Person, user("zhangsan").person_id)
        cert = certificates.issue(person, YEAR, user=user("zhangsan"))
        db.session.commit()
        cid = cert.id
        approval.decide_one(rid, "revoke", user=user("bureau_nj"), scope=scope("bureau_nj"), comment="证明材料造假")
        assert db.session.get(Certificate, cid).status == CertificateStatus.SUPERSEDED
        assert db.session.execute(select(AuditLog).where(
            AuditLog.action == "certificate_supersede", AuditLog.object_id == str(cid))).scalar_one()


def test_bureau_revokes_from_the_approved_grid(app, login_as):
    with app.app_context():
        rid = _approved("zhangsan", "PRO", 16, "待撤销的课程")
    nj = login_as("bureau_nj")
    html = nj.get("/review/approved/list/?_flt_0_year=%d&psize_ApprovedHoursView=100" % YEAR).get_data(as_text=True)
    assert "待撤销的课程" in html and "撤销认定" in html
    resp = nj.get(f"/review/approved/show/{rid}")
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/review/{rid}")
    page = nj.get(f"/review/{rid}").get_data(as_text=True)
    assert 'id="revoke-form"' in page and 'id="approve-form"' not in page
    # Suzhou's bureau neither lists nor revokes it.
    sz = login_as("bureau_sz")
    assert "待撤销的课程" not in sz.get("/review/approved/list/?psize_ApprovedHoursView=100").get_data(as_text=True)
    assert post(sz, f"/review/{rid}/revoke", {"comment": "x"}).status_code == 404
    # A reason is required.
    html = post(nj, f"/review/{rid}/revoke", {"comment": ""}, follow_redirects=True).get_data(as_text=True)
    assert "请填写原因" in html
    html = post(nj, f"/review/{rid}/revoke", {"comment": "举办单位证明系伪造"}, follow_redirects=True).get_data(as_text=True)
    assert "已撤销认定" in html and "举办单位证明系伪造" in html
    with app.app_context():
        rec = db.session.get(HourRecord, rid)
        assert rec.status == Status.REVOKED
        (entry,) = audit_rows(rid, "revoke")
        assert entry.username == "bureau_nj"
        assert json.loads(entry.detail) == {"old": {"status": "APPROVED"},
                                            "new": {"status": "REVOKED", "revoke_reason": "举办单位证明系伪造"}}
    # It stays visible to the applicant with the reason, and no longer counts.
    mine = login_as("zhangsan").get(f"/declare/mine?year={YEAR}").get_data(as_text=True)
    assert "举办单位证明系伪造" in mine and "已撤销" in mine


def test_remove_proof_file_own_editable_only(app, login_as):
    import os

    with app.app_context():
        lisi = user("lisi")
        rid = declarations.create_draft(lisi, form(course_name="删除附件")).id
        att = attachments.add(rid, FileStorage(io.BytesIO(pdf_bytes("to delete")), "d.pdf"), lisi, scope_of(lisi))
        aid = att.id
        _a, path = attachments.open_scoped(aid, scope_of(lisi))
        png = attachments.preview_path(_a, path)  # the review page's image of its first page
    assert os.path.exists(path) and png and os.path.exists(png)
    # Another applicant cannot remove it.
    post(login_as("zhangsan"), f"/declare/detach/{aid}")
    with app.app_context():
        assert db.session.get(Attachment, aid) is not None
    html = post(login_as("lisi"), f"/declare/detach/{aid}", follow_redirects=True).get_data(as_text=True)
    assert "已删除证明材料" in html
    with app.app_context():
        assert db.session.get(Attachment, aid) is None
        (entry,) = audit_rows(rid, "detach")
        assert json.loads(entry.detail)["old"]["filename"] == "d.pdf"
    assert not os.path.exists(path) and not os.path.exists(png)  # no copy of the proof is left


def test_nobody_reviews_their_own_declaration(app):
    with app.app_context():
        rid = declare("zhangsan", course_name="自己审核自己")
        zs_pid = user("zhangsan").person_id
        # clerk_a is also the person zhangsan (a clerk who declares hours too).
        clerk = user("clerk_a")
        clerk.person_id = user("zhangsan").person_id
        db.session.commit()
        with pytest.raises(InvalidTransition, match="不能审核本人的申报"):
            approval.decide_one(rid, "approve", user=clerk, scope=scope_of(clerk))
        pending_colleague = db.session.execute(select(HourRecord.id).where(
            HourRecord.unit_id == clerk.unit_id, HourRecord.person_id != zs_pid,
            HourRecord.status == Status.SUBMITTED)).scalars().all()
        assert pending_colleague
        result = approval.approve_records([rid] + pending_colleague, user=clerk, scope=scope_of(clerk))
        assert result.own_ids == [rid] and result.done_ids == sorted(pending_colleague)
        assert "1 条是您本人的申报" in result.message()
        assert status_of(rid) == Status.SUBMITTED


def test_todo_grid_reads_earlier_hours_of_the_whole_page_in_one_query(app, login_as):
    """本年已核准学时 on the to-do grid: right for every row, one query a page."""
    from sqlalchemy import event

    with app.app_context():
        pending = [declare("zhangsan", course_name=f"一页一查{i}") for i in range(4)]
        expected = {rid: declarations.approved_in_year_of(rid) for rid in pending}
    c = login_as("clerk_a")
    statements = []

    def log(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", log)
    try:
        html = c.get("/review/todo/list/?psize_ReviewTodoView=100").get_data(as_text=True)
    finally:
        event.remove(engine, "before_cursor_execute", log)
    # The earlier hours come from the persons' yearly totals (issue 19): one read a page.
    sums = [s for s in statements if "person_year_total" in s.lower()]
    assert len(sums) == 1, sums
    for rid, total in expected.items():
        row = html[html.index(f'value="{rid}"'):]
        row = row[:row.index("</tr>")]
        assert row.rstrip().endswith(f"<td>{float(total):g}</td>"), row[-200:]
    assert any(total > 0 for total in expected.values())
