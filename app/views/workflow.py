"""个人申报 → 单位核准: the applicant's form and "my hours", the reviewer's to-do
grid and review page, proof downloads, year-end and departure review.

Thin views: every rule (status machine, scope, validation, totals) lives in
app.services.approval / declarations / attachments / reviews / requirement.
"""
import datetime
import json

from flask import abort, current_app, flash, g, redirect, request, send_file, url_for
from flask_appbuilder import BaseView, expose
from flask_appbuilder.actions import action
from flask_appbuilder.const import FLAMSG_ERR_SEC_ACCESS_DENIED
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.security.decorators import has_access, permission_name
from flask_appbuilder.urltools import get_filter_args
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, Category, HourRecord, LearningForm, Status
from app.security.scope import ScopeFilter, current_scope, get_scoped, scope_clause
from app.services import approval, attachments, declarations, requirement, reviews, rules, standards
from app.services.errors import DomainError, OutOfScope
from app.views.base import ScopedModelView
from app.fab.datamodel import CEInterface
from app.views.formatting import hours_text, id_number_for_list, translated
from app.fab.labels import HOUR_LABELS


def _year_choices():
    this = datetime.date.today().year
    return [this, this - 1]


def _flash_error(exc):
    flash(str(exc), "danger")


# ============================================================== applicant


def _rule_json(rule):
    """A rule as the declaration page's script reads it (display only: the server recomputes)."""
    return {"code": rule.code, "name": rule.name, "kind": rule.kind, "categories": list(rule.categories),
            "params": rule.params, "cap_record": None if rule.cap_record is None else float(rule.cap_record),
            "cap_year": None if rule.cap_year is None else float(rule.cap_year),
            "proof": rule.proof_text, "text": rules.describe(rule)}


class DeclarationView(BaseView):
    """The applicant's one-page declaration form and the "my hours" page."""

    route_base = "/declare"
    default_view = "mine"

    def _form_context(self, person, values=None, errors=None, record=None):
        years = _year_choices()
        if record is not None and record.year not in years:
            years.append(record.year)
        totals = {y: requirement.year_totals(person.id, y) for y in years}
        values = values or {}
        year = values.get("year") if values.get("year") in years else years[0]
        catalogues = {y: standards.catalogue(y) for y in years}
        forms = catalogues.get(year, [])
        current = next((f for f in forms if f.code == values.get("form_code")), None)
        return dict(
            person=person, record=record, values=values, errors=errors or {},
            years=years, totals=totals, categories=list(Category), forms=forms, current_rule=current,
            describe=rules.describe, fmt_hours=rules.fmt,
            rules_json=json.dumps({str(y): [_rule_json(f) for f in fs] for y, fs in catalogues.items()},
                                  ensure_ascii=False),
            max_hours=current_app.config["MAX_HOURS_PER_RECORD"],
            max_size_mb=attachments.MAX_SIZE // (1024 * 1024),
            today=datetime.date.today().isoformat(),
        )

    def _values_of(self, record):
        inputs = standards.inputs_of(record)
        return {
            "year": record.year, "category": record.category, "learning_form": record.learning_form,
            "form_code": standards.form_code_of(record),
            "course_name": record.course_name, "organizer_name": record.organizer_name or "",
            "start_date": record.start_date, "end_date": record.end_date,
            "hours": inputs.hours if inputs.hours is not None else hours_text(record.hours),
            "inputs": inputs,
        }

    def _attach_uploads(self, record_id):
        """Attach the uploaded files (not committed yet); report each refused one.
        Returns False on errors."""
        ok = True
        for fs in request.files.getlist("proof"):
            if not fs or not fs.filename:
                continue
            try:
                attachments.add(record_id, fs, g.user, commit=False)
            except DomainError as exc:
                ok = False
                _flash_error(exc)
        return ok

    def _after_save(self, record_id, year, submit_now):
        """The saved declaration's proofs, then (op "submit") its submission: one
        transaction when all goes well (the submission commits the draft, its
        proofs and its new status together).  A refused proof or submission keeps
        the typed draft and the accepted proofs (committed here) on the edit page."""
        if self._attach_uploads(record_id) and submit_now:
            try:
                declarations.submit(record_id, g.user)
                flash(_("申报已提交，等待单位核准"), "success")
                return redirect(url_for("DeclarationView.mine", year=year))
            except DomainError as exc:
                _flash_error(exc)
        db.session.commit()
        if not submit_now:
            flash(_("已保存草稿"), "success")
        return redirect(url_for("DeclarationView.edit", record_id=record_id))

    @expose("/new", methods=["GET", "POST"])
    @has_access
    @permission_name("declare")
    def new(self):
        try:
            person = declarations.person_of(g.user)
        except DomainError as exc:
            _flash_error(exc)
            return redirect(url_for("DeclarationView.mine"))
        if request.method == "POST":
            try:
                record = declarations.create_draft(g.user, request.form, commit=False)
            except DomainError as exc:
                errors = exc.details.get("errors") or {"form": str(exc)}
                flash(str(exc), "danger")
                values, _ignored = declarations.parse(request.form)
                return self.render_template(
                    "workflow/declare.html", title=_("学时申报"),
                    **self._form_context(person, values, errors)
                ), 400
            return self._after_save(record.id, record.year, request.form.get("op") == "submit")
        year = request.args.get("year", type=int) or datetime.date.today().year
        return self.render_template(
            "workflow/declare.html", title=_("学时申报"),
            **self._form_context(person, {"year": year})
        )

    @expose("/edit/<int:record_id>", methods=["GET", "POST"])
    @has_access
    @permission_name("declare")
    def edit(self, record_id):
        try:
            record = declarations.get_own(record_id)
        except DomainError as exc:
            _flash_error(exc)
            return redirect(url_for("DeclarationView.mine"))
        if request.method == "POST":
            try:
                record = declarations.update_draft(record_id, g.user, request.form)
            except DomainError as exc:
                errors = exc.details.get("errors") or {"form": str(exc)}
                flash(str(exc), "danger")
                values, _ignored = declarations.parse(request.form)
                return self.render_template(
                    "workflow/declare.html", title=_("修改申报"),
                    **self._form_context(record.person, values, errors, record)
                ), 400
            return self._after_save(record.id, record.year, request.form.get("op") == "submit")
        return self.render_template(
            "workflow/declare.html", title=_("修改申报"),
            **self._form_context(record.person, self._values_of(record), None, record)
        )

    @expose("/submit/<int:record_id>", methods=["POST"])
    @has_access
    @permission_name("declare")
    def submit(self, record_id):
        try:
            declarations.submit(record_id, g.user)
            flash(_("申报已提交，等待单位核准"), "success")
        except DomainError as exc:
            _flash_error(exc)
        return redirect(request.referrer or url_for("DeclarationView.mine"))

    @expose("/withdraw/<int:record_id>", methods=["POST"])
    @has_access
    @permission_name("declare")
    def withdraw(self, record_id):
        try:
            declarations.withdraw(record_id, g.user)
            flash(_("申报已撤回，可修改后重新提交"), "success")
        except DomainError as exc:
            _flash_error(exc)
        return redirect(request.referrer or url_for("DeclarationView.mine"))

    @expose("/detach/<int:attachment_id>", methods=["POST"])
    @has_access
    @permission_name("declare")
    def detach(self, attachment_id):
        try:
            record_id = attachments.remove(attachment_id, g.user)
            flash(_("已删除证明材料"), "success")
            return redirect(url_for("DeclarationView.edit", record_id=record_id))
        except DomainError as exc:
            _flash_error(exc)
            return redirect(url_for("DeclarationView.mine"))

    @expose("/mine")
    @has_access
    @permission_name("mine")
    def mine(self):
        try:
            person = declarations.person_of(g.user)
        except DomainError as exc:
            _flash_error(exc)
            return redirect("/")
        years = declarations.years_of(person.id)
        year = request.args.get("year", type=int) or years[0]
        records = declarations.my_records(person.id, year)
        names = standards.form_names(records)
        return self.render_template(
            "workflow/mine.html", title=_("我的学时"), person=person, years=years, year=year,
            totals=requirement.year_totals(person.id, year), records=records,
            editable=approval.EDITABLE, Status=Status, form_name=lambda r: names.get(r.id, ""),
        )


# ============================================================== proofs


class ProofView(BaseView):
    """Proof downloads: only through the row scope of the attachment's record."""

    route_base = "/proof"
    default_view = "download"

    @expose("/<int:attachment_id>")
    @has_access
    @permission_name("download")
    def download(self, attachment_id):
        try:
            att, path = attachments.open_scoped(attachment_id)
        except OutOfScope:
            abort(404)
        if request.args.get("preview") == "1":
            png = attachments.preview_path(att, path)
            if png is None:
                abort(404)
            resp = send_file(png, mimetype="image/png" if png != path else att.content_type, max_age=0)
            resp.headers["X-Content-Type-Options"] = "nosniff"
            resp.headers["Cache-Control"] = "private, no-store"
            return resp
        inline = request.args.get("inline") == "1" and att.content_type in attachments.INLINE_TYPES
        resp = send_file(path, mimetype=att.content_type, as_attachment=not inline,
                         download_name=att.filename, max_age=0)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Cache-Control"] = "private, no-store"
        return resp


# ============================================================== reviewer


class PendingFilter(BaseFilter):
    """待核准 only: the to-do grid's status filter."""

    name = _l("待核准")
    arg_name = None

    def apply(self, query, value):
        return query.filter(HourRecord.status == Status.SUBMITTED)


def approved_same_year(record_id):
    """Formatter of the to-do grid: the person's approved hours in the record's year
    (read for the whole page at once by ReviewTodoView._get_list_widget)."""
    totals = g.get("_ce_approved_totals") or {}
    if record_id not in totals:
        totals = declarations.approved_in_year_of_many([record_id])
    return hours_text(totals[record_id])


class ReviewTodoView(ScopedModelView):
    """待核准申报: the reviewer's to-do grid, with bulk approval."""

    route_base = "/review/todo"
    datamodel = CEInterface(HourRecord)
    base_permissions = ["can_list", "can_show"]  # + "approve", the action's name
    base_filters = [["status", PendingFilter, None]]
    list_template = "workflow/todo_list.html"
    list_title = _l("待核准申报")
    list_columns = [
        "person.name", "person.id_number", "year", "category", "learning_form", "course_name",
        "hours", "start_date", "end_date", "submitted_at", "id",
    ]
    search_columns = ["year", "category", "learning_form", "course_name", "person", "submitted_at"]
    search_form_query_rel_fields = {"person": [["id", ScopeFilter, None]]}
    order_columns = ["year", "hours", "start_date", "submitted_at", "course_name"]
    base_order = ("id", "asc")
    label_columns = dict(HOUR_LABELS, id=_l("本年已核准学时"))
    formatters_columns = {
        "person.id_number": id_number_for_list,
        "category": translated,
        "learning_form": translated,
        "hours": hours_text,
        "id": approved_same_year,
    }

    def _get_list_widget(self, filters, **kwargs):
        widgets = super()._get_list_widget(filters, **kwargs)
        # The 本年已核准学时 column of the whole page in one query, not one a row.
        pks = widgets["list"].template_args["pks"]
        g._ce_approved_totals = declarations.approved_in_year_of_many([int(pk) for pk in pks])
        return widgets

    def _filtered_ids(self):
        """Query of the ids the grid shows under the request's filters (scope and
        "pending" included, as base filters)."""
        get_filter_args(self._filters)
        joined = self._filters.get_joined_filters(self._base_filters)
        return joined.apply_all(db.session.query(HourRecord.id))

    @expose("/list/")
    @has_access
    def list(self):
        widgets = self._list()
        # Exact (the grid's own count may be capped): the confirmation states it and
        # approve_filtered checks it.
        count = approval.pending_count(self._filtered_ids())
        return self.render_template(
            self.list_template, title=self.list_title, widgets=widgets, filtered_count=count,
            filter_qs=request.query_string.decode("utf-8", "replace"),
        )

    @expose("/show/<pk>")
    @has_access
    def show(self, pk):
        # The eye icon of the grid opens the review page.
        return redirect(url_for("ReviewView.show", record_id=pk))

    @action("approve", _l("批量核准"), _l("确定核准所选的申报吗？"), "fa-check", single=False)
    def approve_selected(self, items):
        items = items if isinstance(items, list) else [items]
        try:
            result = approval.approve_records([i.id for i in items], user=g.user)
            flash(result.message(), "success" if result.done else "warning")
        except DomainError as exc:
            _flash_error(exc)
        # Back to the grid as it was (FAB's history holds its URL, filters and all;
        # this POST is pushed first so that going back lands on the grid, not before it).
        self.update_redirect()
        return redirect(self.get_redirect())

    @expose("/approve_filtered", methods=["POST"])
    def approve_filtered(self):
        """Approve every row of the grid's current filter (the filter arguments come
        in the query string, exactly as on the list page).  Same permission as the
        bulk action: the action name "approve"."""
        if not self.appbuilder.sm.has_access("approve", self.class_permission_name):
            flash(str(FLAMSG_ERR_SEC_ACCESS_DENIED), "danger")
            return redirect(url_for("HomeView.index"))
        try:
            result = approval.approve_filtered(self._filtered_ids(), request.form.get("confirmed_count"), user=g.user)
            flash(result.message(), "success" if result.done else "warning")
        except DomainError as exc:
            _flash_error(exc)
        qs = request.query_string.decode("utf-8", "replace")
        return redirect(url_for("ReviewTodoView.list") + ("?" + qs if qs else ""))


class ApprovedFilter(BaseFilter):
    """已核准 only: the records a revocation (撤销认定) starts from."""

    name = _l("已核准")
    arg_name = None

    def apply(self, query, value):
        return query.filter(HourRecord.status == Status.APPROVED)


class ApprovedHoursView(ScopedModelView):
    """撤销认定 (SPEC §3 flow 8): approved records of the scope; each row opens the
    review page, where bureau staff or the approving unit revoke with a reason."""

    route_base = "/review/approved"
    datamodel = CEInterface(HourRecord)
    base_permissions = ["can_list", "can_show"]
    base_filters = [["status", ApprovedFilter, None]]
    list_title = _l("已核准学时（撤销认定）")
    list_columns = [
        "person.name", "person.id_number", "year", "category", "course_name", "hours",
        "source", "unit.name", "reviewed_at",
    ]
    search_columns = ["year", "category", "source", "course_name", "person", "region_code"]
    order_columns = ["year", "hours", "course_name"]
    base_order = ("id", "desc")
    label_columns = HOUR_LABELS
    formatters_columns = {
        "person.id_number": id_number_for_list,
        "category": translated,
        "source": translated,
        "hours": hours_text,
    }

    @expose("/show/<pk>")
    @has_access
    def show(self, pk):
        return redirect(url_for("ReviewView.show", record_id=pk))


def _differs(text, record):
    """The reviewer's hours differ from the record's (junk differs: the service says why)."""
    from decimal import Decimal, InvalidOperation

    if record is None:
        return False
    try:
        return Decimal(text) != Decimal(record.hours)
    except (InvalidOperation, ValueError):
        return True


class ReviewView(BaseView):
    """The review page of one declaration: approve / return; revoke after approval."""

    route_base = "/review"
    default_view = "show"

    def _history(self, record):
        return db.session.execute(
            select(AuditLog)
            .where(AuditLog.object_type == "HourRecord", AuditLog.object_id == str(record.id),
                   scope_clause(AuditLog))
            .order_by(AuditLog.id)
        ).scalars().all()

    @expose("/<int:record_id>")
    @has_access
    @permission_name("show")
    def show(self, record_id):
        record = get_scoped(HourRecord, record_id)
        if record is None:
            abort(404)
        scope = current_scope()
        may_decide = (
            self.appbuilder.sm.has_access("can_decide", "ReviewView")
            and get_scoped(HourRecord, record_id, approval.reviewer_scope(scope)) is not None
        )
        may_revoke = (
            self.appbuilder.sm.has_access("can_revoke", "ReviewView")
            and get_scoped(HourRecord, record_id, approval.revoker_scope(scope)) is not None
        )
        return self.render_template(
            "workflow/review.html", title=_("申报审核"), record=record,
            earlier=requirement.totals_by_year(record.person_id),
            history=self._history(record), may_decide=may_decide, may_revoke=may_revoke,
            Status=Status, id_number=id_number_for_list(record.person.id_number),
            action_label=approval.audit_action_label,
            rule=standards.rule_of_record(record), describe=rules.describe, fmt_hours=rules.fmt,
            inputs=standards.inputs_of(record),
        )

    @expose("/<int:record_id>/decide", methods=["POST"])
    @has_access
    @permission_name("decide")
    def decide(self, record_id):
        op = request.form.get("op")
        if op not in ("approve", "return"):
            abort(400)
        try:
            lowered = (request.form.get("hours") or "").strip()
            if op == "approve" and lowered and _differs(lowered, get_scoped(HourRecord, record_id)):
                approval.approve_lowered(record_id, lowered, request.form.get("comment"), user=g.user)
            else:
                approval.decide_one(record_id, op, user=g.user, comment=request.form.get("comment"))
            flash(_("已核准") if op == "approve" else _("已退回申报人"), "success")
            return redirect(url_for("ReviewTodoView.list"))
        except OutOfScope:
            abort(404)
        except DomainError as exc:
            _flash_error(exc)
        return redirect(url_for("ReviewView.show", record_id=record_id))

    @expose("/<int:record_id>/revoke", methods=["POST"])
    @has_access
    @permission_name("revoke")
    def revoke(self, record_id):
        try:
            approval.decide_one(record_id, "revoke", user=g.user, comment=request.form.get("comment"))
            flash(_("已撤销认定"), "success")
        except OutOfScope:
            abort(404)
        except DomainError as exc:
            _flash_error(exc)
        return redirect(url_for("ReviewView.show", record_id=record_id))


# ============================================================== unit reviews


class UnitReviewView(BaseView):
    """年度审核 (per person and year) and 离职审核 (before a person leaves)."""

    route_base = "/unitreview"
    default_view = "yearend"

    @expose("/yearend", methods=["GET", "POST"])
    @has_access
    @permission_name("yearend")
    def yearend(self):
        try:
            unit = reviews.unit_for_review(request.values.get("unit_id", type=int), g.user)
        except DomainError as exc:
            _flash_error(exc)
            return redirect("/")
        this = datetime.date.today().year
        year = request.values.get("year", type=int) or this
        if request.method == "POST":
            try:
                done, skipped = reviews.review_year(
                    unit, year, request.form.getlist("person_id"), g.user, request.form.get("comment")
                )
                if done:
                    flash(_("已完成 %(n)d 人的年度审核", n=done), "success")
                if skipped:
                    flash(_("%(n)d 人不在本单位或不在您的权限范围内，未审核", n=skipped), "warning")
                if not done and not skipped:
                    flash(_("请选择要审核的人员"), "warning")
            except DomainError as exc:
                _flash_error(exc)
            return redirect(url_for("UnitReviewView.yearend", year=year, unit_id=unit.id))
        rows = reviews.year_rows(unit, year)
        return self.render_template(
            "workflow/year_end.html", title=_("年度审核"), unit=unit, year=year, rows=rows,
            years=list(range(this, this - 5, -1)), met_count=sum(1 for r in rows if r.totals.met),
        )

    @expose("/departure/<int:person_id>", methods=["GET", "POST"])
    @has_access
    @permission_name("departure")
    def departure(self, person_id):
        try:
            person = reviews.person_for_review(person_id)
        except OutOfScope:
            abort(404)
        if request.method == "POST":
            try:
                reviews.depart(person_id, request.form.get("credit_code"), g.user, request.form.get("comment"))
                flash(_("离职审核已完成，%(name)s 已转出", name=person.name), "success")
                return redirect(url_for("UnitReviewView.yearend"))
            except OutOfScope:
                abort(404)
            except DomainError as exc:
                _flash_error(exc)
        this = datetime.date.today().year
        return self.render_template(
            "workflow/departure.html", title=_("离职审核"), person=person,
            totals=requirement.year_totals(person.id, this), pending=reviews.pending_count(person.id),
            id_number=id_number_for_list(person.id_number),
        )
