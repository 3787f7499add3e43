"""THE status machine of an hour record (SPEC §2, §3 flows 2 and 8).

    DRAFT ──submit──▶ SUBMITTED ──approve──▶ APPROVED ──revoke──▶ REVOKED
      ▲                │   │  └──return──▶ RETURNED ──submit──▶ SUBMITTED
      └─(edit)         │   └──withdraw──▶ WITHDRAWN ──submit──▶ SUBMITTED

Every transition is ONE conditional, set-based UPDATE

    UPDATE hour_record SET status = :to, ...
     WHERE id IN (:ids) AND status = :from AND <row scope of the actor>
    RETURNING id, unit_id, region_code

so that the database decides races: of two reviewers deciding the same record at
once exactly one UPDATE matches the row, the other matches nothing and is told
"已被他人处理".  The returned ids are exactly the rows changed; each gets an audit
entry (old and new values) in the same transaction.  Rows that were not changed
are explained: outside the actor's scope (or missing) or no longer in a state the
transition starts from.
"""
import datetime
import json
from dataclasses import dataclass, field

from flask_babel import gettext as _
from sqlalchemy import and_, select, update

from app.extensions import db
from app.models import AuditLog, HourRecord, Status
from app.models.enums import label
from app.security.scope import Scope, current_scope, scope_clause
from app.services import audit, audit_chain
from app.services.errors import DomainError, InvalidTransition, OutOfScope, ValidationFailed

H = HourRecord

# action -> (statuses it starts from, status it ends in)
TRANSITIONS = {
    "submit": ((Status.DRAFT, Status.RETURNED, Status.WITHDRAWN), Status.SUBMITTED),
    "withdraw": ((Status.SUBMITTED,), Status.WITHDRAWN),
    "approve": ((Status.SUBMITTED,), Status.APPROVED),
    "return": ((Status.SUBMITTED,), Status.RETURNED),
    "revoke": ((Status.APPROVED,), Status.REVOKED),
}
# The applicant may change a declaration only while nobody is looking at it.
EDITABLE = (Status.DRAFT, Status.RETURNED, Status.WITHDRAWN)
MAX_REASON = 500
# Keeps every statement under SQLite's and PostgreSQL's bound-parameter limits.
CHUNK = 5000


def can(action, status):
    """Whether `action` may start from `status`."""
    return status in TRANSITIONS[action][0]


# ---------------------------------------------------------------- who acts on what
# Each role acts through a part of its row scope (still the one scope_clause):
# reviewers decide declarations of their unit's persons (an agency's clerk those of
# the freelancers whose file it holds); bureau staff may only revoke, in their region;
# applicants act on their own records.


def reviewer_scope(scope=None):
    """Approve / return: the persons of the reviewer's unit(s); admins everything."""
    scope = scope or current_scope()
    if scope.everything:
        return scope
    return Scope(unit_ids=scope.unit_ids, roles=scope.roles)


def revoker_scope(scope=None):
    """Revoke (撤销认定): bureau staff in their region subtree, or the approving unit."""
    scope = scope or current_scope()
    if scope.everything:
        return scope
    return Scope(region_prefixes=scope.region_prefixes, unit_ids=scope.unit_ids, roles=scope.roles)


def applicant_scope(scope=None):
    """Submit / withdraw / edit: the applicant's own records only."""
    scope = scope or current_scope()
    if scope.everything:
        return scope
    return Scope(person_ids=scope.person_ids, roles=scope.roles)


SCOPE_OF_ACTION = {
    "submit": applicant_scope,
    "withdraw": applicant_scope,
    "approve": reviewer_scope,
    "return": reviewer_scope,
    "revoke": revoker_scope,
}


# ---------------------------------------------------------------- result


@dataclass
class TransitionResult:
    """What a (bulk) transition did.  `done_ids`: changed rows; `not_found_ids`:
    missing or outside the actor's scope; `wrong_status`: {id: current Status}."""

    action: str
    requested: int = 0
    done_ids: list = field(default_factory=list)
    not_found_ids: list = field(default_factory=list)
    wrong_status: dict = field(default_factory=dict)
    own_ids: list = field(default_factory=list)  # the reviewer's own declarations

    @property
    def done(self):
        return len(self.done_ids)

    def message(self):
        """One Chinese sentence for the flash message."""
        verb = ACTION_LABELS[self.action]
        parts = [_("%(verb)s %(n)d 条", verb=verb, n=self.done)]
        if self.wrong_status:
            parts.append(_("%(n)d 条已被他人处理或不是待处理状态，未改动", n=len(self.wrong_status)))
        if self.own_ids:
            parts.append(_("%(n)d 条是您本人的申报，不能由本人审核", n=len(self.own_ids)))
        if self.not_found_ids:
            parts.append(_("%(n)d 条不存在或不在您的权限范围内，未改动", n=len(self.not_found_ids)))
        return "；".join(parts)


def _labels():
    return {
        "submit": _("提交"),
        "withdraw": _("撤回"),
        "approve": _("核准"),
        "return": _("退回"),
        "revoke": _("撤销认定"),
    }


def audit_action_label(name):
    """A record's audit action in words, for its history on the review page."""
    labels = dict(_labels(), declare=_("填写申报"), edit=_("修改"), attach=_("上传证明材料"),
                  detach=_("删除证明材料"), create=_("新增"), delete=_("删除"))
    return labels.get(name, name)


class _ActionLabels:
    def __getitem__(self, key):
        return _labels()[key]


ACTION_LABELS = _ActionLabels()


# ---------------------------------------------------------------- the core


def _clean_ids(ids):
    clean = set()
    for i in ids or ():
        try:
            clean.add(int(i))
        except (TypeError, ValueError):
            continue
    return sorted(clean)


def _chunks(seq, n=CHUNK):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def _reason(text, required):
    text = (text or "").strip()
    if required and not text:
        raise ValidationFailed(_("请填写原因"))
    if len(text) > MAX_REASON:
        raise ValidationFailed(_("原因不能超过%(n)d个字", n=MAX_REASON))
    return text or None


def transition(ids, action, *, user=None, scope=None, comment=None, commit=True):
    """Move the records `ids` through `action` in one transaction, set-based.

    `scope` defaults to the part of the current user's scope that may perform the
    action (see SCOPE_OF_ACTION).  `comment` is the reason of a return or revoke
    (required there) or an optional approval remark.  Returns a TransitionResult;
    raises ValidationFailed for a missing reason.  Commits unless commit=False."""
    if action not in TRANSITIONS:
        raise DomainError(_("不支持的操作"))
    from_statuses, to_status = TRANSITIONS[action]
    scope = SCOPE_OF_ACTION[action](scope)
    if user is None:
        from flask_login import current_user

        user = current_user if getattr(current_user, "is_authenticated", False) else None
    ids = _clean_ids(ids)
    result = TransitionResult(action=action, requested=len(ids))
    if not ids:
        return result

    now = datetime.datetime.utcnow()
    values = {"status": to_status, "updated_at": now}
    new_audit = {"status": to_status.name}
    if action in ("approve", "return"):
        reason = _reason(comment, required=(action == "return"))
        values.update(reviewer_id=getattr(user, "id", None), reviewed_at=now, review_comment=reason)
        new_audit.update(reviewer_id=getattr(user, "id", None), review_comment=reason)
    elif action == "revoke":
        reason = _reason(comment, required=True)
        values["revoke_reason"] = reason
        new_audit["revoke_reason"] = reason
    elif action == "submit":
        values["submitted_at"] = now

    clause = scope_clause(H, scope)
    # Nobody decides their own declaration (a unit clerk may also be a person of the unit).
    own_person = getattr(user, "person_id", None) if action in ("approve", "return") else None
    update_clause = and_(clause, H.person_id != own_person) if own_person else clause
    changed = []  # (id, unit_id, region_code, name of the old status)
    person_years = set()
    try:
        for chunk in _chunks(ids):
            for old in from_statuses:
                stmt = (
                    update(H)
                    .where(H.id.in_(chunk), H.status == old, update_clause)
                    .values(**values)
                    .returning(H.id, H.unit_id, H.region_code, H.person_id, H.year)
                    .execution_options(synchronize_session=False)
                )
                rows = db.session.execute(stmt).all()
                name = old.name  # str keys: hashing an Enum 10 000 times costs ~0.1 s
                changed.extend([(r[0], r[1], r[2], name) for r in rows])
                if action == "revoke":
                    person_years.update((r[3], r[4]) for r in rows)
        done = {c[0] for c in changed}
        rest = [i for i in ids if i not in done]
        for chunk in _chunks(rest):
            for rid, status, person_id in db.session.execute(
                select(H.id, H.status, H.person_id).where(H.id.in_(chunk), clause)
            ).all():
                if own_person and person_id == own_person and status in from_statuses:
                    result.own_ids.append(rid)
                else:
                    result.wrong_status[rid] = status
        result.not_found_ids = [i for i in rest if i not in result.wrong_status and i not in result.own_ids]
        result.done_ids = sorted(done)
        _audit_many(action, changed, new_audit, user, now)
        if action == "revoke" and person_years:
            # SPEC §3 flow 8: a certificate that counted a revoked record is superseded now.
            from app.services.certificates import refresh_certificates

            for person_id, year in sorted(person_years):
                refresh_certificates(person_id, year)
        if commit:
            db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    # Objects loaded before the UPDATE are stale now.
    db.session.expire_all()
    return result


def _audit_many(action, changed, new_values, user, now):
    """One append-only audit row per changed record, inserted in one executemany
    (an ORM object per row would cost most of the bulk-approve time budget)."""
    if not changed:
        return
    ip = audit.client_ip()
    uid, uname = getattr(user, "id", None), getattr(user, "username", None)
    detail = {}  # one JSON text per starting status (by name)
    for *_ignored, old in changed:
        if old not in detail:
            detail[old] = json.dumps({"old": {"status": old}, "new": new_values}, ensure_ascii=False)
    rows = [
        {
            "at": now, "user_id": uid, "username": uname, "ip": ip, "action": action,
            "object_type": "HourRecord", "object_id": str(rid), "unit_id": unit_id,
            "region_code": region_code, "detail": detail[old],
        }
        for rid, unit_id, region_code, old in changed
    ]
    for chunk in _chunks(rows):
        audit_chain.seal(db.session.connection(), chunk)
        db.session.execute(AuditLog.__table__.insert(), chunk)


# ---------------------------------------------------------------- one record


def decide_one(record_id, action, *, user=None, scope=None, comment=None):
    """The same transition for one record, as a review page or an applicant's button
    needs it: returns the TransitionResult when the record changed, raises
    InvalidTransition ("已被他人处理", or "cannot <action> in <status>") or OutOfScope."""
    result = transition([record_id], action, user=user, scope=scope, comment=comment)
    if result.done:
        return result
    if result.own_ids:
        raise InvalidTransition(_("不能审核本人的申报"))
    if result.wrong_status:
        status = next(iter(result.wrong_status.values()))
        if action in ("approve", "return") and status in (Status.APPROVED, Status.RETURNED, Status.WITHDRAWN, Status.REVOKED):
            raise InvalidTransition(
                _("该申报已被他人处理（当前状态：%(status)s），请刷新后查看", status=label(status))
            )
        raise InvalidTransition(
            _("当前状态为“%(status)s”，不能%(verb)s", status=label(status), verb=ACTION_LABELS[action])
        )
    raise OutOfScope(_("记录不存在或不在您的权限范围内"))


def approve_records(ids, **kw):
    """Bulk approve (批量核准) of the given ids: see `transition`."""
    return transition(ids, "approve", **kw)


def _pending(query_of_ids, scope):
    return query_of_ids.filter(H.status == Status.SUBMITTED, scope_clause(H, reviewer_scope(scope)))


def pending_ids(query_of_ids, scope=None):
    """Ids from a query of HourRecord ids (e.g. a grid's current filter) that are
    pending and inside the reviewer's scope."""
    return [r[0] for r in _pending(query_of_ids, scope).all()]


def pending_count(query_of_ids, scope=None):
    """How many rows `pending_ids` would return (counted in the database)."""
    return _pending(query_of_ids, scope).count()


def approve_filtered(query_of_ids, confirmed_count, **kw):
    """Approve every pending, in-scope row of a filtered grid, provided the user
    confirmed exactly the number of rows the filter now yields (otherwise rows the
    user has not seen would be approved).  Raises InvalidTransition on a mismatch."""
    ids = pending_ids(query_of_ids, kw.get("scope"))
    try:
        confirmed = int(confirmed_count)
    except (TypeError, ValueError):
        confirmed = -1
    if confirmed != len(ids):
        raise InvalidTransition(
            _("筛选结果已变化（当前为 %(n)d 条待核准），请确认后重试", n=len(ids))
        )
    return transition(ids, "approve", **kw)


# ---------------------------------------------------------------- lowering hours


def approve_lowered(record_id, hours, reason, *, user=None, scope=None):
    """Approve a pending declaration with fewer hours than its rule computed (学时
    认定标准, issue 20): a reviewer may lower, never raise, and must say why.  The
    lowering and the approval are one transaction, audited with the old and new
    hours and the reason.  Raises ValidationFailed, InvalidTransition, OutOfScope."""
    from decimal import Decimal, InvalidOperation

    from app.services import validators

    reason = validators.normalize_text(reason)
    if not reason:
        raise ValidationFailed(_("核减学时须填写原因"))
    record = db.session.execute(
        select(H).where(H.id == record_id, scope_clause(H, reviewer_scope(scope)))).scalars().first()
    if record is None:
        raise OutOfScope(_("记录不存在或不在您的权限范围内"))
    try:
        new = Decimal(str(hours).strip()).quantize(Decimal("0.1"))
    except (InvalidOperation, ValueError):
        raise ValidationFailed(_("核定学时须为数字"))
    old = Decimal(record.hours)
    if not Decimal(0) < new < old:
        raise ValidationFailed(_("核定学时须大于0且小于申报的%(h)s学时（只能核减，不能核增）", h=f"{old:g}"))
    try:
        done = db.session.execute(
            update(H).where(H.id == record.id, H.status == Status.SUBMITTED, H.hours == old)
            .values(hours=new).execution_options(synchronize_session=False)).rowcount
        if done != 1:
            raise InvalidTransition(_("该申报已被他人处理，请刷新后查看"))
        audit.record("lower_hours", "HourRecord", record.id, old={"hours": old}, new={"hours": new},
                     reason=reason, unit_id=record.unit_id, region_code=record.region_code, user=user)
        result = transition([record.id], "approve", user=user, scope=scope,
                            comment=_("核减学时：%(reason)s", reason=reason), commit=False)
        if not result.done:
            raise InvalidTransition(_("该申报已被他人处理，请刷新后查看"))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return result
