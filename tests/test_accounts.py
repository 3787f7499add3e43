"""Accounts (issue 6): registration, unit approval, attachment confirmation,
unit- and region-scoped account administration, and login hardening.

Every escalation path the pages and POSTs allow is tried, and each is shown to
be refused with nothing changed in the database."""
import datetime
import json
import re
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app import create_app
from app.extensions import db
from app.models import AuditLog, CEUser, Category, HourRecord, LearningForm, Person, Source, Status, Unit, UnitKind
from app.services import accounts
from app.services.demo import credit_code, resident_id
from app.services.errors import ValidationFailed
from tests.conftest import _config, login, post

GOOD_PW = "Jinling#Clerk7"
NEW_CODE = credit_code(501, "320105")  # a valid, unused credit code in 南京建邺区
NEW_ID = resident_id("320105", datetime.date(1992, 3, 4), 777)


def text(resp):
    return resp.get_data(as_text=True)


def uid(username):
    return db.session.execute(select(CEUser).where(CEUser.username == username)).scalar_one()


def role_id(app, name):
    with app.app_context():
        return app.appbuilder.sm.find_role(name).id


def user_state(username):
    """Everything an escalation could change on an account."""
    u = uid(username)
    return (u.active, u.password, sorted(r.name for r in u.roles), u.unit_id, u.region_code, u.must_change_password)


def audit_actions(action):
    return db.session.execute(select(AuditLog).where(AuditLog.action == action)).scalars().all()


def register_unit_form(**over):
    data = dict(
        name="南京建邺智能制造有限公司", credit_code=NEW_CODE, city="320100", region_code="320105",
        kind="EMPLOYER", contact_name="赵六", contact_phone="025-86660000", admin_name="赵六",
        username="jy_admin", password=GOOD_PW, confirm=GOOD_PW,
    )
    data.update(over)
    return data


# ---------------------------------------------------------------- password policy


@pytest.mark.parametrize("password,message", [
    ("Ab1#x", "至少为8位"),
    ("1234567890", "全部为数字"),
    ("clerk_new1", "用户名相同"),
    ("Password123", "过于常见"),
    ("qwerty123", "过于常见"),
])
def test_password_policy_refuses(app, password, message):
    with app.test_request_context():
        with pytest.raises(ValidationFailed) as exc:
            accounts.check_password(password, "clerk_new1")
        assert message in str(exc.value)


def test_password_policy_accepts_a_decent_password(app):
    with app.test_request_context():
        accounts.check_password(GOOD_PW, "clerk_new1")


def test_fab_password_forms_use_the_policy(app, login_as):
    """Admin's reset of another user's password in FAB's own form: the policy
    applies, a good reset is audited and forces a change at next login."""
    with app.app_context():
        clerk = uid("clerk_a").id
        before = uid("clerk_a").password
    admin = login_as("admin")
    url = f"/resetpassword/form?pk={clerk}"
    html = text(post(admin, url, {"password": "12345678", "conf_password": "12345678"}, follow_redirects=True))
    assert "全部为数字" in html
    with app.app_context():
        assert uid("clerk_a").password == before
    post(admin, url, {"password": GOOD_PW, "conf_password": GOOD_PW}, follow_redirects=True)
    with app.app_context():
        u = uid("clerk_a")
        assert u.password != before and u.must_change_password is True
        assert [a.object_id for a in audit_actions("reset_password")] == [str(clerk)]


# ---------------------------------------------------------------- unit registration and approval


def test_unit_registration_waits_for_the_bureau(app, client):
    html = text(post(client, "/register/unit", register_unit_form(), follow_redirects=True))
    assert "注册成功" in html and "jy_admin" in html
    with app.app_context():
        unit = db.session.execute(select(Unit).where(Unit.credit_code == NEW_CODE)).scalar_one()
        assert unit.approved is False and unit.kind == UnitKind.EMPLOYER and unit.region_code == "320105"
        admin = uid("jy_admin")
        assert [r.name for r in admin.roles] == ["UnitAdmin"] and admin.unit_id == unit.id
        assert audit_actions("register_unit")[0].region_code == "320105"
    # It can sign in, but only to be told it waits: every page leads to the notice.
    c = app.test_client()
    html = text(login(c, "jy_admin", GOOD_PW))
    assert "单位注册审核中" in html and NEW_CODE in html
    assert "/account/pending" in c.get("/hourrecordview/list/").headers["Location"]
    assert "/account/pending" in c.get("/accounts/users/").headers["Location"]


def test_duplicate_unit_registration_is_refused_and_changes_nothing(app, client):
    with app.app_context():
        existing = db.session.execute(select(Unit).where(Unit.name == "南京金陵科技有限公司")).scalar_one()
        code, units, users = existing.credit_code, db.session.scalar(select(func.count(Unit.id))), \
            db.session.scalar(select(func.count(CEUser.id)))
    html = text(post(client, "/register/unit", register_unit_form(credit_code=code, name="冒名公司", username="fake1"),
                     follow_redirects=True))
    assert "已注册" in html and "请勿重复注册" in html
    # Register once, then again with the same credit code.
    post(client, "/register/unit", register_unit_form(), follow_redirects=True)
    html = text(post(client, "/register/unit", register_unit_form(name="另一个名字", username="jy_admin2"),
                     follow_redirects=True))
    assert "请勿重复注册" in html
    with app.app_context():
        assert db.session.scalar(select(func.count(Unit.id))) == units + 1
        assert db.session.scalar(select(func.count(CEUser.id))) == users + 1
        assert db.session.execute(select(Unit).where(Unit.credit_code == code)).scalar_one().name == "南京金陵科技有限公司"
        assert db.session.execute(select(Unit).where(Unit.credit_code == NEW_CODE)).scalar_one().name == \
            "南京建邺智能制造有限公司"


@pytest.mark.parametrize("over,message", [
    ({"credit_code": NEW_CODE[:-1] + ("0" if NEW_CODE[-1] != "0" else "1")}, "校验位不正确"),
    ({"region_code": ""}, "请选择单位所在的市和区县"),
    ({"kind": "BUREAU"}, "请选择单位类型"),
    ({"password": "password1", "confirm": "password1"}, "过于常见"),
    ({"username": "admin"}, "已被使用"),
])
def test_unit_registration_validates(app, client, over, message):
    html = text(post(client, "/register/unit", register_unit_form(**over), follow_redirects=True))
    assert message in html
    with app.app_context():
        assert db.session.execute(select(Unit).where(Unit.name == "南京建邺智能制造有限公司")).first() is None


def _register_new_unit(client, app):
    post(client, "/register/unit", register_unit_form(), follow_redirects=True)
    with app.app_context():
        return db.session.execute(select(Unit.id).where(Unit.credit_code == NEW_CODE)).scalar_one()


def test_approval_outside_the_region_is_refused(app, client, login_as):
    unit_id = _register_new_unit(client, app)
    # 苏州 bureau: not in its grid, and posting the id changes nothing.
    sz = login_as("bureau_sz")
    assert "南京建邺智能制造有限公司" not in text(sz.get("/unitapprovalview/list/"))
    html = text(post(sz, "/unitapprovalview/action_post", {"action": "approve", "rowid": [str(unit_id)]},
                     follow_redirects=True))
    assert "不在您的权限范围内" in html
    text(sz.get(f"/unitapprovalview/action/approve/{unit_id}", follow_redirects=True))
    # A unit admin and an applicant have no approval permission at all.
    for who in ("unitadmin_a", "zhangsan"):
        c = login_as(who)
        post(c, "/unitapprovalview/action_post", {"action": "approve", "rowid": [str(unit_id)]}, follow_redirects=True)
    with app.app_context():
        assert db.session.get(Unit, unit_id).approved is False
        assert audit_actions("approve_unit") == []
        # The service refuses too, whatever the caller.
        with app.test_request_context():
            done, ignored = accounts.approve_units([unit_id], uid("bureau_sz"))
            assert done == [] and ignored == 1
    # 南京 bureau approves from its grid; the unit's admin can now work.
    nj = login_as("bureau_nj")
    assert "南京建邺智能制造有限公司" in text(nj.get("/unitapprovalview/list/"))
    html = text(post(nj, "/unitapprovalview/action_post", {"action": "approve", "rowid": [str(unit_id)]},
                     follow_redirects=True))
    assert "已审核通过1家单位" in html
    with app.app_context():
        assert db.session.get(Unit, unit_id).approved is True
        entry = audit_actions("approve_unit")[0]
        assert entry.username == "bureau_nj" and entry.object_id == str(unit_id)
    c = app.test_client()
    html = text(login(c, "jy_admin", GOOD_PW))
    assert "单位注册审核中" not in html
    assert c.get("/accounts/users/").status_code == 200


# ---------------------------------------------------------------- personal registration


def person_form(**over):
    data = dict(name="孙七", id_number=NEW_ID, phone="13800001111", username="sunqi", password=GOOD_PW,
                confirm=GOOD_PW)
    data.update(over)
    return data


def _unit_a_code(app):
    with app.app_context():
        return db.session.execute(select(Unit.credit_code).where(Unit.name == "南京金陵科技有限公司")).scalar_one()


def test_person_registration_and_duplicates(app, client):
    code = _unit_a_code(app)
    html = text(post(client, "/register/person", person_form(credit_code=code), follow_redirects=True))
    assert "注册成功" in html
    with app.app_context():
        person = db.session.execute(select(Person).where(Person.id_number == NEW_ID)).scalar_one()
        unit_a = db.session.execute(select(Unit).where(Unit.credit_code == code)).scalar_one()
        assert person.pending_unit_id == unit_a.id and person.unit_id is None and person.unit_confirmed is False
        assert not accounts.person_attachment_confirmed(person)
        assert uid("sunqi").person_id == person.id
        persons = db.session.scalar(select(func.count(Person.id)))
        users = db.session.scalar(select(func.count(CEUser.id)))
    # Same ID number again (other name, other username): refused, nothing overwritten.
    html = text(post(client, "/register/person", person_form(name="孙七", username="sunqi2", phone="13900000000",
                                                             credit_code=code), follow_redirects=True))
    assert "该身份证号码已注册账号" in html
    with app.app_context():
        assert db.session.scalar(select(func.count(Person.id))) == persons
        assert db.session.scalar(select(func.count(CEUser.id))) == users
        assert db.session.execute(select(Person.phone).where(Person.id_number == NEW_ID)).scalar_one() == "13800001111"


@pytest.mark.parametrize("over,message", [
    ({"id_number": NEW_ID[:-1] + ("0" if NEW_ID[-1] != "0" else "1")}, "校验位不正确"),
    ({"credit_code": ""}, "请填写单位的统一社会信用代码或按地区选择单位"),
    ({"freelancer": "1"}, "自由职业人员应选择存放档案的人力资源服务机构"),
    ({"password": "sunqi", "confirm": "sunqi"}, "至少为8位"),
    ({"confirm": "Other#Pass99"}, "两次输入的密码不一致"),
    ({"password": "11112222", "confirm": "11112222"}, "全部为数字"),
])
def test_person_registration_validates(app, client, over, message):
    data = person_form(credit_code=_unit_a_code(app))
    data.update(over)
    html = text(post(client, "/register/person", data, follow_redirects=True))
    assert message in html
    with app.app_context():
        assert db.session.execute(select(Person).where(Person.name == "孙七")).first() is None


def test_freelancer_chooses_an_agency_by_region(app, client):
    rows = json.loads(text(client.get("/register/units?region=320104&freelancer=1")))
    assert [r["name"] for r in rows] == ["南京市人才服务中心"]
    employers = [r["name"] for r in json.loads(text(client.get("/register/units?region=320100")))]
    assert "南京金陵科技有限公司" in employers and "南京市人才服务中心" not in employers
    html = text(post(client, "/register/person", person_form(freelancer="1", region_code="320104",
                                                             unit_id=str(rows[0]["id"])), follow_redirects=True))
    assert "注册成功" in html
    with app.app_context():
        p = db.session.execute(select(Person).where(Person.id_number == NEW_ID)).scalar_one()
        assert p.pending_unit_id == rows[0]["id"] and p.is_freelancer


def _imported_person(app):
    """A person with two approved, unit-imported records, and no account."""
    with app.app_context():
        unit_a = db.session.execute(select(Unit).where(Unit.name == "南京金陵科技有限公司")).scalar_one()
        p = Person(name="周八", id_number=NEW_ID, unit_id=unit_a.id, unit_confirmed=True)
        db.session.add(p)
        db.session.flush()
        year = datetime.date.today().year - 1
        for i, course in enumerate(["桥梁检测新技术", "BIM 协同设计"]):
            r = HourRecord(person=p, year=year, category=Category.PRO, learning_form=LearningForm.TRAIN_ONSITE,
                           course_name=course, start_date=datetime.date(year, 3 + i, 1),
                           end_date=datetime.date(year, 3 + i, 2), hours=Decimal(16), source=Source.UNIT_IMPORT,
                           status=Status.APPROVED, unit_id=unit_a.id, region_code=unit_a.region_code)
            db.session.add(r)
        db.session.commit()
        return p.id


def test_registration_links_imported_records_after_confirmation(app, client, login_as):
    person_id = _imported_person(app)
    code = _unit_a_code(app)
    # A name that does not match what was imported is refused.
    html = text(post(client, "/register/person", person_form(name="周九", username="zhouba", credit_code=code),
                     follow_redirects=True))
    assert "姓名与该身份证号码已登记的姓名不一致" in html
    html = text(post(client, "/register/person", person_form(name="周八", username="zhouba", credit_code=code),
                     follow_redirects=True))
    assert "注册成功" in html
    with app.app_context():
        assert db.session.scalar(select(func.count(Person.id)).where(Person.id_number == NEW_ID)) == 1
        assert uid("zhouba").person_id == person_id
    # Before the unit confirms, the account sees none of the records.
    me = login_as("zhouba", GOOD_PW)
    assert "桥梁检测新技术" not in text(me.get("/hourrecordview/list/"))
    assert "等待该单位确认" in text(me.get("/account/unit/"))
    # Another unit's clerk cannot confirm (not listed, and posting the id is refused).
    clerk_b = login_as("clerk_b")
    assert "周八" not in text(clerk_b.get("/accounts/attachments/"))
    html = text(post(clerk_b, f"/accounts/attachments/{person_id}/confirm", {"decision": "confirm"},
                     follow_redirects=True))
    assert "不在您的权限范围内" in html
    with app.app_context():
        p = db.session.get(Person, person_id)
        assert p.pending_unit_id is not None and p.unit_confirmed is False
    # Unit A's clerk sees the request with the imported records count, and confirms.
    clerk_a = login_as("clerk_a")
    html = text(clerk_a.get("/accounts/attachments/"))
    assert "周八" in html and NEW_ID in html
    html = text(post(clerk_a, f"/accounts/attachments/{person_id}/confirm", {"decision": "confirm"},
                     follow_redirects=True))
    assert "已确认周八为本单位人员" in html
    with app.app_context():
        p = db.session.get(Person, person_id)
        assert accounts.person_attachment_confirmed(p)
        assert audit_actions("confirm_attachment")[0].username == "clerk_a"
    html = text(me.get("/hourrecordview/list/"))
    assert "桥梁检测新技术" in html and "BIM 协同设计" in html


def test_declined_person_can_choose_again(app, client, login_as):
    code = _unit_a_code(app)
    post(client, "/register/person", person_form(credit_code=code), follow_redirects=True)
    with app.app_context():
        person_id = db.session.execute(select(Person.id).where(Person.id_number == NEW_ID)).scalar_one()
    clerk_a = login_as("clerk_a")
    html = text(post(clerk_a, f"/accounts/attachments/{person_id}/confirm", {"decision": "reject", "reason": "查无此人"},
                     follow_redirects=True))
    assert "已退回孙七的归属申请" in html
    me = login_as("sunqi", GOOD_PW)
    assert "请重新选择单位" in text(me.get("/account/unit/"))
    with app.app_context():
        code_b = db.session.execute(select(Unit.credit_code).where(Unit.name == "苏州工业园区智造有限公司")).scalar_one()
    html = text(post(me, "/account/unit/request", {"credit_code": code_b}, follow_redirects=True))
    assert "等待该单位确认" in html
    with app.app_context():
        assert db.session.get(Person, person_id).pending_unit.name == "苏州工业园区智造有限公司"


def test_moving_person_keeps_records_with_old_unit_until_confirmed(app, client, login_as):
    """An imported person of unit A who registers choosing unit B: A keeps the
    records until B confirms (a registration alone moves nobody)."""
    person_id = _imported_person(app)
    with app.app_context():
        code_b = db.session.execute(select(Unit.credit_code).where(Unit.name == "苏州工业园区智造有限公司")).scalar_one()
    post(client, "/register/person", person_form(name="周八", username="zhouba", credit_code=code_b),
         follow_redirects=True)
    assert "桥梁检测新技术" in text(login_as("clerk_a").get("/hourrecordview/list/?_flt_0_course_name=桥梁"))
    assert "桥梁检测新技术" not in text(login_as("clerk_b").get("/hourrecordview/list/"))
    # Unit A cannot confirm the move to B on B's behalf.
    html = text(post(login_as("clerk_a"), f"/accounts/attachments/{person_id}/confirm", {"decision": "confirm"},
                     follow_redirects=True))
    assert "不在您的权限范围内" in html
    post(login_as("clerk_b"), f"/accounts/attachments/{person_id}/confirm", {"decision": "confirm"},
         follow_redirects=True)
    with app.app_context():
        p = db.session.get(Person, person_id)
        assert p.unit.name == "苏州工业园区智造有限公司"
        regions = set(db.session.execute(select(HourRecord.region_code).where(HourRecord.person_id == person_id)).scalars())
        assert regions == {"320508"}


# ---------------------------------------------------------------- unit account administration


def test_unit_admin_sees_only_its_unit(app, login_as):
    html = text(login_as("unitadmin_a").get("/accounts/users/"))
    table = html[html.index('id="accounts"'):]
    assert "clerk_a" in table and "unitadmin_a" in table
    for other in ("clerk_b", "admin", "bureau_nj", "bureau_js", "agency_clerk", "zhangsan"):
        assert f"<td>{other}</td>" not in table, other


def test_unit_admin_creates_grants_resets_deactivates(app, login_as):
    ua = login_as("unitadmin_a")
    with app.app_context():
        operator = role_id(app, "UnitOperator")
    # Created without a role, then granted UnitOperator and UnitAdmin, then UnitOperator revoked.
    html = text(post(ua, "/accounts/users/add", {"first_name": "钱九", "username": "clerk_new1", "password": GOOD_PW},
                     follow_redirects=True))
    assert "账号clerk_new1已创建" in html
    with app.app_context():
        new = uid("clerk_new1")
        unit_a = uid("unitadmin_a").unit_id
        assert new.unit_id == unit_a and new.roles == [] and new.must_change_password is True
        new_id = new.id
    html = text(post(ua, f"/accounts/users/{new_id}/grant", {"role_id": operator}, follow_redirects=True))
    assert "已授予角色" in html
    with app.app_context():
        assert [r.name for r in uid("clerk_new1").roles] == ["UnitOperator"]
    post(ua, f"/accounts/users/{new_id}/grant", {"role_id": role_id(app, "UnitAdmin")}, follow_redirects=True)
    post(ua, f"/accounts/users/{new_id}/revoke", {"role_id": operator}, follow_redirects=True)
    post(ua, f"/accounts/users/{new_id}/reset", {"password": "Another#Pass9", "confirm": "Another#Pass9"},
         follow_redirects=True)
    html = text(post(ua, f"/accounts/users/{new_id}/active", {"active": "0"}, follow_redirects=True))
    assert "账号已停用" in html
    with app.app_context():
        new = uid("clerk_new1")
        assert [r.name for r in new.roles] == ["UnitAdmin"] and new.active is False
        for action, n in (("create_account", 1), ("grant_role", 2), ("revoke_role", 1), ("reset_password", 1),
                          ("deactivate_account", 1)):
            entries = audit_actions(action)
            assert [(e.username, e.object_id, e.unit_id) for e in entries] == [("unitadmin_a", str(new_id), unit_a)] * n, action
        assert [json.loads(e.detail)["new"]["role"] for e in audit_actions("grant_role")] == ["UnitOperator", "UnitAdmin"]
    # Deactivated: cannot sign in.
    c = app.test_client()
    assert "退出" not in text(login(c, "clerk_new1", "Another#Pass9"))


ESCALATIONS = [
    # (target user, url suffix, form) -- each must be refused with nothing changed
    ("clerk_a", "grant", {"role": "Admin"}),
    ("clerk_a", "grant", {"role": "Bureau"}),
    ("clerk_a", "grant", {"role": "Applicant"}),
    ("clerk_a", "grant", {"role": "Organizer"}),
    ("clerk_b", "grant", {"role": "UnitAdmin"}),
    ("clerk_b", "reset", {"password": GOOD_PW, "confirm": GOOD_PW}),
    ("clerk_b", "active", {"active": "0"}),
    ("admin", "reset", {"password": GOOD_PW, "confirm": GOOD_PW}),
    ("admin", "active", {"active": "0"}),
    ("admin", "revoke", {"role": "Admin"}),
    ("bureau_nj", "reset", {"password": GOOD_PW, "confirm": GOOD_PW}),
    ("bureau_nj", "revoke", {"role": "Bureau"}),
    ("zhangsan", "active", {"active": "0"}),
    ("unitadmin_a", "revoke", {"role": "UnitAdmin"}),
    ("unitadmin_a", "active", {"active": "0"}),
]


@pytest.mark.parametrize("target,op,form", ESCALATIONS)
def test_unit_admin_escalations_are_refused(app, login_as, target, op, form):
    with app.app_context():
        target_id = uid(target).id
        before = user_state(target)
        data = dict(form)
        if "role" in data:
            data["role_id"] = str(role_id(app, data.pop("role")))
        audits = db.session.scalar(select(func.count(AuditLog.id)))
    ua = login_as("unitadmin_a")
    html = text(post(ua, f"/accounts/users/{target_id}/{op}", data, follow_redirects=True))
    assert any(m in html for m in ("不在您的管理范围内", "无权授予或撤销该角色", "不能撤销自己的角色", "不能停用自己的账号")), html[-2000:]
    with app.app_context():
        assert user_state(target) == before
        # Nothing audited but the admin's own sign-in.
        new = db.session.execute(select(AuditLog.action).where(AuditLog.id > audits)).scalars().all()
        assert set(new) <= {"login"}


def test_unit_admin_cannot_open_foreign_accounts_or_create_higher_roles(app, login_as):
    ua = login_as("unitadmin_a")
    for name in ("clerk_b", "admin", "bureau_nj"):
        with app.app_context():
            pk = uid(name).id
        html = text(ua.get(f"/accounts/users/{pk}", follow_redirects=True))
        assert "不在您的管理范围内" in html and f"账号：{name}" not in html
    with app.app_context():
        users = db.session.scalar(select(func.count(CEUser.id)))
        admin_role, bureau_role = role_id(app, "Admin"), role_id(app, "Bureau")
    for rid in (admin_role, bureau_role):
        html = text(post(ua, "/accounts/users/add", {"first_name": "X", "username": f"evil{rid}", "password": GOOD_PW,
                                                     "roles": [str(rid)]}, follow_redirects=True))
        assert "无权授予或撤销该角色" in html
    # The add form offers only the unit's roles.
    html = text(ua.get("/accounts/users/add"))
    assert f'value="{admin_role}"' not in html and f'value="{bureau_role}"' not in html
    with app.app_context():
        assert db.session.scalar(select(func.count(CEUser.id))) == users


def test_operators_and_applicants_have_no_account_administration(app, login_as):
    with app.app_context():
        clerk_a = uid("clerk_a").id
        before = user_state("clerk_a")
    for who in ("clerk_a", "zhangsan", "organizer"):
        c = login_as(who)
        assert "账号与权限" not in text(c.get("/accounts/users/", follow_redirects=True))
        post(c, f"/accounts/users/{clerk_a}/grant", {"role_id": role_id(app, "UnitAdmin")}, follow_redirects=True)
        post(c, f"/accounts/users/{clerk_a}/active", {"active": "0"}, follow_redirects=True)
    with app.app_context():
        assert user_state("clerk_a") == before


def test_forms_need_the_csrf_token(app, login_as):
    with app.app_context():
        clerk_a = uid("clerk_a").id
        before = user_state("clerk_a")
    ua = login_as("unitadmin_a")
    resp = ua.post(f"/accounts/users/{clerk_a}/active", data={"active": "0"})
    assert resp.status_code == 400
    with app.app_context():
        assert user_state("clerk_a") == before


# ---------------------------------------------------------------- bureau account administration


def test_bureau_manages_bureau_accounts_of_its_subtree(app, login_as):
    nj = login_as("bureau_nj")
    table = text(nj.get("/accounts/users/"))
    table = table[table.index('id="accounts"'):]
    assert "bureau_nj" in table
    for other in ("bureau_js", "bureau_sz", "clerk_a", "unitadmin_a", "admin"):
        assert f"<td>{other}</td>" not in table, other
    with app.app_context():
        js, sz, clerk = uid("bureau_js").id, uid("bureau_sz").id, uid("clerk_a").id
        before = [user_state(n) for n in ("bureau_js", "bureau_sz", "clerk_a")]
        bureau_role = role_id(app, "Bureau")
    for pk in (js, sz, clerk):
        post(nj, f"/accounts/users/{pk}/reset", {"password": GOOD_PW, "confirm": GOOD_PW}, follow_redirects=True)
        post(nj, f"/accounts/users/{pk}/active", {"active": "0"}, follow_redirects=True)
    html = text(post(nj, "/accounts/users/add", {"first_name": "苏", "username": "bureau_x", "password": GOOD_PW,
                                                 "roles": [str(bureau_role)], "region_code": "320500"},
                     follow_redirects=True))
    assert "只能在本辖区内新增人社局账号" in html
    with app.app_context():
        assert [user_state(n) for n in ("bureau_js", "bureau_sz", "clerk_a")] == before
        assert db.session.execute(select(CEUser).where(CEUser.username == "bureau_x")).first() is None
    # In its subtree it works: a district bureau account under 南京.
    html = text(post(nj, "/accounts/users/add", {"first_name": "玄武", "username": "bureau_xw", "password": GOOD_PW,
                                                 "roles": [str(bureau_role)], "region_code": "320102"},
                     follow_redirects=True))
    assert "账号bureau_xw已创建" in html
    # The province sees both cities' bureau accounts.
    js_table = text(login_as("bureau_js").get("/accounts/users/"))
    assert "bureau_nj" in js_table and "bureau_sz" in js_table and "bureau_xw" in js_table


# ---------------------------------------------------------------- hardening


def test_forced_password_change_on_first_login(app, login_as):
    ua = login_as("unitadmin_a")
    post(ua, "/accounts/users/add", {"first_name": "钱九", "username": "clerk_new1", "password": GOOD_PW,
                                     "roles": [str(role_id(app, "UnitOperator"))]}, follow_redirects=True)
    c = app.test_client()
    html = text(login(c, "clerk_new1", GOOD_PW))
    assert "您的密码由他人设置" in html
    assert "/account/password" in c.get("/hourrecordview/list/").headers["Location"]
    html = text(post(c, "/account/password", {"current": GOOD_PW, "password": GOOD_PW, "confirm": GOOD_PW},
                     follow_redirects=True))
    assert "新密码不能与当前密码相同" in html
    html = text(post(c, "/account/password", {"current": GOOD_PW, "password": "clerk_new1", "confirm": "clerk_new1"},
                     follow_redirects=True))
    assert "不能与用户名相同" in html
    html = text(post(c, "/account/password", {"current": GOOD_PW, "password": "Fresh#Start42",
                                              "confirm": "Fresh#Start42"}, follow_redirects=True))
    assert "密码已修改" in html
    assert c.get("/hourrecordview/list/").status_code == 200
    with app.app_context():
        assert uid("clerk_new1").must_change_password is False
        assert [e.username for e in audit_actions("change_password")] == ["clerk_new1"]


def test_logins_are_audited(app):
    c = app.test_client()
    login(c, "clerk_a", "wrong-password")
    login(c, "nobody_here", "whatever123")
    login(c, "clerk_a")
    with app.app_context():
        failed = audit_actions("login_failed")
        assert sorted(e.username for e in failed) == ["clerk_a", "nobody_here"]
        ok = audit_actions("login")
        assert [(e.username, e.ip) for e in ok] == [("clerk_a", "127.0.0.1")]
        assert ok[0].unit_id == uid("clerk_a").unit_id
        assert uid("clerk_a").fail_login_count == 0


def test_session_cookie_flags_and_security_headers(app):
    c = app.test_client()
    resp = c.get("/login/")
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    cookie = resp.headers.get("Set-Cookie", "")
    html = text(resp)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    resp = c.post("/login/", data={"username": "clerk_a", "password": "Demo@2026", "csrf_token": token})
    cookie = resp.headers.get("Set-Cookie", "") or cookie
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    for url in ("/register/person", "/register/unit"):
        r = c.get(url)
        assert r.headers["X-Frame-Options"] == "DENY" and r.headers["X-Content-Type-Options"] == "nosniff"


def _other_app(backend, **settings):
    base = _config(backend.work_url)
    cfg = type("Cfg", (base,), settings)
    return create_app(cfg)


def test_secure_cookie_when_configured(backend, app):
    other = _other_app(backend, SESSION_COOKIE_SECURE=True, REMEMBER_COOKIE_SECURE=True)
    c = other.test_client()
    resp = c.get("/login/")
    assert "Secure" in resp.headers.get("Set-Cookie", "")
    assert "HttpOnly" in resp.headers.get("Set-Cookie", "")


def test_login_rate_limit_answers_in_chinese(backend, app):
    """Failed logins are limited per account (tests/test_login_limits.py has the rest);
    the registration pages keep their per-address limit."""
    other = _other_app(backend, AUTH_RATE_LIMITED=True, RATELIMIT_ENABLED=True, AUTH_RATE_LIMIT="3 per minute",
                       AUTH_FAILED_PER_ACCOUNT="3 per minute", WTF_CSRF_ENABLED=False)
    codes = [other.test_client().post("/login/", data={"username": "clerk_a", "password": "wrong-one"}).status_code
             for _ in range(3)]
    assert codes == [302, 302, 302]
    resp = other.test_client().post("/login/", data={"username": "clerk_a", "password": "Demo@2026"})
    assert resp.status_code == 429
    assert "该账号登录失败次数过多" in text(resp) and "分钟后）再试" in text(resp)
    c = other.test_client()
    codes = [c.post("/register/person", data={}).status_code for _ in range(4)]
    assert codes[-1] == 429 and "操作过于频繁，请稍后再试" in text(c.post("/register/person", data={}))


def test_fab_security_views_stay_admin_only(app, login_as):
    """FAB's own user, role and password-reset pages: a unit admin or a bureau
    user reaches none of them, by page or by post."""
    with app.app_context():
        clerk_b = uid("clerk_b").id
        before = user_state("clerk_b")
        admin_role = role_id(app, "Admin")
    for who in ("unitadmin_a", "bureau_js"):
        c = login_as(who)
        for url in ("/users/list/", f"/users/edit/{clerk_b}", "/roles/list/", f"/resetpassword/form?pk={clerk_b}"):
            resp = c.get(url)
            assert resp.status_code in (302, 403) and "clerk_b" not in text(resp), (who, url)
        post(c, f"/users/edit/{clerk_b}", {"username": "clerk_b", "first_name": "x", "last_name": "y",
                                           "email": "x@y.z", "active": "y", "roles": [str(admin_role)]},
             follow_redirects=True)
        post(c, f"/resetpassword/form?pk={clerk_b}", {"password": GOOD_PW, "conf_password": GOOD_PW},
             follow_redirects=True)
    with app.app_context():
        assert user_state("clerk_b") == before


@pytest.mark.parametrize("url, accounts", [("/roles/list/", "user"), ("/groups/list/", "users")])
def test_role_and_group_grids_do_not_list_every_account(app, login_as, url, accounts):
    """FAB's role and group grids offered the accounts as a search filter, a
    drop-down with one option per account (350 000 at province scale, 15 s a
    page).  Their search forms now leave the accounts out; the grids still open
    and search by name."""
    c = login_as("admin")
    html = text(c.get(url))
    filters = re.findall(r'<a href="#" name="([a-z_]+)" class="filter">', html)
    assert "name" in filters and accounts not in filters, filters
    assert "\\u7cfb\\u7edf \\u7ba1\\u7406\\u5458" not in html  # 系统 管理员, the admin account's option
    if url == "/roles/list/":
        html = text(c.get(url + "?_flt_0_name=Admin"))
        assert ">Admin<" in html


def test_registration_ignores_smuggled_fields(app, client):
    with app.app_context():
        admin_role = role_id(app, "Admin")
    form = register_unit_form(approved="1", roles=str(admin_role), unit_id="1", region_code="320105")
    post(client, "/register/unit", form, follow_redirects=True)
    with app.app_context():
        unit = db.session.execute(select(Unit).where(Unit.credit_code == NEW_CODE)).scalar_one()
        assert unit.approved is False
        u = uid("jy_admin")
        assert [r.name for r in u.roles] == ["UnitAdmin"] and u.unit_id == unit.id


def test_admin_role_changes_in_fab_are_audited(app, login_as):
    with app.app_context():
        clerk = uid("clerk_a")
        pk, unit_id, email = clerk.id, clerk.unit_id, clerk.email
        operator, unit_admin = role_id(app, "UnitOperator"), role_id(app, "UnitAdmin")
    admin = login_as("admin")
    resp = post(admin, f"/users/edit/{pk}", {
        "first_name": "金陵科技", "last_name": "经办", "username": "clerk_a", "email": email,
        "roles": [str(operator), str(unit_admin)], "unit": str(unit_id),
    }, follow_redirects=True)
    assert resp.status_code == 200
    with app.app_context():
        u = uid("clerk_a")
        assert sorted(r.name for r in u.roles) == ["UnitAdmin", "UnitOperator"]
        assert u.active is False  # the unchecked box deactivated it
        grants = audit_actions("grant_role")
        assert [(e.username, json.loads(e.detail)["new"]["role"]) for e in grants] == [("admin", "UnitAdmin")]
        assert [e.object_id for e in audit_actions("deactivate_account")] == [str(pk)]


def test_admin_created_accounts_change_password_first(app, login_as):
    with app.app_context():
        bureau = role_id(app, "Bureau")
    admin = login_as("admin")
    form = {"first_name": "新", "last_name": "经办", "username": "bureau_new", "active": "y",
            "email": "bureau_new@demo.invalid", "roles": [str(bureau)], "region": "320100"}
    # FAB's own add form applies the policy, with the username of the form.
    html = text(post(admin, "/users/add", dict(form, password="Bureau_New", conf_password="Bureau_New"),
                     follow_redirects=True))
    assert "不能与用户名相同" in html
    with app.app_context():
        assert db.session.execute(select(CEUser).where(CEUser.username == "bureau_new")).first() is None
    post(admin, "/users/add", dict(form, password=GOOD_PW, conf_password=GOOD_PW), follow_redirects=True)
    with app.app_context():
        u = uid("bureau_new")
        assert u.must_change_password is True and u.region_code == "320100"
        assert [e.object_id for e in audit_actions("create_account")] == [str(u.id)]
    c = app.test_client()
    assert "您的密码由他人设置" in text(login(c, "bureau_new", GOOD_PW))


def test_admin_account_form_takes_unit_and_person_typed(app, login_as):
    """The account form's unit and person are typed (credit code or name, ID
    number or name), not picked from a drop-down of every unit and person (a
    million persons at province scale: 40 s to open the form).  A text naming no
    row, or several, is an error on the field and stores nothing."""
    with app.app_context():
        applicant = role_id(app, "Applicant")
        person = db.session.execute(select(Person).order_by(Person.id)).scalars().first()
        unit = db.session.get(Unit, person.unit_id)
        person_number, person_id, unit_code, unit_id = person.id_number, person.id, unit.credit_code, unit.id
        db.session.expunge(unit)
        # A second person of the same name, in another unit.
        twin = Person(name=person.name, id_number="110101199003070011", unit_id=person.unit_id)
        db.session.add(twin)
        db.session.commit()
        twin_name = person.name
        db.session.remove()
    admin = login_as("admin")
    html = text(admin.get("/users/add"))
    assert 'name="person"' in html and 'name="unit"' in html
    assert person_number not in html and unit.name not in html  # no option per person or unit
    assert 'placeholder="身份证件号码或姓名"' in html
    assert ">__None<" not in html  # the region drop-down's empty choice is labelled
    form = {"first_name": "新", "last_name": "个人", "username": "person_new", "active": "y",
            "email": "person_new@demo.invalid", "roles": [str(applicant)],
            "password": GOOD_PW, "conf_password": GOOD_PW}
    for person_text, unit_text, error in (("110101190001010000", unit_code, "未找到“110101190001010000”"),
                                          (twin_name, unit_code, f"“{twin_name}”对应多条记录"),
                                          (person_number, "没有这个单位", "未找到“没有这个单位”")):
        html = text(post(admin, "/users/add", dict(form, person=person_text, unit=unit_text), follow_redirects=True))
        assert error in html, error
        with app.app_context():
            assert db.session.execute(select(CEUser).where(CEUser.username == "person_new")).first() is None
    # Markup typed into the field comes back as text, not as HTML.
    html = text(post(admin, "/users/add", dict(form, person="<b>zz</b>", unit=unit_code)))
    assert "<b>zz</b>" not in html and "未找到“&lt;b&gt;zz&lt;/b&gt;”" in html
    # No role: said on the form (FAB's own check answered 500 here).
    resp = post(admin, "/users/add", dict(form, roles=[], person=person_number, unit=unit_code))
    assert resp.status_code == 200 and "请至少选择一个角色" in text(resp)
    with app.app_context():
        assert db.session.execute(select(CEUser).where(CEUser.username == "person_new")).first() is None
    post(admin, "/users/add", dict(form, person=person_number, unit=unit_code), follow_redirects=True)
    with app.app_context():
        u = uid("person_new")
        assert (u.person_id, u.unit_id) == (person_id, unit_id)
        pk = u.id
    listed = text(admin.get("/users/list/?_flt_0_username=person_new"))
    row = re.search(r"<td>person_new</td>.*?</tr>", listed, re.S).group(0)
    assert "<td>个人</td>" in row and "<td>是</td>" in row and "None" not in row and "True" not in row
    html = text(admin.get(f"/users/edit/{pk}"))
    assert f'value="{person_number}"' in html and f'value="{unit_code}"' in html


@pytest.fixture
def redis_url(tmp_path):
    """A throw-away redis-server on a free local port (the production limiter storage)."""
    import socket
    import subprocess
    import time

    import redis

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_login_rate_limit_is_shared_between_workers_through_redis(backend, app, redis_url):
    """Two app instances (two gunicorn workers) share one Redis counter."""
    settings = dict(AUTH_RATE_LIMITED=True, RATELIMIT_ENABLED=True, AUTH_FAILED_PER_ACCOUNT="3 per minute",
                    WTF_CSRF_ENABLED=False, RATELIMIT_STORAGE_URI=redis_url, REDIS_URL=redis_url)
    one, two = _other_app(backend, **settings), _other_app(backend, **settings)
    a, b = one.test_client(), two.test_client()
    assert a.post("/login/", data={"username": "clerk_a", "password": "wrong-one"}).status_code == 302
    assert b.post("/login/", data={"username": "clerk_a", "password": "wrong-one"}).status_code == 302
    assert a.post("/login/", data={"username": "clerk_a", "password": "wrong-one"}).status_code == 302
    resp = two.test_client().post("/login/", data={"username": "clerk_a", "password": "Demo@2026"})
    assert resp.status_code == 429 and "该账号登录失败次数过多" in text(resp)


def test_deactivation_ends_an_open_session(app, login_as):
    clerk = login_as("clerk_a")
    assert clerk.get("/hourrecordview/list/").status_code == 200
    with app.app_context():
        pk = uid("clerk_a").id
    html = text(post(login_as("unitadmin_a"), f"/accounts/users/{pk}/active", {"active": "0"}, follow_redirects=True))
    assert "账号已停用" in html
    resp = clerk.get("/hourrecordview/list/")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


def test_bureau_rejects_a_registration_in_its_region_only(app, client, login_as):
    unit_id = _register_new_unit(client, app)
    sz = login_as("bureau_sz")
    html = text(post(sz, "/unitapprovalview/action_post", {"action": "reject", "rowid": [str(unit_id)]},
                     follow_redirects=True))
    assert "不在您的权限范围内" in html
    with app.app_context():
        assert db.session.get(Unit, unit_id) is not None and uid("jy_admin").active
    nj = login_as("bureau_nj")
    html = text(post(nj, "/unitapprovalview/action_post", {"action": "reject", "rowid": [str(unit_id)]},
                     follow_redirects=True))
    assert "已退回1家单位的注册" in html
    with app.app_context():
        assert db.session.get(Unit, unit_id) is None
        assert db.session.execute(select(CEUser).where(CEUser.username == "jy_admin")).first() is None
        entry = audit_actions("reject_unit")[0]
        assert entry.username == "bureau_nj" and json.loads(entry.detail)["old"]["accounts"] == ["jy_admin"]
    # The credit code is free again.
    assert "注册成功" in text(post(client, "/register/unit", register_unit_form(), follow_redirects=True))


def test_account_list_is_paged_and_searchable(app, login_as):
    """An administrator manages every applicant's account: the list shows 50 a
    page by username with a next-page link, finds a username by its first letters
    (any case) or a name by its first characters, and loads the roles of a page in
    a few statements, not one per account."""
    from sqlalchemy import event

    with app.app_context():
        password = db.session.execute(select(CEUser.password).where(CEUser.username == "clerk_a")).scalar()
        applicant = role_id(app, "Applicant")
        first = db.session.execute(select(func.max(CEUser.id))).scalar() + 1
        db.session.execute(CEUser.__table__.insert(), [
            {"id": first + i, "first_name": f"翻页{i:03d}", "last_name": "", "username": f"pager{i:03d}",
             "password": password, "active": True, "email": f"pager{i}@example.invalid"} for i in range(120)
        ])
        db.session.execute(CEUser.roles.property.secondary.insert(),
                           [{"user_id": first + i, "role_id": applicant} for i in range(120)])
        db.session.commit()
        total = len(db.session.execute(accounts.managed_users_query(uid("admin"))).scalars().all())
        db.session.remove()
    admin = login_as("admin")
    seen, statements = [], []
    with app.app_context():
        engine = db.engine
    grab = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", grab)
    try:
        html = text(admin.get("/accounts/users/"))
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    url = "/accounts/users/"
    while url:
        html = text(admin.get(url))
        table = html[html.index('id="accounts"'):]
        names = re.findall(r"<tr>\s*<td>([^<]+)</td>", table)
        assert 0 < len(names) <= 50
        seen += names
        m = re.search(r'<li class="next"><a href="([^"]+)"', html)
        url = m.group(1).replace("&amp;", "&") if m else None
    assert f"共 {total} 个账号" in text(admin.get("/accounts/users/"))
    assert len(seen) == total == len(set(seen)) and seen == sorted(seen)
    assert len(statements) < 15, statements
    found = text(admin.get("/accounts/users/?q=PAGER10"))
    found = re.findall(r"<tr>\s*<td>([^<]+)</td>", found[found.index('id="accounts"'):])
    assert found == [f"pager{i}" for i in range(100, 110)]
    by_name = text(admin.get("/accounts/users/?q=翻页11"))
    assert re.findall(r"<tr>\s*<td>([^<]+)</td>", by_name[by_name.index('id="accounts"'):]) == \
        [f"pager{i}" for i in range(110, 120)]


def test_last_login_is_shown_in_beijing_time(app, login_as):
    """FAB writes ab_user.last_login with the server's local time (datetime.now());
    the account pages show it in Beijing time, whatever zone the server runs in."""
    from app.services.localtime import BEIJING

    local = datetime.datetime(2026, 3, 1, 2, 5)
    shown = local.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")
    with app.app_context():
        user = uid("clerk_a")
        user.last_login = local
        db.session.commit()
        pk = user.id
    table = text(login_as("unitadmin_a").get("/accounts/users/?q=clerk_a"))
    row = table[table.index("<td>clerk_a</td>"):]
    assert shown in row[:row.index("</tr>")]
    show = text(login_as("secadmin").get(f"/users/show/{pk}"))
    assert shown in show
    if shown != local.strftime("%Y-%m-%d %H:%M"):  # a server not on Beijing time
        assert local.strftime("%Y-%m-%d %H:%M") not in show
