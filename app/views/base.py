"""ScopedModelView: FAB's ModelView with the row scope on every route.

FAB applies `base_filters` to list/show/edit/delete but not to `action` and
`action_post`, which load rows by id.  Here every route, including actions,
loads rows through the scope, and adds/edits are checked to stay in scope.
"""
import enum

from flask import flash, g, has_request_context, redirect, request
from flask_appbuilder import ModelView, expose, has_access, permission_name
from flask_appbuilder.const import FLAMSG_ERR_SEC_ACCESS_DENIED
from flask_appbuilder.fields import QuerySelectField
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import func, literal_column, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.security.scope import ScopeFilter, get_scoped, scope_clause
from app.services import audit
from app.services.errors import DomainError, ValidationFailed
from app.fab.datamodel import LOOKUP_COLUMNS
from app.views.fields import RelatedLookupField, label_blank_choices
from app.views.formatting import display
from app.views.grid import FastListMixin


# What a referencing table is called on screen (see rows_referencing).
TABLE_LABELS = {
    "hour_record": _l("学时记录"), "person": _l("人员"), "unit": _l("单位"), "region": _l("下级区划"),
    "ab_user": _l("用户账号"), "person_unit_history": _l("单位变动记录"), "attachment": _l("证明材料"),
    "person_review": _l("审核记录"), "import_batch": _l("导入批次"),
}


def rows_referencing(item):
    """Labels of the tables whose rows still point at `item` through a foreign key,
    leaving out relations the ORM deletes along with it (cascade)."""
    mapper = sa_inspect(type(item))
    cascaded = {rel.mapper.local_table.name for rel in mapper.relationships if rel.cascade.delete}
    table = mapper.local_table
    found = []
    for other in db.metadata.sorted_tables:
        if other.name in cascaded:
            continue
        for fk in other.foreign_keys:
            if fk.column.table is not table:
                continue
            value = getattr(item, mapper.get_property_by_column(fk.column).key)
            hit = db.session.execute(select(fk.parent).where(fk.parent == value).limit(1)).first()
            if hit is not None:
                label = str(TABLE_LABELS.get(other.name, other.name))
                if label not in found:
                    found.append(label)
    return found


# A relation of an add / edit form with more rows in the user's scope than this
# is typed rather than picked from a drop-down (ScopedModelView.lookup_over).
LOOKUP_OVER = 500


class _FreshLists(dict):
    """FAB appends its own validators (Length, InputRequired, Unique) to the list it
    gets from `validators_columns`, in place: hand it a copy, or they pile up with
    every form built (a duplicate credit code said "已经存在" four times)."""

    def get(self, key, default=None):
        value = super().get(key, default)
        return list(value) if value is not None else []


class ScopedModelView(FastListMixin, ModelView):
    page_size = 25
    # Fields written to the audit log on add / edit / delete.
    audit_fields = ()

    def __init__(self, **kwargs):
        base = list(self.base_filters or [])
        if not any(f[1] is ScopeFilter for f in base):
            base.insert(0, ["id", ScopeFilter, None])
        self.base_filters = base
        self.validators_columns = _FreshLists(self.validators_columns or {})
        # Every grid exports (issue 4), also those that narrow their permissions.
        if self.base_permissions is not None and "can_export" not in self.base_permissions:
            self.base_permissions = list(self.base_permissions) + ["can_export"]
        super().__init__(**kwargs)
        # Columns without a formatter of their own: no "None" / "True" / "False" on screen.
        shown = [c for c in list(self.list_columns) + list(self.show_columns) if c not in self.formatters_columns]
        self.formatters_columns = dict(dict.fromkeys(shown, display), **self.formatters_columns)
        # The list page's export button (issue 4) needs the view's name.
        self.extra_args = dict(self.extra_args or {}, ce_export_view=self.__class__.__name__)
        if self.list_template == ModelView.list_template:
            self.list_template = "imports/grid_list.html"

    # ---- export: exactly the rows on screen, in the scope (issue 4) ------

    @expose("/export/")
    @has_access
    @permission_name("export")
    def export(self):
        from app.views.imports import export_grid

        return export_grid(self)

    # ---- add / edit forms: large relations typed, not picked ----------------
    #
    # FAB's form offers a many-to-one relation as a drop-down of every related
    # row the user may pick: a million persons for an administrator at province
    # scale (40 s to open the form).  When more than `lookup_over` rows would be
    # listed, this request's form takes the relation typed instead (ID number,
    # credit code, name or id; fields.RelatedLookupField), looked up among the
    # same rows the drop-down would list.  A unit's few persons stay a drop-down.
    lookup_over = LOOKUP_OVER

    @property
    def add_form(self):
        return self._form_for_request(self.__dict__.get("_ce_add_form"), self.add_form_query_rel_fields)

    @add_form.setter
    def add_form(self, form):
        self.__dict__["_ce_add_form"] = form

    @property
    def edit_form(self):
        return self._form_for_request(self.__dict__.get("_ce_edit_form"), self.edit_form_query_rel_fields)

    @edit_form.setter
    def edit_form(self, form):
        self.__dict__["_ce_edit_form"] = form

    def _form_for_request(self, form, rel_fields):
        if form is None or not has_request_context():
            return form
        typed = tuple(name for name in self._lookup_relations(form)
                      if self._many_related(name, (rel_fields or {}).get(name)))
        if not typed:
            return form
        cache = self.__dict__.setdefault("_ce_typed_forms", {})
        variant = cache.get((form, typed))
        if variant is None:
            fields = {}
            for name in typed:
                unbound = getattr(form, name)
                fields[name] = RelatedLookupField(
                    unbound.kwargs.get("label", unbound.args[0] if unbound.args else None),
                    model=self.datamodel.get_related_model(name),
                    candidates=self._related_candidates(name, (rel_fields or {}).get(name)),
                    validators=list(unbound.kwargs.get("validators") or []),
                    description=unbound.kwargs.get("description", ""),
                )
            variant = cache[(form, typed)] = type(form.__name__, (form,), fields)
        return variant

    def _lookup_relations(self, form):
        """The form's drop-down relations to a model that can be typed."""
        names = []
        for name in dir(form):
            unbound = getattr(form, name, None)
            if getattr(unbound, "field_class", None) is QuerySelectField and self.datamodel.is_relation(name):
                if self.datamodel.get_related_model(name).__name__ in LOOKUP_COLUMNS:
                    names.append(name)
        return names

    def _related_candidates(self, name, rel_filters):
        """A callable giving the Select of the rows the relation's drop-down lists:
        the related model's rows in scope, narrowed by the view's query_rel_fields."""
        datamodel = self.datamodel.get_related_interface(name)
        model = datamodel.obj

        def candidates():
            filters = datamodel.get_filters()
            if rel_filters:
                filters = filters.add_filter_list(rel_filters)
            return filters.apply_all(select(model).where(scope_clause(model)))

        return candidates

    def _many_related(self, name, rel_filters):
        """More than `lookup_over` rows in the relation's drop-down (once a request)."""
        seen = g.setdefault("_ce_many_related", {})
        key = (self.__class__.__name__, name, repr(rel_filters))
        if key not in seen:
            rows = self._related_candidates(name, rel_filters)().with_only_columns(
                literal_column("1"), maintain_column_froms=True)
            capped = select(func.count()).select_from(rows.limit(self.lookup_over + 1).subquery())
            seen[key] = db.session.execute(capped).scalar() > self.lookup_over
        return seen[key]

    def _init_forms(self):
        super()._init_forms()
        label_blank_choices(self.add_form, self.edit_form, self.search_form)

    # ---- actions: the hole stock FAB leaves open -------------------------

    @expose("/action/<string:name>/<pk>", methods=["GET", "POST"])
    def action(self, name, pk):
        if not self.is_get_mutation_allowed():
            flash(_("请求无效，请刷新页面后重试"), "danger")
            return redirect(self.get_redirect())
        action = self.actions.get(name)
        permission_name = self.get_action_permission_name(name) if action else None
        if not action or not self.appbuilder.sm.has_access(permission_name, self.class_permission_name):
            flash(str(FLAMSG_ERR_SEC_ACCESS_DENIED), "danger")
            return redirect(self.get_redirect())
        item = get_scoped(self.datamodel.obj, pk)
        if item is None:
            flash(_("记录不存在或不在您的权限范围内"), "danger")
            return redirect(self.get_redirect())
        g.ce_ignored_ids = []
        return action.func(item)

    @expose("/action_post", methods=["POST"])
    def action_post(self):
        name = request.form.get("action", "")
        action = self.actions.get(name)
        permission_name = self.get_action_permission_name(name) if action else None
        if not action or not self.appbuilder.sm.has_access(permission_name, self.class_permission_name):
            flash(str(FLAMSG_ERR_SEC_ACCESS_DENIED), "danger")
            return redirect(self.get_redirect())
        pks = request.form.getlist("rowid")
        items = self.scoped_items(pks)
        found = {str(self.datamodel.get_pk_value(i)) for i in items}
        g.ce_ignored_ids = [pk for pk in pks if pk not in found]
        if g.ce_ignored_ids:
            flash(
                _("%(n)d 条记录不存在或不在您的权限范围内，已忽略", n=len(g.ce_ignored_ids)),
                "warning",
            )
        return action.func(items)

    def scoped_items(self, pks):
        from app.security.scope import scope_clause

        model = self.datamodel.obj
        column = sa_inspect(model).primary_key[0]
        ids = []
        for pk in pks:
            try:
                ids.append(column.type.python_type(pk))
            except (TypeError, ValueError):
                continue
        if not ids:
            return []
        return db.session.query(model).filter(column.in_(ids), scope_clause(model)).all()

    # ---- add / edit stay inside the scope, and are audited -----------------

    def _check_in_scope(self, item):
        db.session.add(item)
        keys = unique_key_values(item)  # before the flush: a failed one leaves nothing to read
        try:
            db.session.flush()
        except IntegrityError:
            # A unique key (credit code, ID number, the hour-record key) already holds
            # this row: a message naming it, not the database's error text.
            db.session.rollback()
            clash = clashing_key(type(item), keys)
            if clash is None:
                raise ValidationFailed(_("保存失败：已存在相同的记录"))
            labels = "、".join(str(self.label_columns.get(name, name)) for name, _value in clash)
            values = "、".join(_(value.value) if isinstance(value, enum.Enum) else str(display(value))
                              for _name, value in clash)
            raise ValidationFailed(_("保存失败：%(fields)s为「%(values)s」的记录已存在", fields=labels, values=values))
        if get_scoped(type(item), self.datamodel.get_pk_value(item)) is None:
            db.session.rollback()
            raise DomainError(_("保存失败：该记录将超出您的权限范围"))

    def _history(self, item):
        state = sa_inspect(item)
        # A form sets relations (record.person), whose foreign key (person_id) only
        # changes at the flush: read those changes from the relation.
        relation_of = {}
        for rel in state.mapper.relationships:
            cols = list(rel.local_columns)
            if rel.direction.name == "MANYTOONE" and len(cols) == 1:
                relation_of[cols[0].key] = rel.key
        old, new = {}, {}
        for field in self.audit_fields:
            hist = state.attrs[field].history
            if hist.has_changes():
                old[field] = hist.deleted[0] if hist.deleted else None
                new[field] = hist.added[0] if hist.added else None
            elif field in relation_of and state.attrs[relation_of[field]].history.added:
                target = state.attrs[relation_of[field]].history.added[0]
                target_pk = None
                if target is not None:
                    target_pk = getattr(target, sa_inspect(type(target)).primary_key[0].key)
                if target_pk != getattr(item, field):
                    old[field], new[field] = getattr(item, field), target_pk
        return old, new

    # FAB flashes what pre_add / pre_update raise and redirects away from the
    # form: whatever the user typed was lost.  Refused here, the form comes back
    # with the message and the input.

    def _add(self):
        widget = super()._add()
        if widget is None and g.pop("_ce_refused", False):
            return self._get_add_widget(form=self.add_form.refresh(),
                                        exclude_cols=self._filters.get_relation_cols())
        return widget

    def _edit(self, pk):
        widget = super()._edit(pk)
        if widget is None and g.pop("_ce_refused", False):
            form = self.edit_form.refresh(request.form)
            form._id = pk
            return self._get_edit_widget(form=form, exclude_cols=self._filters.get_relation_cols())
        return widget

    def pre_add(self, item):
        try:
            with db.session.no_autoflush:
                self.validate_item(item)
            self._check_in_scope(item)
        except DomainError:
            db.session.rollback()
            g._ce_refused = True
            raise
        # Same transaction as the row: FAB's datamodel.add() commits both.
        audit.record(
            "create", type(item).__name__, self.datamodel.get_pk_value(item),
            new=audit.snapshot(item, self.audit_fields), **self.audit_scope(item)
        )

    def pre_update(self, item):
        try:
            # No autoflush while validating: a lazy load would flush the form's
            # changes and wipe the attribute history the audit entry is built from.
            with db.session.no_autoflush:
                self.validate_item(item)
                old, new = self._history(item)
            self._check_in_scope(item)
        except DomainError:
            # populate_obj already changed the attached row: drop those changes.
            db.session.rollback()
            g._ce_refused = True
            raise
        if new:
            audit.record("edit", type(item).__name__, self.datamodel.get_pk_value(item), old=old, new=new, **self.audit_scope(item))

    def pre_delete(self, item):
        blocking = rows_referencing(item)
        if blocking:
            # FAB would flash an empty DatabaseException (PostgreSQL) or, on SQLite,
            # which enforces no foreign keys by default, delete and leave orphans.
            raise DomainError(_("不能删除：仍有%(what)s引用该记录", what="、".join(blocking)))
        audit.record(
            "delete", type(item).__name__, self.datamodel.get_pk_value(item),
            old=audit.snapshot(item, self.audit_fields), **self.audit_scope(item)
        )

    def validate_item(self, item):
        """Business validation of a filled item; raise DomainError."""

    def audit_scope(self, item):
        """unit_id / region_code of an audit entry about `item`."""
        return {}


def unique_key_values(item):
    """What `item` would store under each unique key of its table (not the
    primary key): [(its primary key values, [(attribute, value, column, shown),
    ...]), ...].  A foreign key set through its relation (record.person) is read
    from the related row, as the flush would, and is named and shown as that
    relation (its attribute and the related row's text)."""
    mapper = sa_inspect(type(item))
    table = mapper.local_table
    relation_of = {}
    for rel in mapper.relationships:
        cols = list(rel.local_columns)
        if rel.direction.name == "MANYTOONE" and len(cols) == 1:
            relation_of[cols[0]] = rel
    keys = [list(c.columns) for c in table.constraints if c.__class__.__name__ == "UniqueConstraint"]
    keys += [list(i.columns) for i in table.indexes if i.unique and len(i.columns)]
    keys += [[c] for c in table.columns if c.unique]
    pk = [getattr(item, mapper.get_property_by_column(c).key) for c in mapper.primary_key]
    loaded = sa_inspect(item).dict  # (a relation not loaded stays so: no lazy load, no autoflush)
    out = []
    for columns in keys:
        entries = []
        for column in columns:
            name = mapper.get_property_by_column(column).key
            value = shown = getattr(item, name)
            rel = relation_of.get(column)
            target = loaded.get(rel.key) if rel is not None else None
            if target is not None:
                name, shown = rel.key, target
                if value is None:
                    value = getattr(target, sa_inspect(type(target)).primary_key[0].key)
            entries.append((name, value, column, shown))
        out.append((pk, entries))
    return out


def clashing_key(model, keys):
    """The first unique key (of `unique_key_values`) whose values another row
    already holds, as [(attribute, shown value), ...], or None."""
    pk_columns = list(sa_inspect(model).primary_key)
    for pk, entries in keys:
        if any(value is None for _name, value, _column, _shown in entries):
            continue
        query = select(pk_columns[0]).where(*[column == value for _name, value, column, _shown in entries])
        if all(v is not None for v in pk):
            query = query.where(*[c != v for c, v in zip(pk_columns, pk)])
        if db.session.execute(query.limit(1)).first() is not None:
            return [(name, shown) for name, _value, _column, shown in entries]
    return None
