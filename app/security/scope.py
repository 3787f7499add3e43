"""THE row-scope mechanism (SPEC §1).

Every list, show, edit, delete, action, export, API, import and certificate route
asks this module which rows the current user may touch:

* `current_scope()` describes the user once per request (cached on `g`);
* `scope_clause(model, scope)` turns it into a SQL condition for one model;
* `ScopeFilter` puts that condition into FAB's `base_filters`;
* `scoped(query, model)` / `get_scoped(model, pk)` serve services and custom views.

A rule for a new model is added to `_RULES` here and nowhere else.
"""
from dataclasses import dataclass, field, replace
from functools import cached_property

from flask import g, has_request_context
from flask_appbuilder.models.filters import BaseFilter
from flask_login import current_user
from sqlalchemy import false, or_, select, true
from sqlalchemy import inspect as sa_inspect

from app.extensions import db
from app.models.regions import hour_record_region, region_prefix, region_range
from app.security import roles as R


@dataclass(frozen=True)
class Scope:
    """What one user may see.  `everything` wins; otherwise the union of the parts."""

    everything: bool = False
    region_prefixes: tuple = ()
    unit_ids: tuple = ()  # unit roles: persons attached to these units
    reporter_unit_ids: tuple = ()  # organizer / industry: records they reported
    person_ids: tuple = ()  # applicant: own records
    roles: frozenset = field(default_factory=frozenset)

    @cached_property
    def key(self):
        """A stable text naming this scope (the same in every worker), for the
        grids' page fingerprints (repr() of the frozenset of roles would follow
        the process's string hash seed)."""
        return repr((self.everything, self.region_prefixes, self.unit_ids, self.reporter_unit_ids,
                     self.person_ids, tuple(sorted(self.roles))))

    @property
    def empty(self):
        return not (
            self.everything or self.region_prefixes or self.unit_ids
            or self.reporter_unit_ids or self.person_ids
        )


NOBODY = Scope()


def scope_of(user):
    """Build the scope of a user object (a CEUser), independent of the request."""
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return NOBODY
    role_names = frozenset(r.name for r in user.roles)
    if role_names & R.WHOLE_PROVINCE_ROLES:  # their permissions limit what they open (roles.py)
        return Scope(everything=True, roles=role_names)
    regions, units, reporters, persons = [], [], [], []
    # Bureau staff and the national system's machine account: a region subtree.
    if role_names & {R.BUREAU, R.NATIONAL_SYNC} and user.region_code:
        regions.append(region_prefix(user.region_code))
    # A unit acts only once its registration is approved, and a self-registered
    # person sees its records only once its unit confirmed it (issue 6).
    unit_ok = bool(user.unit_id) and getattr(user.unit, "approved", False)
    if role_names & {R.UNIT_ADMIN, R.UNIT_OPERATOR} and unit_ok:
        units.append(user.unit_id)
    if role_names & {R.ORGANIZER, R.INDUSTRY} and unit_ok:
        reporters.append(user.unit_id)
    if R.APPLICANT in role_names and user.person_id and getattr(user.person, "unit_confirmed", False):
        persons.append(user.person_id)
    return Scope(
        region_prefixes=tuple(regions),
        unit_ids=tuple(units),
        reporter_unit_ids=tuple(reporters),
        person_ids=tuple(persons),
        roles=role_names,
    )


def current_scope():
    """The signed-in user's scope, computed once per request."""
    if not has_request_context():
        return NOBODY
    cached = getattr(g, "_ce_scope", None)
    if cached is None:
        user = current_user if current_user and current_user.is_authenticated else None
        if user is None:
            # JWT (REST API) users
            user = getattr(g, "user", None)
        cached = scope_of(user)
        g._ce_scope = cached
    return cached


# Roles that work with whole ID numbers of the persons in their scope; the
# others see them masked (services.validators.id_number_for_list).
FULL_ID_ROLES = frozenset({R.ADMIN, R.UNIT_ADMIN, R.UNIT_OPERATOR, R.APPLICANT})


def sees_full_id(scope=None):
    """Whether `scope` (the current user's by default) sees whole ID numbers."""
    scope = scope or current_scope()
    return bool(scope.roles & FULL_ID_ROLES)


# ---------------------------------------------------------------------------
# Per-model rules.  Each takes the model's columns and a Scope and returns the
# parts of the condition; `scope_clause` ORs them together.


def _member(column, ids):
    """`column = id` for one id (a unit's user: the common case), `IN (...)`
    otherwise.  An IN list is rendered into the SQL at every execution."""
    ids = list(ids)
    return column == ids[0] if len(ids) == 1 else column.in_(ids)


def _hour_record_rule(scope):
    from app.models import HourRecord as H

    parts = [hour_record_region(H.region_code, p) for p in scope.region_prefixes]
    if scope.unit_ids:
        parts.append(_member(H.unit_id, scope.unit_ids))
    if scope.reporter_unit_ids:
        parts.append(_member(H.reported_by_unit_id, scope.reporter_unit_ids))
    if scope.person_ids:
        parts.append(_member(H.person_id, scope.person_ids))
    return parts


def _units_in_regions(prefixes):
    from app.models import Unit

    return select(Unit.id).where(or_(*[region_range(Unit.region_code, p) for p in prefixes]))


def _person_rule(scope):
    from app.models import HourRecord, Person

    parts = []
    if scope.region_prefixes:
        parts.append(Person.unit_id.in_(_units_in_regions(scope.region_prefixes)))
    if scope.unit_ids:
        parts.append(_member(Person.unit_id, scope.unit_ids))
        # Self-registered persons asking to join the unit (it confirms them).
        parts.append(_member(Person.pending_unit_id, scope.unit_ids))
    if scope.reporter_unit_ids:
        # Organizers see the persons they reported hours for.
        parts.append(
            Person.id.in_(
                select(HourRecord.person_id).where(
                    _member(HourRecord.reported_by_unit_id, scope.reporter_unit_ids)
                )
            )
        )
    if scope.person_ids:
        parts.append(_member(Person.id, scope.person_ids))
    return parts


def _unit_rule(scope):
    from app.models import Person, Unit

    parts = [region_range(Unit.region_code, p) for p in scope.region_prefixes]
    own = tuple(scope.unit_ids) + tuple(scope.reporter_unit_ids)
    if own:
        parts.append(Unit.id.in_(own))
    if scope.person_ids:
        parts.append(Unit.id.in_(select(Person.unit_id).where(_member(Person.id, scope.person_ids))))
    return parts


def _region_rule(scope):
    # Administrative divisions are public reference data.
    return [true()]


def _audit_rule(scope):
    from app.models import AuditLog

    parts = [region_range(AuditLog.region_code, p) for p in scope.region_prefixes]
    if scope.unit_ids:
        parts.append(_member(AuditLog.unit_id, scope.unit_ids))
    return parts


def _attachment_rule(scope):
    from app.models import Attachment, HourRecord

    return [Attachment.record_id.in_(select(HourRecord.id).where(scope_clause(HourRecord, scope)))]


def _person_review_rule(scope):
    from app.models import PersonReview

    parts = []
    if scope.unit_ids:
        parts.append(_member(PersonReview.unit_id, scope.unit_ids))
    if scope.region_prefixes:
        parts.append(PersonReview.unit_id.in_(_units_in_regions(scope.region_prefixes)))
    if scope.person_ids:
        parts.append(_member(PersonReview.person_id, scope.person_ids))
    return parts


def _user_rule(scope):
    from app.models import CEUser

    parts = []
    if scope.unit_ids:
        parts.append(_member(CEUser.unit_id, scope.unit_ids))
    # Bureau users: the bureau accounts of their region subtree.
    parts += [region_range(CEUser.region_code, p) for p in scope.region_prefixes]
    return parts


def _certificate_rule(scope):
    """A certificate is seen by whoever sees its person (print and registry alike).

    A region's part asks, per certificate, whether its person's unit lies in the
    region (EXISTS): as `person_id IN (the region's persons)` a province bureau's
    registry listed a million persons' ids and probed the certificates of each,
    1.7 s on an empty table.  The other parts (a unit's or one person's few
    persons) stay a list."""
    from app.models import Certificate, Person

    parts = []
    if scope.region_prefixes:
        # (correlated to the certificate only: a query that also joins person
        # keeps this person its own)
        parts.append(select(Person.id).where(Person.id == Certificate.person_id,
                                             Person.unit_id.in_(_units_in_regions(scope.region_prefixes)))
                     .correlate(Certificate).exists())
    rest = replace(scope, region_prefixes=())
    if not rest.empty:
        parts.append(Certificate.person_id.in_(select(Person.id).where(scope_clause(Person, rest))))
    return parts


_RULES = {
    "HourRecord": _hour_record_rule,
    "Person": _person_rule,
    "Unit": _unit_rule,
    "Region": _region_rule,
    "AuditLog": _audit_rule,
    "Attachment": _attachment_rule,
    "PersonReview": _person_review_rule,
    "CEUser": _user_rule,
    "Certificate": _certificate_rule,
}


def register_rule(model_name, rule):
    """For models added by later capabilities: one rule per model, kept here."""
    _RULES[model_name] = rule


def scope_clause(model, scope=None):
    """SQL condition restricting `model` to `scope` (the current user's by default).
    A model without a rule is visible to admins only: deny by default."""
    scope = current_scope() if scope is None else scope
    if scope.everything:
        return true()
    rule = _RULES.get(model.__name__)
    if rule is None or scope.empty:
        return false()
    parts = rule(scope)
    return or_(*parts) if parts else false()


def scoped(query, model, scope=None):
    """Restrict a Query or Select on `model` to the scope."""
    clause = scope_clause(model, scope)
    if hasattr(query, "filter"):
        return query.filter(clause)
    return query.where(clause)


def _pk_column(model):
    # Most models have an integer `id`; Region's key is its code.
    return sa_inspect(model).primary_key[0]


def get_scoped(model, pk, scope=None):
    """The row with primary key `pk` if the scope covers it, else None."""
    column = _pk_column(model)
    try:
        pk = column.type.python_type(pk)
    except (TypeError, ValueError):
        return None
    return db.session.execute(
        select(model).where(column == pk, scope_clause(model, scope))
    ).scalar_one_or_none()


def filter_ids_in_scope(model, ids, scope=None):
    """The subset of `ids` the scope covers, as a set of ints."""
    clean = set()
    for i in ids:
        try:
            clean.add(int(i))
        except (TypeError, ValueError):
            continue
    if not clean:
        return set()
    rows = db.session.execute(
        select(model.id).where(model.id.in_(clean), scope_clause(model, scope))
    ).scalars()
    return set(rows)


class ScopeFilter(BaseFilter):
    """FAB base filter applying the scope rule of the view's model:
    `base_filters = [["id", ScopeFilter, None]]`."""

    name = "row scope"
    arg_name = None

    def apply(self, query, value):
        return query.filter(scope_clause(self.model))
