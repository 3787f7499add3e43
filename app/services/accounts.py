"""Accounts (issue 6): offline registration of units and persons, the unit's
confirmation of persons who registered with it, unit- and region-scoped account
administration, and the password policy.

Every function takes the acting user explicitly (`actor`), finds rows through
`app.security.scope`, raises `DomainError` subclasses with a Chinese message, and
writes an audit entry in the same transaction as the change it describes.
"""
import contextlib
import functools
import os
import re
from types import SimpleNamespace

from flask import current_app, has_request_context, request
from flask_babel import gettext as _
from sqlalchemy import func, not_, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import CEUser, HourRecord, IdType, Person, Region, Unit, UnitKind
from app.models.regions import region_prefix
from app.security import roles as R
from app.security.passwords import hash_password, verify_password
from app.security.scope import get_scoped, scope_clause, scope_of
from app.services import audit
from app.services.errors import DomainError, OutOfScope, ValidationFailed
from app.services.persons import attach_person
from app.services.validators import check_credit_code, check_resident_id, normalize_text

# Kinds a unit may register as (bureaus are set up by the province, not registered).
REGISTRABLE_KINDS = (UnitKind.EMPLOYER, UnitKind.AGENCY, UnitKind.ORGANIZER, UnitKind.INDUSTRY)

MIN_PASSWORD_LENGTH = 8
_USERNAME = re.compile(r"[A-Za-z0-9_.@\-]{3,64}")
_PHONE = re.compile(r"[0-9+\-() ]{5,30}")


# ---------------------------------------------------------------- passwords


@functools.lru_cache(maxsize=1)
def common_passwords():
    """The bundled list of common passwords (lower-cased), app/data/common_passwords.txt."""
    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "common_passwords.txt")
    with open(path, encoding="utf-8") as fh:
        return frozenset(
            line.strip().lower() for line in fh if line.strip() and not line.startswith("#")
        )


def check_password(password, username=None):
    """The password policy: at least 8 characters, not all digits, not the
    username, not a common password.  Raises ValidationFailed; returns None."""
    password = password or ""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(_("密码长度至少为%(n)d位", n=MIN_PASSWORD_LENGTH))
    if password.isdigit():
        raise ValidationFailed(_("密码不能全部为数字"))
    if username and password.strip().lower() == str(username).strip().lower():
        raise ValidationFailed(_("密码不能与用户名相同"))
    if password.lower() in common_passwords():
        raise ValidationFailed(_("密码过于常见，请换一个更难猜的密码"))


def fab_password_complexity(password):
    """FAB_PASSWORD_COMPLEXITY_VALIDATOR: the same policy on FAB's own password
    forms (admin's user add / reset, "reset my password").  The username is the
    edited user's (`?pk=`) or the signed-in user's."""
    from flask_appbuilder.exceptions import PasswordComplexityValidationError
    from flask_login import current_user

    username = None
    if has_request_context():
        pk = request.args.get("pk")
        if pk and str(pk).isdigit():
            target = db.session.get(CEUser, int(pk))
            username = target.username if target else None
        elif request.form.get("username"):
            username = request.form.get("username")
        elif current_user and current_user.is_authenticated:
            username = current_user.username
    try:
        check_password(password, username)
    except ValidationFailed as exc:
        raise PasswordComplexityValidationError(str(exc))


def id_account_name(number):
    """The username stored for an account that signs in with its ID number: a
    keyed digest of the number (its blind index), so the account table never holds
    the number in clear.  The login page takes the number itself
    (`sign_in_name`)."""
    return "id-" + Person.number_index(number)[:24]


def sign_in_name(typed):
    """The stored username meant by `typed` when it is a valid resident ID number
    (the accounts registered without a username of their own), else None."""
    text = normalize_text(typed or "")
    if len(text) != 18:
        return None
    try:
        number = check_resident_id(text)
    except ValidationFailed:
        return None
    return id_account_name(number)


def _check_username(username):
    username = normalize_text(username)
    if not _USERNAME.fullmatch(username):
        raise ValidationFailed(_("用户名应为3至64位字母、数字或 _ . @ -"))
    taken = db.session.execute(
        select(CEUser.id).where(db.func.lower(CEUser.username) == username.lower())
    ).first()
    if taken:
        raise ValidationFailed(_("用户名“%(name)s”已被使用，请换一个", name=username))
    return username


def _check_phone(phone, required=True):
    phone = normalize_text(phone)
    if not phone:
        if required:
            raise ValidationFailed(_("请填写联系电话"))
        return None
    if not _PHONE.fullmatch(phone):
        raise ValidationFailed(_("联系电话格式不正确"))
    return phone


def _required(value, message):
    value = normalize_text(value)
    if not value:
        raise ValidationFailed(message)
    return value


@contextlib.contextmanager
def _field(name):
    """A ValidationFailed raised inside names the form field it is about
    (details["field"]), so that the form marks that field (issue 27)."""
    try:
        yield
    except ValidationFailed as exc:
        exc.details.setdefault("field", name)
        raise


def _role(name):
    role = current_app.appbuilder.sm.find_role(name)
    if role is None:
        raise DomainError(_("角色“%(name)s”不存在，请先同步角色", name=name))
    return role


def _new_user(username, first_name, last_name, password, roles, **binding):
    """A CEUser added to the session (not committed)."""
    user = CEUser(
        username=username, first_name=first_name, last_name=last_name or "",
        email=f"{username}@users.invalid", active=True, password=hash_password(password),
        **binding,
    )
    user.roles = list(roles)
    db.session.add(user)
    return user


def _user_place(user):
    """unit_id / region_code of audit entries about `user`."""
    unit = db.session.get(Unit, user.unit_id) if user.unit_id else None
    return {"unit_id": user.unit_id, "region_code": unit.region_code if unit else user.region_code}


def _commit_or_duplicate(message):
    """Commit; a unique-constraint race (two registrations at once) becomes `message`."""
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ValidationFailed(message)


# ---------------------------------------------------------------- reference lists


def cities():
    """The cities (地级市) of the registry, [(code, name)]."""
    rows = db.session.execute(
        select(Region.code, Region.name)
        .where(Region.code.like("%00"), not_(Region.code.like("%0000")))
        .order_by(Region.code)
    ).all()
    return [(r.code, r.name) for r in rows]


def districts():
    """Every district with its city, [(code, name, city_code)], for the city → district choice."""
    rows = db.session.execute(
        select(Region.code, Region.name, Region.parent_code)
        .where(not_(Region.code.like("%00")))
        .order_by(Region.code)
    ).all()
    return [(r.code, r.name, r.parent_code) for r in rows]


def registrable_units(region_code, freelancer=False):
    """Approved units in the subtree of `region_code` that a person may join:
    HR service agencies for freelancers, any other unit otherwise.  [(id, name)]."""
    prefix = region_prefix(normalize_text(region_code))
    if not prefix or not prefix.isdigit() or len(prefix) < 4:
        return []
    from app.models.regions import region_range

    kind_clause = Unit.kind == UnitKind.AGENCY if freelancer else Unit.kind.notin_([UnitKind.AGENCY, UnitKind.BUREAU])
    rows = db.session.execute(
        select(Unit.id, Unit.name)
        .where(region_range(Unit.region_code, prefix), Unit.approved.is_(True), kind_clause)
        .order_by(Unit.name)
        .limit(500)
    ).all()
    return [(r.id, r.name) for r in rows]


# ---------------------------------------------------------------- unit registration


def register_unit(*, name, credit_code, region_code, kind, contact_name, contact_phone,
                  admin_name, username, password, confirm=None, via=None):
    """Register a unit and its first UnitAdmin account.  The unit is not approved:
    its users act only once a bureau of its region approves it (`approve_units`).
    Returns (unit, user); raises ValidationFailed (nothing stored)."""
    with _field("name"):
        name = _required(name, _("请填写单位名称"))
    with _field("credit_code"):
        code = check_credit_code(credit_code)
        existing = db.session.execute(select(Unit).where(Unit.credit_code == code)).scalar_one_or_none()
        if existing is not None:
            raise ValidationFailed(
                _("统一社会信用代码%(code)s已注册（%(name)s），请勿重复注册；如需账号请联系该单位的管理员",
                  code=code, name=existing.name)
            )
    region_code = normalize_text(region_code)
    region = db.session.get(Region, region_code) if region_code else None
    if region is None or region.level == "province":
        raise ValidationFailed(_("请选择单位所在的市和区县"), field="region_code")
    if isinstance(kind, str):
        kind = UnitKind.__members__.get(kind)
    if kind not in REGISTRABLE_KINDS:
        raise ValidationFailed(_("请选择单位类型"), field="kind")
    with _field("contact_name"):
        contact_name = _required(contact_name, _("请填写联系人"))
    with _field("contact_phone"):
        contact_phone = _check_phone(contact_phone)
    with _field("admin_name"):
        admin_name = _required(admin_name, _("请填写管理员姓名"))
    with _field("username"):
        username = _check_username(username)
    if confirm is not None and confirm != password:
        raise ValidationFailed(_("两次输入的密码不一致"), field="confirm")
    with _field("password"):
        check_password(password, username)

    unit = Unit(name=name, credit_code=code, kind=kind, region_code=region.code,
                contact_name=contact_name, contact_phone=contact_phone, approved=False)
    db.session.add(unit)
    db.session.flush()
    user = _new_user(username, admin_name, "", password, [_role(R.UNIT_ADMIN)], unit_id=unit.id)
    db.session.flush()
    audit.record(
        "register_unit", "Unit", unit.id, user=user, unit_id=unit.id, region_code=unit.region_code,
        new=audit.snapshot(unit, ("name", "credit_code", "kind", "region_code", "contact_name", "contact_phone")),
        admin_username=username, **({"via": via} if via else {}),
    )
    _commit_or_duplicate(_("该单位或用户名已注册，请勿重复注册"))
    return unit, user


def pending_units_query(actor=None):
    """Select of units awaiting approval that `actor` (the current user) may approve."""
    scope = scope_of(actor) if actor is not None else None
    return select(Unit).where(Unit.approved.is_(False), scope_clause(Unit, scope)).order_by(Unit.id)


def approve_units(ids, actor):
    """Approve the registrations of the given units.  Only a bureau user (for
    units in its region subtree) or an admin may; units outside the actor's
    scope are ignored.  Returns (approved units, number ignored)."""
    scope = scope_of(actor)
    if not (scope.everything or R.BUREAU in scope.roles):
        raise OutOfScope(_("只有人社局经办人员可以审核单位注册"))
    approved, ignored = [], 0
    for pk in ids:
        unit = get_scoped(Unit, pk, scope)
        if unit is None or unit.approved:
            ignored += 1
            continue
        unit.approved = True
        audit.record("approve_unit", "Unit", unit.id, user=actor, unit_id=unit.id,
                     region_code=unit.region_code, old={"approved": False}, new={"approved": True})
        approved.append(unit)
    db.session.commit()
    return approved, ignored


def reject_units(ids, actor, reason=None):
    """Decline unit registrations awaiting approval (bogus or mistaken): the unit
    and its accounts are removed, so that the credit code can register again.
    Same scope rule as `approve_units`; a unit that persons already chose is kept.
    Returns (names of the removed units, number ignored)."""
    scope = scope_of(actor)
    if not (scope.everything or R.BUREAU in scope.roles):
        raise OutOfScope(_("只有人社局经办人员可以审核单位注册"))
    removed, ignored = [], 0
    for pk in ids:
        unit = get_scoped(Unit, pk, scope)
        if unit is None or unit.approved:
            ignored += 1
            continue
        used = db.session.execute(
            select(Person.id).where((Person.unit_id == unit.id) | (Person.pending_unit_id == unit.id)).limit(1)
        ).first() or db.session.execute(
            select(HourRecord.id).where((HourRecord.unit_id == unit.id) | (HourRecord.reported_by_unit_id == unit.id))
            .limit(1)
        ).first()
        if used:
            ignored += 1
            continue
        users = db.session.execute(select(CEUser).where(CEUser.unit_id == unit.id)).scalars().all()
        audit.record(
            "reject_unit", "Unit", unit.id, user=actor, unit_id=unit.id, region_code=unit.region_code,
            old=dict(audit.snapshot(unit, ("name", "credit_code", "kind", "region_code", "contact_name",
                                           "contact_phone")), accounts=[u.username for u in users]),
            reason=normalize_text(reason)[:200] or None,
        )
        for user in users:
            user.roles = []
            db.session.delete(user)
        db.session.flush()
        removed.append(unit.name)
        db.session.delete(unit)
    db.session.commit()
    return removed, ignored


# ---------------------------------------------------------------- personal registration


def _unit_for_person(credit_code, unit_id, freelancer):
    unit = None
    if normalize_text(credit_code):
        code = check_credit_code(credit_code)
        unit = db.session.execute(select(Unit).where(Unit.credit_code == code)).scalar_one_or_none()
        if unit is None:
            raise ValidationFailed(_("未找到统一社会信用代码为%(code)s的单位，请核对或按地区选择单位", code=code))
    elif unit_id not in (None, ""):
        try:
            unit = db.session.get(Unit, int(unit_id))
        except (TypeError, ValueError):
            unit = None
    if unit is None:
        raise ValidationFailed(
            _("请选择档案存放的人力资源服务机构") if freelancer else _("请填写单位的统一社会信用代码或按地区选择单位")
        )
    if not unit.approved:
        raise ValidationFailed(_("单位“%(name)s”的注册尚未通过审核，暂不能选择", name=unit.name))
    if freelancer and unit.kind != UnitKind.AGENCY:
        raise ValidationFailed(_("自由职业人员应选择存放档案的人力资源服务机构"))
    if not freelancer and unit.kind in (UnitKind.AGENCY, UnitKind.BUREAU):
        raise ValidationFailed(_("所选机构不是用人单位；如为自由职业人员，请勾选“自由职业”"))
    return unit


def register_person(*, name, id_number, phone, username, password, confirm=None,
                    credit_code=None, unit_id=None, freelancer=False, via=None):
    """Register a professional technical person and an Applicant account.

    If a person with that ID number already exists (imported records) and has no
    account yet, the account is linked to it instead of creating a duplicate.
    The person asks to join the chosen unit (or agency): `Person.pending_unit_id`;
    until that unit confirms (`confirm_attachment`) the account sees no records
    and declarations do not reach the unit.  Returns the new user; raises
    ValidationFailed (nothing stored)."""
    with _field("name"):
        name = _required(name, _("请填写姓名"))
    with _field("id_number"):
        number = check_resident_id(id_number)
    with _field("phone"):
        phone = _check_phone(phone)
    username = normalize_text(username) or number
    if username.upper() == number:
        username = id_account_name(number)  # signs in with the number; stored as its digest
    freelancer = bool(freelancer)
    with _field("credit_code" if normalize_text(credit_code) else "unit_id"):
        unit = _unit_for_person(credit_code, unit_id, freelancer)

    person = db.session.execute(
        select(Person).where(Person.id_type == IdType.RESIDENT, Person.id_number == number)
    ).scalar_one_or_none()
    if person is not None:
        has_account = db.session.execute(select(CEUser.id).where(CEUser.person_id == person.id)).first()
        if has_account:
            raise ValidationFailed(_("该身份证号码已注册账号，请直接登录；如忘记密码请联系所在单位"),
                                   field="id_number")
        if person.name != name:
            raise ValidationFailed(_("姓名与该身份证号码已登记的姓名不一致，请核对"), field="name")
    with _field("username"):
        username = _check_username(username)
    if confirm is not None and confirm != password:
        raise ValidationFailed(_("两次输入的密码不一致"), field="confirm")
    with _field("password"):
        check_password(password, username)

    linked = person is not None
    if person is None:
        person = Person(name=name, id_type=IdType.RESIDENT, id_number=number, phone=phone,
                        is_freelancer=freelancer, unit_id=None)
        db.session.add(person)
    elif not person.phone:
        person.phone = phone  # fill a gap, never overwrite what was recorded
    person.unit_confirmed = False
    person.pending_unit_id = unit.id
    db.session.flush()
    user = _new_user(username, name, "", password, [_role(R.APPLICANT)], person_id=person.id)
    db.session.flush()
    audit.record(
        "register_person", "Person", person.id, user=user, unit_id=unit.id, region_code=unit.region_code,
        new={"person_id": person.id, "pending_unit_id": unit.id, "freelancer": freelancer},
        linked_existing=linked, **({"via": via} if via else {}),
    )
    _commit_or_duplicate(_("该身份证号码或用户名已注册，请勿重复注册"))
    return user


def person_attachment_confirmed(person):
    """True when the person's unit (or agency) has confirmed the person belongs
    to it.  Declarations go to the unit only then (the declaration workflow asks
    this); a self-registered person is unconfirmed until `confirm_attachment`."""
    return bool(person is not None and person.unit_id is not None and person.unit_confirmed
                and person.pending_unit_id is None)


def pending_attachments_query(actor=None):
    """Persons asking to join a unit the actor acts for (rows of Person, scoped)."""
    scope = scope_of(actor) if actor is not None else None
    return (
        select(Person)
        .join(Unit, Person.pending_unit_id == Unit.id)
        .where(scope_clause(Person, scope), scope_clause(Unit, scope))
        .order_by(Person.id)
    )


def imported_record_counts(person_ids):
    """{person_id: number of hour records} — what the unit sees before confirming."""
    if not person_ids:
        return {}
    rows = db.session.execute(
        select(HourRecord.person_id, db.func.count()).where(HourRecord.person_id.in_(person_ids))
        .group_by(HourRecord.person_id)
    ).all()
    return dict(rows)


def _pending_person(person_id, actor):
    scope = scope_of(actor)
    if not (scope.everything or scope.unit_ids):
        raise OutOfScope(_("只有单位经办人员可以确认人员归属"))
    person = get_scoped(Person, person_id, scope)
    unit = get_scoped(Unit, person.pending_unit_id, scope) if person is not None and person.pending_unit_id else None
    if unit is None or not (scope.everything or unit.id in scope.unit_ids):
        raise OutOfScope(_("人员不存在、没有待确认的申请，或不在您的权限范围内"))
    return person, unit


def confirm_attachment(person_id, actor):
    """The pending unit confirms the person: the person (and the scope columns of
    its records) moves there, and the person's account sees its records."""
    person, unit = _pending_person(person_id, actor)
    if person.unit_id != unit.id:
        attach_person(person, unit, note=_("注册后经单位确认"))
    person.unit_confirmed = True
    person.pending_unit_id = None
    audit.record("confirm_attachment", "Person", person.id, user=actor, unit_id=unit.id,
                 region_code=unit.region_code, new={"unit_id": unit.id, "unit_confirmed": True})
    db.session.commit()
    return person


def reject_attachment(person_id, actor, reason=None):
    """The pending unit declines the person; the person may choose again."""
    person, unit = _pending_person(person_id, actor)
    person.pending_unit_id = None
    audit.record("reject_attachment", "Person", person.id, user=actor, unit_id=unit.id,
                 region_code=unit.region_code, reason=normalize_text(reason)[:200] or None)
    db.session.commit()
    return person


def request_attachment(user, *, credit_code=None, unit_id=None, freelancer=False):
    """An applicant whose attachment is not confirmed (declined, or never asked)
    asks a unit again."""
    person = db.session.get(Person, user.person_id) if user.person_id else None
    if person is None:
        raise OutOfScope(_("当前账号没有对应的人员信息"))
    if person_attachment_confirmed(person):
        raise ValidationFailed(_("您的单位归属已确认；变更单位请由单位办理"))
    unit = _unit_for_person(credit_code, unit_id, bool(freelancer))
    person.pending_unit_id = unit.id
    audit.record("request_attachment", "Person", person.id, user=user, unit_id=unit.id,
                 region_code=unit.region_code, new={"pending_unit_id": unit.id})
    db.session.commit()
    return person


# ---------------------------------------------------------------- account administration


def grantable_roles(unit):
    """Roles a UnitAdmin of `unit` may grant: UNIT_GRANTABLE, plus the reporting
    role of a programme organizer or an industry authority."""
    roles = list(R.UNIT_GRANTABLE)
    if unit is not None and unit.kind == UnitKind.ORGANIZER:
        roles.append(R.ORGANIZER)
    if unit is not None and unit.kind == UnitKind.INDUSTRY:
        roles.append(R.INDUSTRY)
    return tuple(roles)


def manageable_roles(actor):
    """Role names the actor may grant, revoke, and whose holders it may manage."""
    scope = scope_of(actor)
    if scope.everything:
        return tuple(R.ALL_ROLES)
    if R.BUREAU in scope.roles and scope.region_prefixes:
        return (R.BUREAU,)
    if R.UNIT_ADMIN in scope.roles and scope.unit_ids:
        return grantable_roles(db.session.get(Unit, actor.unit_id))
    return ()


def managed_users_query(actor):
    """Select of the accounts the actor administers: inside its scope (its unit,
    or the bureau accounts of its region subtree) and holding no role above what
    it may grant (so an admin or a bureau user never shows up for a unit)."""
    from flask_appbuilder.security.sqla.models import Role

    allowed = manageable_roles(actor)
    if not allowed:
        return select(CEUser).where(db.false())
    scope = scope_of(actor)
    return (
        select(CEUser)
        .where(scope_clause(CEUser, scope), not_(CEUser.roles.any(Role.name.notin_(allowed))))
        .order_by(CEUser.username)
    )


ACCOUNTS_PAGE_SIZE = 50
# Counting stops here (an administrator manages every applicant's account).
ACCOUNTS_COUNT_CAP = 10_000


def managed_users_page(actor, search="", page=0, page_size=ACCOUNTS_PAGE_SIZE):
    """(count, capped, accounts) of one page of the accounts the actor administers,
    by username, with their roles, unit and region loaded in the same few queries.
    `search` narrows to usernames starting with it (case-insensitive; LIKE, not an
    index range, which a database's collation could reorder) or, when it holds
    Chinese characters, to names starting with it.
    The count stops at ACCOUNTS_COUNT_CAP (`capped`)."""
    from sqlalchemy.orm import selectinload

    query = managed_users_query(actor)
    search = (search or "").strip()
    if search:
        if any("\u4e00" <= ch <= "\u9fff" for ch in search):
            query = query.where(CEUser.first_name.startswith(search, autoescape=True))
        else:
            query = query.where(db.func.lower(CEUser.username).startswith(search.lower(), autoescape=True))
    counted = query.order_by(None).with_only_columns(CEUser.id).limit(ACCOUNTS_COUNT_CAP + 1).subquery()
    count = db.session.execute(select(db.func.count()).select_from(counted)).scalar()
    users = db.session.execute(
        query.options(selectinload(CEUser.roles), selectinload(CEUser.unit), selectinload(CEUser.region))
        .limit(page_size).offset(max(page, 0) * page_size)
    ).scalars().all()
    return min(count, ACCOUNTS_COUNT_CAP), count > ACCOUNTS_COUNT_CAP, users


def get_managed_user(actor, user_id):
    try:
        user_id = int(user_id)
    except (TypeError, ValueError):
        user_id = None
    user = None
    if user_id is not None:
        user = db.session.execute(
            managed_users_query(actor).where(CEUser.id == user_id)
        ).scalar_one_or_none()
    if user is None:
        raise OutOfScope(_("账号不存在或不在您的管理范围内"))
    return user


def _role_to_manage(actor, role):
    """`role` is a Role, its id or its name; it must be one the actor may grant."""
    from flask_appbuilder.security.sqla.models import Role

    if not isinstance(role, Role):
        if isinstance(role, int) or (isinstance(role, str) and role.isdigit()):
            role = db.session.get(Role, int(role))
        else:
            role = current_app.appbuilder.sm.find_role(role)
    if role is None or role.name not in manageable_roles(actor):
        raise OutOfScope(_("您无权授予或撤销该角色"))
    return role


def create_account(actor, *, username, first_name, password, roles, last_name="", region_code=None):
    """An operator account created by a UnitAdmin (in its unit) or a bureau
    account created by a bureau user (in its region subtree).  The new user must
    change the password at first login.  Returns the user."""
    scope = scope_of(actor)
    # Roles may be granted here or afterwards on the account's page.
    wanted = [_role_to_manage(actor, r) for r in (roles or []) if str(r).strip()]
    binding = {}
    if scope.everything:
        raise DomainError(_("系统管理员请在“安全”菜单的用户列表中新增账号"))
    if R.BUREAU in scope.roles:
        region_code = normalize_text(region_code) or actor.region_code
        region = db.session.get(Region, region_code)
        mine = region_prefix(actor.region_code)
        if region is None or not region.code.startswith(mine):
            raise OutOfScope(_("只能在本辖区内新增人社局账号"))
        binding["region_code"] = region.code
    else:
        binding["unit_id"] = actor.unit_id
    first_name = _required(first_name, _("请填写姓名"))
    username = _check_username(username)
    check_password(password, username)
    user = _new_user(username, first_name, last_name, password, wanted, **binding)
    user.must_change_password = True
    db.session.flush()
    audit.record("create_account", "CEUser", user.id, user=actor, new={"username": username,
                 "roles": [r.name for r in wanted]}, **_user_place(user))
    _commit_or_duplicate(_("用户名“%(name)s”已被使用，请换一个", name=username))
    return user


def grant_role(actor, user_id, role):
    user = get_managed_user(actor, user_id)
    role = _role_to_manage(actor, role)
    if role in user.roles:
        return user
    user.roles.append(role)
    audit.record("grant_role", "CEUser", user.id, user=actor, new={"role": role.name},
                 username_target=user.username, **_user_place(user))
    db.session.commit()
    return user


def revoke_role(actor, user_id, role):
    user = get_managed_user(actor, user_id)
    role = _role_to_manage(actor, role)
    if user.id == actor.id:
        raise ValidationFailed(_("不能撤销自己的角色"))
    if role not in user.roles:
        return user
    user.roles.remove(role)
    audit.record("revoke_role", "CEUser", user.id, user=actor, old={"role": role.name},
                 username_target=user.username, **_user_place(user))
    db.session.commit()
    return user


def reset_password(actor, user_id, password, confirm=None):
    """Set a managed user's password; that user must change it at next login."""
    user = get_managed_user(actor, user_id)
    if user.id == actor.id:
        raise ValidationFailed(_("请在“修改密码”页面修改自己的密码"))
    if confirm is not None and confirm != password:
        raise ValidationFailed(_("两次输入的密码不一致"))
    check_password(password, user.username)
    user.password = hash_password(password)
    user.must_change_password = True
    audit.record("reset_password", "CEUser", user.id, user=actor, username_target=user.username,
                 **_user_place(user))
    db.session.commit()
    return user


def set_active(actor, user_id, active):
    """Deactivate (or reactivate) a managed account."""
    user = get_managed_user(actor, user_id)
    if user.id == actor.id:
        raise ValidationFailed(_("不能停用自己的账号"))
    active = bool(active)
    if bool(user.active) == active:
        return user
    user.active = active
    audit.record("activate_account" if active else "deactivate_account", "CEUser", user.id, user=actor,
                 old={"active": not active}, new={"active": active}, username_target=user.username,
                 **_user_place(user))
    db.session.commit()
    return user


def change_own_password(user, current, new, confirm):
    """The signed-in user changes its own password (also the forced change at
    first login); clears must_change_password."""
    if not user.password or not verify_password(user.password, current):
        raise ValidationFailed(_("当前密码不正确"))
    if new != confirm:
        raise ValidationFailed(_("两次输入的新密码不一致"))
    if new == current:  # (current was just checked against the stored hash)
        raise ValidationFailed(_("新密码不能与当前密码相同"))
    check_password(new, user.username)
    from app.security.sessions import PASSWORD_HISTORY, password_reused

    if password_reused(user, new):
        raise ValidationFailed(_("新密码不能与最近 %(n)s 次使用过的密码相同", n=PASSWORD_HISTORY))
    user.password = hash_password(new)
    user.must_change_password = False
    audit.record("change_password", "CEUser", user.id, user=user, **_user_place(user))
    db.session.commit()
    return user


# ---------------------------------------------------------------- login


def unit_pending(user):
    """The user's unit awaits approval (its users may sign in but not act)."""
    if user is None or not getattr(user, "unit_id", None):
        return False
    unit = user.unit  # loaded with the signed-in user (security manager's load_user)
    return unit is not None and not unit.approved


def record_login(user, success, username=None, provider=None):
    """Audit entry of a login attempt (the caller's session commits it), with the
    way in: `provider` "local" (password) unless given or set as
    `g.ce_login_provider` by the portal login (app/views/portal.py).
    `user` is None for an unknown or inactive account name."""
    from flask import g, has_app_context

    provider = provider or (g.get("ce_login_provider") if has_app_context() else None) or "local"
    if user is None:
        who = SimpleNamespace(id=None, username=normalize_text(username)[:100] or None)
        return audit.record("login_failed", "CEUser", None, user=who, reason="unknown_or_inactive",
                            provider=provider)
    return audit.record("login" if success else "login_failed", "CEUser", user.id, user=user,
                        provider=provider, **_user_place(user))


def record_lockout(username, scope, what, retry_at=None):
    """Audit entry of a lockout: `what` "locked" (this failure used up the account's
    or the address's attempts) or "refused" (an attempt while locked, the password
    not even checked); `scope` "account" or "address"."""
    from flask import has_app_context

    user = None
    if has_app_context() and username:
        user = db.session.execute(select(CEUser).where(func.lower(CEUser.username) == normalize_text(username).lower())
                                  ).scalars().first()
    who = user or SimpleNamespace(id=None, username=normalize_text(username)[:100] or None)
    return audit.record("login_locked" if what == "locked" else "login_refused_locked", "CEUser",
                        getattr(user, "id", None), user=who, lock=scope, outcome=what,
                        retry_at=retry_at.isoformat() if retry_at else None,
                        **(_user_place(user) if user is not None else {}))


def record_logout(user, reason):
    """Audit entry of a user signing out (`reason` "logout").  A session that ends
    by timeout is recorded by services.sessions.record_timeouts."""
    return audit.record("logout", "CEUser", user.id, user=user, reason=reason, **_user_place(user))


# ---------------------------------------------------------------- machine accounts


def create_national_account(region_code, username=None):
    """The national system's machine account (部省对接, role NationalSync) for a
    region subtree: it reads the national API of that region and nothing else.
    Returns (user, password): the password is random, shown once by the caller
    and stored only as a hash.  Audited.  Raises ValidationFailed / DomainError."""
    import secrets

    code = normalize_text(region_code)
    if not code.isdigit() or len(code) not in (2, 4, 6):
        raise ValidationFailed(_("行政区划代码应为2、4或6位数字"))
    code = code.ljust(6, "0")
    if db.session.get(Region, code) is None:
        raise ValidationFailed(_("行政区划代码“%(code)s”不存在", code=code))
    username = _check_username(username or f"national_{region_prefix(code)}")
    # 43 URL-safe characters (256 bits): never a common password, never digits only.
    password = secrets.token_urlsafe(32)
    check_password(password, username)
    user = _new_user(username, "部省对接", code, password, [_role(R.NATIONAL_SYNC)], region_code=code)
    user.must_change_password = False
    db.session.flush()
    audit.record("create_account", "CEUser", user.id, new={"username": username, "roles": [R.NATIONAL_SYNC]},
                 region_code=code)
    _commit_or_duplicate(_("用户名“%(name)s”已被使用，请换一个", name=username))
    return user, password


def reset_national_account(username):
    """A new random password for a machine account (the old one stops working).
    Returns (user, password).  Audited.  Raises DomainError."""
    import secrets

    user = db.session.execute(select(CEUser).where(CEUser.username == username)).scalar_one_or_none()
    if user is None or R.NATIONAL_SYNC not in {r.name for r in user.roles}:
        raise DomainError(_("“%(name)s”不是部省对接账号", name=username))
    password = secrets.token_urlsafe(32)
    user.password = hash_password(password)
    audit.record("reset_password", "CEUser", user.id, username_target=username, region_code=user.region_code)
    db.session.commit()
    return user, password


# ---------------------------------------------------------------- display preference


def set_large_text(user, enabled):
    """Turn the account's 大字版 (every page in larger text, issue 27) on or off.
    A preference of the signed-in user's own account: no scope beyond that, no
    audit entry.  Returns the new setting."""
    user.large_text = bool(enabled)
    db.session.commit()
    return user.large_text


# ---------------------------------------------------------------- 三员分立 (issue 25)

# The duties that one account never holds together (the demo's Admin counts as all of them).
SEPARATED_ROLES = frozenset({R.ADMIN, R.SYS_ADMIN, R.SEC_ADMIN, R.AUDITOR})


def check_separation(actor, user, new_roles, old_roles=()):
    """The guard of 三员分立 on every change of an account's roles (the user grid,
    the group grid): raises ValidationFailed, nothing is stored.

    - nobody changes the roles of their own account (they are granted by another
      administrator), so the security administrator never grants itself more;
    - one account holds at most one of Admin / SysAdmin / SecAdmin / Auditor, and
      an administrator role is never combined with a business role;
    - only an Admin (the demo's) grants Admin."""
    new, old = set(new_roles), set(old_roles)
    actor_id = getattr(actor, "id", None)
    if actor_id is not None and user is not None and getattr(user, "id", None) == actor_id and new != old:
        raise ValidationFailed(_("不能修改自己账号的角色：三员分立要求角色由另一名管理员授予"))
    duties = new & SEPARATED_ROLES
    if len(duties) > 1:
        raise ValidationFailed(_("三员分立：系统管理员、安全管理员、安全审计员（及超级管理员）不能由同一账号兼任"))
    if duties and new - duties:
        raise ValidationFailed(_("三员分立：管理员角色不能与业务角色授予同一账号"))
    actor_roles = {r.name for r in getattr(actor, "roles", ()) or ()}
    if R.ADMIN in new - old and R.ADMIN not in actor_roles:
        raise ValidationFailed(_("超级管理员角色仅用于演示，只能由超级管理员授予"))
