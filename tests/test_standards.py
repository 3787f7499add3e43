"""学时认定标准 in the running system (issue 20): the console edit with its audit
and preview, admin-only access, declarations computed and capped through the
real form, history unchanged after an edit, a year whose requirement differs
(dashboard, 我的学时 and the certificate follow it), copying a year forward."""
import io
import json

from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, HourRecord, LearningFormRule, Person, Status
from app.security.scope import scope_of
from app.services import approval, dashboard, requirement, standards
from tests.conftest import post
from tests.test_certificates import _get_pdf, _hours, _squash, pdf_text
from tests.test_workflow import D1, D2, YEAR, declare, http_declare, pdf_bytes, record_by_course, user


def _rule_row(code, year=YEAR):
    db.session.expire_all()
    return db.session.execute(select(LearningFormRule).where(
        LearningFormRule.year == year, LearningFormRule.code == code, LearningFormRule.is_current.is_(True))
    ).scalar_one()


def _edit(client, code, year=YEAR, **over):
    with client.application.app_context():
        row = _rule_row(code, year)
        data = {"name": row.name, "kind": row.kind, "params": row.params, "cap_record": row.cap_record or "",
                "cap_year": row.cap_year or "", "proof_text": row.proof_text or "", "sort": row.sort,
                "note": row.note or "", "national_form": row.national_form.name, "active": "1", "op": "save"}
        cats = row.categories.split(",")
    data.update(over)
    items = [(k, v) for k, v in data.items() if v is not None] + [("categories", c) for c in over.pop("cats", cats)]
    items = [(k, v) for k, v in items if k != "cats"]
    from werkzeug.datastructures import MultiDict

    return post(client, f"/standards/edit/{year}/{code}", MultiDict(items), follow_redirects=True)


def test_declaration_computed_from_the_years_rules_and_caps_refused(app, login_as):
    c = login_as("zhangsan")
    page = c.get("/declare/new").get_data(as_text=True)
    assert "参加全国学术会议" in page and "declare_rules.js" in page
    # Fixed per event + the paper add-on: 10 + 30; whatever hours the client sent are ignored.
    resp = http_declare(c, op="save", learning_form="CONF_NATIONAL", addons="PAPER_GE2000", hours="199",
                        course_name="全国结构工程学术会议")
    assert resp.status_code == 200, resp.get_data(as_text=True)[-3000:]
    with app.app_context():
        r = record_by_course("全国结构工程学术会议")
        assert float(r.hours) == 40 and float(r.computed_hours) == 40 and r.form_code == "CONF_NATIONAL"
        assert r.rule_id == _rule_row("CONF_NATIONAL").id and r.learning_form.name == "CONFERENCE"
    mine = c.get(f"/declare/mine?year={YEAR}").get_data(as_text=True)
    assert "全国结构工程学术会议" in mine and "<td>参加全国学术会议</td>" in mine
    # Per day, capped per record (出国（境）培训: 8 a day, at most 30 per trip).
    resp = http_declare(c, op="save", learning_form="ABROAD", days="5", course_name="境外研修")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "超过“出国（境）培训”每项最多30学时的上限（按标准计算为40学时）" in html
    with app.app_context():
        assert db.session.execute(select(HourRecord.id).where(HourRecord.course_name == "境外研修")).first() is None
    # A form that counts for 专业科目 only is refused as 公需科目.
    resp = http_declare(c, op="save", learning_form="CONF_NATIONAL", category="PUB", course_name="公需会议")
    assert resp.status_code == 400 and "只能认定为专业科目" in resp.get_data(as_text=True)
    # Table by level and rank.
    resp = http_declare(c, op="save", learning_form="PAPER", level="核心期刊", rank="第二作者", course_name="论文一篇")
    assert resp.status_code == 200
    with app.app_context():
        assert float(record_by_course("论文一篇").hours) == 20


def test_console_edit_audited_previewed_and_history_kept(app, login_as):
    with app.app_context():
        # One approved and one pending declaration under the current rule (v1).
        approved = declare("zhangsan", learning_form="CONF_NATIONAL", addons="PAPER_GE2000", course_name="已核准会议")
        approval.decide_one(approved, "approve", user=user("clerk_a"), scope=scope_of(user("clerk_a")))
        declare("zhangsan", learning_form="CONF_NATIONAL", course_name="待核准会议")
        db.session.commit()
        v1 = _rule_row("CONF_NATIONAL").id
    admin = login_as("admin")
    page = admin.get(f"/standards/?year={YEAR}").get_data(as_text=True)
    assert "学时认定标准" in page and "示例（演示数据），请按本省标准修改" in page
    assert "参加全国学术会议并报告论文（2000字以上） → 40 学时" in page
    # Preview of an unsaved change, nothing stored.
    params = json.dumps({"base": 12, "single_addon": True, "addons": [
        {"code": "PAPER_LT2000", "name": "报告论文（2000字以下）", "hours": 20},
        {"code": "PAPER_GE2000", "name": "报告论文（2000字以上）", "hours": 30}]}, ensure_ascii=False)
    html = _edit(admin, "CONF_NATIONAL", params=params, op="preview").get_data(as_text=True)
    assert "参加全国学术会议并报告论文（2000字以上） → 42 学时" in html
    with app.app_context():
        assert _rule_row("CONF_NATIONAL").id == v1
    # Saved: a new version; the flash says how many pending declarations use the form.
    html = _edit(admin, "CONF_NATIONAL", params=params).get_data(as_text=True)
    assert "本年度有1条待核准申报使用该学习形式" in html
    with app.app_context():
        row = _rule_row("CONF_NATIONAL")
        assert row.version == 2 and row.id != v1
        entry = db.session.execute(select(AuditLog).where(AuditLog.action == "edit_rule")).scalars().one()
        detail = json.loads(entry.detail)
        assert json.loads(detail["old"]["params"])["base"] == 10 and json.loads(detail["new"]["params"])["base"] == 12
        assert detail["pending_affected"] == 1 and entry.username == "admin"
        # History: the approved record keeps its hours and the version it was recognised under.
        rec = db.session.get(HourRecord, approved)
        assert rec.status == Status.APPROVED and float(rec.hours) == 40 and rec.rule_id == v1
        assert standards.rule_of_record(rec).params["base"] == 10
    # New declarations follow the new version.
    c = login_as("zhangsan")
    http_declare(c, op="save", learning_form="CONF_NATIONAL", addons="PAPER_GE2000", course_name="新会议")
    with app.app_context():
        assert float(record_by_course("新会议").hours) == 42
    # The 操作日志 shows the change.
    html = admin.get("/auditlogview/list/?_flt_0_action=edit_rule").get_data(as_text=True)
    assert "edit_rule" in html or "LearningFormRule" in html


def test_console_validation_in_chinese_stores_nothing(app, login_as):
    admin = login_as("admin")
    resp = _edit(admin, "ABROAD", cats=[], cap_record="100", cap_year="50")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "学习形式至少要计入一个科目类别" in html and "每年上限不能小于每项上限" in html
    resp = _edit(admin, "EXAM", cap_record="5")
    assert resp.status_code == 400 and "每项上限5低于每次固定学时20" in resp.get_data(as_text=True)
    with app.app_context():
        assert _rule_row("ABROAD").version == 1 and _rule_row("EXAM").version == 1
        assert not db.session.execute(select(AuditLog).where(AuditLog.action == "edit_rule")).first()


def test_console_is_for_admin_only(app, login_as):
    for username in ("bureau_js", "bureau_nj", "clerk_a", "zhangsan"):
        c = login_as(username)
        resp = c.get("/standards/", follow_redirects=True)
        assert "新增学习形式" not in resp.get_data(as_text=True), username
        resp = _edit(c, "ABROAD", cap_record="10")
        with app.app_context():
            assert _rule_row("ABROAD").version == 1, username
    assert "新增学习形式" in login_as("admin").get("/standards/").get_data(as_text=True)


def test_copy_forward_and_add_a_form(app, login_as):
    admin = login_as("admin")
    nxt = YEAR + 1
    html = admin.get(f"/standards/?year={nxt}").get_data(as_text=True)
    assert f"{nxt}年度还没有自己的学时认定标准" in html
    html = post(admin, "/standards/copy", {"source": YEAR, "target": nxt}, follow_redirects=True).get_data(as_text=True)
    assert f"复制到{nxt}年度" in html
    from werkzeug.datastructures import MultiDict

    data = MultiDict([("code", "MOOC"), ("name", "慕课学习"), ("kind", "DECLARED"), ("params", "{}"),
                      ("categories", "PUB"), ("cap_year", "20"), ("national_form", "TRAIN_ONLINE"),
                      ("active", "1"), ("op", "save")])
    resp = post(admin, f"/standards/edit/{nxt}/", data, follow_redirects=True)
    assert "慕课学习" in resp.get_data(as_text=True)
    with app.app_context():
        assert standards.rule_for(nxt, "MOOC").cap_year == 20
        assert standards.rule_for(YEAR, "MOOC") is None  # this year's catalogue is untouched
        assert len(standards.catalogue(nxt, active_only=False)) == len(standards.catalogue(YEAR, active_only=False)) + 1


def test_a_years_requirement_set_in_the_console_drives_dashboard_and_certificate(app, login_as):
    with app.app_context():
        p = db.session.execute(select(Person).where(Person.name == "张三")).scalar_one()
        pid = p.id
        years = requirement.totals_by_year(pid)
        year = next(y for y, t in years.items() if not t.met or True)
        before = years[year]
        other = requirement.year_totals(pid, year - 1)
        met_before = dashboard.summary(year, scope=scope_of(user("bureau_js"))).met
    admin = login_as("admin")
    # Far below anyone's hours: the year is met; another year keeps the default.
    html = post(admin, "/standards/requirement", {"year": year, "total": "1", "ratio": "0"},
                follow_redirects=True).get_data(as_text=True)
    assert f"已保存{year}年度学时要求" in html
    with app.app_context():
        t = requirement.year_totals(pid, year)
        assert t.required_total == 1 and t.met
        assert requirement.year_totals(pid, year - 1).required_total == other.required_total
        assert dashboard.summary(year, scope=scope_of(user("bureau_js"))).met >= met_before
        assert dashboard.summary(year, scope=scope_of(user("bureau_js"))).required_total == 1
    c = login_as("zhangsan")
    assert "合计≥1，专业科目≥0" in c.get(f"/declare/mine?year={year}").get_data(as_text=True)
    flat = _squash(pdf_text(_get_pdf(c, f"/certificates/pdf/{pid}/{year}")))
    assert "本年度已达标" in flat and f"合计{_hours(before.total)}学时" in flat
    # Now out of reach: the certificate says so.
    post(admin, "/standards/requirement", {"year": year, "total": "999", "ratio": "0.5"})
    flat = _squash(pdf_text(_get_pdf(c, f"/certificates/pdf/{pid}/{year}")))
    assert "本年度未达标" in flat
    # Validation in Chinese, nothing stored.
    html = post(admin, "/standards/requirement", {"year": year, "total": "-3", "ratio": "2"},
                follow_redirects=True).get_data(as_text=True)
    assert "年度总学时须大于0且不超过1000" in html and "专业科目比例须在0到1之间" in html
    with app.app_context():
        assert requirement.year_totals(pid, year).required_total == 999


def test_reviewer_sees_rule_and_may_lower_never_raise(app, login_as):
    with app.app_context():
        rid = declare("zhangsan", learning_form="CONF_NATIONAL", addons="PAPER_GE2000", course_name="待审会议")
    clerk = login_as("clerk_a")
    page = clerk.get(f"/review/{rid}").get_data(as_text=True)
    assert "参加全国学术会议" in page and "报告论文（2000字以上）加30学时" in page
    assert 'id="computed-hours">40' in page
    # Raising is refused, lowering without a reason too; nothing changes.
    html = post(clerk, f"/review/{rid}/decide", {"op": "approve", "hours": "45", "comment": "多给"},
                follow_redirects=True).get_data(as_text=True)
    assert "只能核减，不能核增" in html
    html = post(clerk, f"/review/{rid}/decide", {"op": "approve", "hours": "30", "comment": ""},
                follow_redirects=True).get_data(as_text=True)
    assert "核减学时须填写原因" in html
    with app.app_context():
        r = db.session.get(HourRecord, rid)
        assert r.status == Status.SUBMITTED and float(r.hours) == 40
    post(clerk, f"/review/{rid}/decide", {"op": "approve", "hours": "30", "comment": "论文未在大会报告"})
    with app.app_context():
        db.session.expire_all()
        r = db.session.get(HourRecord, rid)
        assert r.status == Status.APPROVED and float(r.hours) == 30 and float(r.computed_hours) == 40
        assert "论文未在大会报告" in r.review_comment
        entry = db.session.execute(select(AuditLog).where(AuditLog.action == "lower_hours",
                                                          AuditLog.object_id == str(rid))).scalar_one()
        detail = json.loads(entry.detail)
        assert detail["old"]["hours"] == "40.0" and detail["new"]["hours"] == "30.0"
        assert detail["reason"] == "论文未在大会报告"


def test_import_row_refused_by_a_cap_and_stored_rows_keep_their_rule(app):
    import os

    from tests.test_import import DATA, TODAY, _user, analyse

    with app.app_context():
        year = standards.catalogue_year(2026)
        row = _rule_row("TRAIN_ONSITE", year)
        values = {f: getattr(row, f) for f in standards.EDIT_FIELDS}
        values.update(params={}, cap_record=10)
        standards.save_rule(year, "TRAIN_ONSITE", values, user=_user("admin"))
        db.session.commit()
    res = analyse(app, "good_unit.xlsx")
    assert res.rows_error == 1 and res.rows_new == 2
    (err,) = res.errors
    assert err[1] == "学时" and err[2] == "超过“培训（面授）”每项最多10学时的上限"
    # The cap lifted again: the same file (its checked rows cached) is checked anew.
    with app.app_context():
        values.update(cap_record=None)
        standards.save_rule(year, "TRAIN_ONSITE", values, user=_user("admin"))
        db.session.commit()
        res = __import__("app.services.importer", fromlist=["x"]).store(
            os.path.join(DATA, "good_unit.xlsx"), "unit", _user("clerk_a"), filename="good_unit.xlsx", today=TODAY)
        assert res.rows_stored == 3
        recs = db.session.execute(select(HourRecord).where(HourRecord.course_name == "工程项目管理实务")).scalars().all()
        assert [(r.form_code, r.rule_id) for r in recs] == [("TRAIN_ONSITE", _rule_row("TRAIN_ONSITE", year).id)]


def test_national_feed_carries_the_form_code_and_name_as_stored(app):
    from app.security.scope import Scope
    from app.services import national

    with app.app_context():
        rid = declare("zhangsan", learning_form="CONF_NATIONAL", course_name="对接会议")
        approval.decide_one(rid, "approve", user=user("clerk_a"), scope=scope_of(user("clerk_a")))
        old = db.session.execute(select(HourRecord).where(HourRecord.form_code.is_(None),
                                                          HourRecord.status == Status.APPROVED)).scalars().first()
        province = scope_of(user("bureau_js"))
        got = national.feed_record(rid, scope=province)
        assert (got["form_code"], got["form_name"], got["learning_form"]) == ("CONF_NATIONAL", "参加全国学术会议",
                                                                              "CONFERENCE")
        # Renamed later: the record keeps the name of the version it was recognised under.
        row = _rule_row("CONF_NATIONAL")
        values = {f: getattr(row, f) for f in standards.EDIT_FIELDS}
        values.update(params=json.loads(row.params), name="全国性学术会议")
        standards.save_rule(YEAR, "CONF_NATIONAL", values, user=user("admin"))
        db.session.commit()
        assert national.feed_record(rid, scope=province)["form_name"] == "参加全国学术会议"
        # A record from before the rules: its learning form.
        if old is not None:
            got = national.feed_record(old.id, scope=province)
            assert got["form_code"] == old.learning_form.name and got["form_name"] == old.learning_form.value


def test_a_title_levels_own_requirement_decides_met_on_dashboard_my_hours_and_certificate(app, login_as):
    """A year's requirement may differ by title level (初级 / 中级 / 高级, from the
    person's title): the person is met / unmet under the figure of the person's level."""
    with app.app_context():
        p = db.session.execute(select(Person).where(Person.name == "张三")).scalar_one()
        pid = p.id
        year = max(requirement.totals_by_year(pid))
        p.title = "工程师"
        db.session.commit()
        assert db.session.get(Person, pid).title_level == "中级"
        bureau = scope_of(user("bureau_js"))
    admin = login_as("admin")
    post(admin, "/standards/requirement", {"year": year, "total": "1", "ratio": "0"})
    with app.app_context():
        met_all = dashboard.summary(year, scope=bureau).met
    # 高级 needs far more than anyone holds.
    html = post(admin, "/standards/requirement", {"year": year, "level": "高级", "total": "999", "ratio": "0.5"},
                follow_redirects=True).get_data(as_text=True)
    assert f"已保存{year}年度高级职称的学时要求" in html and "合计不少于999学时，其中专业科目不少于499.5学时" in html
    with app.app_context():
        assert requirement.year_totals(pid, year).met
        met_before = dashboard.summary(year, scope=bureau).met
    zs = login_as("zhangsan")
    flat = _squash(pdf_text(_get_pdf(zs, f"/certificates/pdf/{pid}/{year}")))
    assert "本年度已达标" in flat and "高级职称" not in flat

    # Promoted: 高级工程师 is held to 999 — unmet on the dashboard, 我的学时 and the certificate.
    with app.app_context():
        db.session.get(Person, pid).title = "高级工程师"
        db.session.commit()
        t = requirement.year_totals(pid, year)
        assert (t.required_total, t.met, t.level) == (999, False, "高级")
        assert dashboard.summary(year, scope=bureau).met == met_before - 1
        count, rows = dashboard.unmet_persons(year, scope=bureau, page_size=10 ** 4)
        mine = [r for r in rows if r.person_id == pid]
        assert mine and mine[0].totals.required_total == 999
    page = login_as("bureau_js").get(f"/dashboard/?year={year}").get_data(as_text=True)
    assert "高级职称人员：合计不少于999学时" in page and "张三" in page
    assert "合计≥999，专业科目≥499.5" in zs.get(f"/declare/mine?year={year}").get_data(as_text=True)
    flat = _squash(pdf_text(_get_pdf(zs, f"/certificates/pdf/{pid}/{year}")))
    assert "本年度未达标" in flat and "年度学时要求（高级职称）：合计不少于999学时" in flat

    # The level's own requirement removed (合计 left blank): the year's figure applies again.
    post(admin, "/standards/requirement", {"year": year, "level": "高级", "total": "", "ratio": "0.5"})
    with app.app_context():
        assert requirement.year_totals(pid, year).met
        assert dashboard.summary(year, scope=bureau).met == met_all > met_before
        entry = db.session.execute(select(AuditLog).where(AuditLog.action == "set_requirement")
                                   .order_by(AuditLog.id.desc())).scalars().first()
        assert json.loads(entry.detail)["new"]["level"] == "高级"
    flat = _squash(pdf_text(_get_pdf(zs, f"/certificates/pdf/{pid}/{year}")))
    assert "本年度已达标" in flat
