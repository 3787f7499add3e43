"""Portal login (issue 23): what the provincial portal's answer means here.

The protocol adapters (app/security/portal.py) say whom the portal vouches
for; this module validates those fields and binds them:

- a person by resident ID number (checksum validated) to the existing person
  record and its Applicant account, never a second person;
- a legal person by unified social credit code to the unit and its unit
  administrator account;
- someone not known yet goes to the person or unit registration, the portal's
  fields filled in and locked (registered through app.services.accounts, with the
  same rules as any registration).

A portal login signs in to an existing account with the roles the local rules
gave it: it never creates or widens a role, and never opens an administrator or
bureau account (those sign in with their password).
"""
import dataclasses
import re
import secrets
import time
from types import SimpleNamespace

from flask_babel import gettext as _
from sqlalchemy import select

from app.extensions import db
from app.models import CEUser, IdType, Person, Unit
from app.security import roles as R
from app.security.portal import LEGAL, PERSON, PortalAnswer
from app.services import accounts, audit
from app.services.errors import DomainError, ValidationFailed
from app.services.validators import check_credit_code, check_resident_id, mask_id_number, normalize_text

# Accounts a portal login never opens.
PASSWORD_ONLY_ROLES = frozenset({R.ADMIN, R.BUREAU})
_MOBILE = re.compile(r"\+?[0-9\-]{5,20}")


@dataclasses.dataclass(frozen=True)
class PortalIdentity:
    """A portal answer whose fields were checked: for a person `id_number`
    (resident ID) and `name`; for a legal person `credit_code` and `org_name`."""

    provider: str
    kind: str
    name: str
    id_number: str | None = None
    credit_code: str | None = None
    org_name: str | None = None
    mobile: str | None = None
    subject: str | None = None

    def to_session(self):
        return dict(dataclasses.asdict(self), at=time.time())

    @classmethod
    def from_session(cls, data, max_age):
        """The identity kept for a registration, or None when absent or older than `max_age` s."""
        if not isinstance(data, dict) or time.time() - float(data.get("at", 0)) > max_age:
            return None
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})


@dataclasses.dataclass(frozen=True)
class Binding:
    """The outcome of a portal login: sign in as `user`, or register (`register`
    is "person" or "unit")."""

    identity: PortalIdentity
    user: CEUser | None = None
    register: str | None = None


def identity_from_answer(answer: PortalAnswer):
    """Check the portal's fields.  Returns a PortalIdentity; raises
    ValidationFailed with a Chinese message naming the bad field."""
    name = normalize_text(answer.name)
    mobile = normalize_text(answer.mobile) or None
    if mobile is not None and not _MOBILE.fullmatch(mobile):
        raise ValidationFailed(_("政务服务网返回的手机号码格式不正确"))
    if answer.kind == PERSON:
        if not answer.id_number:
            raise ValidationFailed(_("政务服务网返回的个人信息缺少身份证号码，无法登录"))
        try:
            number = check_resident_id(answer.id_number)
        except ValidationFailed as exc:
            raise ValidationFailed(_("政务服务网返回的身份证号码无效：%(reason)s", reason=str(exc)))
        if not name or len(name) > 50:
            raise ValidationFailed(_("政务服务网返回的个人信息缺少姓名或姓名格式不正确，无法登录"))
        return PortalIdentity(provider=answer.provider, kind=PERSON, name=name, id_number=number,
                              mobile=mobile, subject=normalize_text(answer.subject) or None)
    if answer.kind == LEGAL:
        if not answer.credit_code:
            raise ValidationFailed(_("政务服务网返回的法人信息缺少统一社会信用代码，无法登录"))
        try:
            code = check_credit_code(answer.credit_code)
        except ValidationFailed as exc:
            raise ValidationFailed(_("政务服务网返回的统一社会信用代码无效：%(reason)s", reason=str(exc)))
        org_name = normalize_text(answer.org_name)
        if not org_name or len(org_name) > 200:
            raise ValidationFailed(_("政务服务网返回的法人信息缺少单位名称，无法登录"))
        return PortalIdentity(provider=answer.provider, kind=LEGAL, name=name or org_name, credit_code=code,
                              org_name=org_name, mobile=mobile, subject=normalize_text(answer.subject) or None)
    raise ValidationFailed(_("登录类型不正确"))


def _may_open(user):
    if not user.is_active:
        raise DomainError(_("该账号已停用，请联系管理员"))
    if {r.name for r in user.roles} & PASSWORD_ONLY_ROLES:
        raise DomainError(_("系统管理员和人社局经办账号请使用账号密码登录"))
    return user


def bind(identity: PortalIdentity):
    """Who `identity` is here.  Returns a Binding; raises DomainError when the
    person or unit is known but has no account the portal may open."""
    if identity.kind == PERSON:
        person = db.session.execute(
            select(Person).where(Person.id_type == IdType.RESIDENT, Person.id_number == identity.id_number)
        ).scalar_one_or_none()
        if person is None:
            return Binding(identity, register="person")
        user = db.session.execute(
            select(CEUser).where(CEUser.person_id == person.id).order_by(CEUser.id).limit(1)
        ).scalar_one_or_none()
        if user is None:
            # Imported earlier, never registered: the registration links the account to it.
            return Binding(identity, register="person")
        return Binding(identity, user=_may_open(user))
    unit = db.session.execute(select(Unit).where(Unit.credit_code == identity.credit_code)).scalar_one_or_none()
    if unit is None:
        return Binding(identity, register="unit")
    from flask_appbuilder.security.sqla.models import Role

    admins = db.session.execute(
        select(CEUser).where(CEUser.unit_id == unit.id, CEUser.roles.any(Role.name == R.UNIT_ADMIN))
        .order_by(CEUser.id)
    ).scalars().all()
    active = [u for u in admins if u.is_active]
    if not active:
        raise DomainError(_("单位“%(name)s”已注册，但没有可用的单位管理员账号，请联系所在地人社局", name=unit.name))
    return Binding(identity, user=_may_open(active[0]))


def record_failure(provider, kind, reason, message, identity=None):
    """Audit entry of a refused portal login (committed: it is the only thing a
    refused login stores).  The ID number is kept masked."""
    who = SimpleNamespace(id=None, username=None)
    detail = {"provider": provider, "kind": kind, "reason": reason, "message": str(message)[:200]}
    if identity is not None:
        detail["id_number"] = mask_id_number(identity.id_number) if identity.id_number else None
        detail["credit_code"] = identity.credit_code
    audit.record("login_failed", "CEUser", None, user=who, **detail)
    db.session.commit()


def _portal_password():
    """A strong random password nobody knows: an account registered through the
    portal signs in through the portal (its unit may set a password later)."""
    return secrets.token_urlsafe(24) + "aA1"


def register_person(identity: PortalIdentity, *, phone=None, credit_code=None, unit_id=None, freelancer=False):
    """Person registration of a portal user: name, ID number (and the mobile the
    portal gave) are the portal's, not the form's.  Returns the new user."""
    if identity is None or identity.kind != PERSON:
        raise ValidationFailed(_("政务服务网登录信息已失效，请重新登录"))
    password = _portal_password()
    return accounts.register_person(
        name=identity.name, id_number=identity.id_number, phone=identity.mobile or phone,
        username=identity.id_number, password=password, confirm=password,
        credit_code=credit_code, unit_id=unit_id, freelancer=freelancer, via="portal:" + identity.provider,
    )


def register_unit(identity: PortalIdentity, *, region_code, kind, contact_name, contact_phone, admin_name, username):
    """Unit registration of a legal person from the portal: name and credit code
    are the portal's.  The unit awaits the bureau's approval as any other.
    Returns (unit, administrator account)."""
    if identity is None or identity.kind != LEGAL:
        raise ValidationFailed(_("政务服务网登录信息已失效，请重新登录"))
    password = _portal_password()
    return accounts.register_unit(
        name=identity.org_name, credit_code=identity.credit_code, region_code=region_code, kind=kind,
        contact_name=contact_name, contact_phone=contact_phone or identity.mobile, admin_name=admin_name,
        username=username, password=password, confirm=password, via="portal:" + identity.provider,
    )
