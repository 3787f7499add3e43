"""学时认定标准 console (系统 → 学时认定标准): the year's requirement and its
catalogue of learning forms, edited by the province's administrators.  Thin:
services.standards / services.requirement hold the rules, the audit and the checks.

Who may edit: the permission names below ("index", "edit") on StandardsView;
Admin holds every permission.  To grant another role (e.g. a SysAdmin role),
add security.roles.STANDARDS_PERMISSIONS to that role's list."""
import datetime
import json
from decimal import Decimal

from flask import flash, g, redirect, request, url_for
from flask_appbuilder import BaseView, expose
from flask_appbuilder.security.decorators import has_access, permission_name
from flask_babel import gettext as _

from app.extensions import db
from app.models import LearningForm
from app.models.person import TITLE_LEVELS
from app.services import requirement, rules, standards
from app.services.errors import DomainError


def _examples(rule):
    """Preview lines of a rule: each add-on of a fixed rule, a typical quantity otherwise."""
    if rule.kind == "FIXED":
        cases = [rules.Inputs()] + [rules.Inputs(addons=(str(a.get("code")),)) for a in rule.addons()]
    elif rule.kind == "PER_DAY":
        cases = [rules.Inputs(days="1"), rules.Inputs(days="3")]
    elif rule.kind == "MULTIPLE":
        cases = [rules.Inputs(hours="2")]
    elif rule.kind == "TABLE":
        cases = [rules.Inputs(level=lv, rank=r) for lv, row in rule.table().items() for r in list(row or {})[:1]]
    else:
        cases = [rules.Inputs(hours="8")]
    out = []
    for inp in cases:
        line = rules.preview(rule, inp)
        if rule.kind == "PER_DAY":
            line = _("%(rule)s（%(d)s天）", rule=rule.name, d=inp.days) + line[len(rule.name):]
        elif rule.kind == "MULTIPLE":
            line = _("%(rule)s（%(h)s学时）", rule=rule.name, h=inp.hours) + line[len(rule.name):]
        elif rule.kind == "TABLE":
            line = "%s（%s · %s）" % (rule.name, inp.level, inp.rank) + line[len(rule.name):]
        out.append(line)
    return out


def _json_object(text):
    """Raw JSON params posted (scripts and older clients): a JSON object, else False."""
    if text is None:
        return False
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


class StandardsView(BaseView):
    route_base = "/standards"
    default_view = "index"

    def _year(self):
        return request.values.get("year", type=int) or datetime.date.today().year

    def _render_index(self, year):
        rows = standards.rows_of(year)
        own = standards.catalogue_year(year) == year
        return self.render_template(
            "standards/index.html", title=_("学时认定标准"), year=year, own=own,
            source_year=standards.catalogue_year(year), years=standards.years(),
            rules=[(r, standards.to_rule(r)) for r in rows], describe=rules.describe, examples=_examples,
            kind_label=rules.kind_label, category_label=rules.category_label,
            req=requirement.requirement_for(year), fmt=rules.fmt, title_levels=TITLE_LEVELS,
            level_reqs=requirement.level_requirements(year),
        )

    @expose("/")
    @has_access
    @permission_name("index")
    def index(self):
        return self._render_index(self._year())

    def _form_values(self, row):
        if row is None:
            return {"categories": "PRO,PUB", "kind": "DECLARED", "active": True,
                    "national_form": LearningForm.OTHER, "sort": 0, **standards.param_fields({})}
        return {"code": row.code, "name": row.name, "categories": row.categories, "kind": row.kind,
                **standards.param_fields(standards.to_rule(row).params),
                "cap_record": "" if row.cap_record is None else rules.fmt(row.cap_record),
                "cap_year": "" if row.cap_year is None else rules.fmt(row.cap_year),
                "proof_text": row.proof_text or "", "active": row.active, "national_form": row.national_form,
                "sort": row.sort, "note": row.note or "", "version": row.version}

    def _render_edit(self, year, code, values, errors=None, preview=None, status=200):
        return self.render_template(
            "standards/edit.html", title=_("编辑学时认定标准"), year=year, code=code, values=values,
            errors=errors or {}, preview=preview, kinds=[(k, rules.kind_label(k)) for k in rules.KINDS],
            national_forms=list(LearningForm), pending=standards.pending_affected(year, code) if code else 0,
        ), status

    @expose("/edit/<int:year>/", methods=["GET", "POST"])
    @expose("/edit/<int:year>/<code>", methods=["GET", "POST"])
    @has_access
    @permission_name("edit")
    def edit(self, year, code=None):
        if standards.catalogue_year(year) != year and request.method == "GET":
            flash(_("%(year)s年度还没有自己的学时认定标准，请先从上一年度复制", year=year), "warning")
            return redirect(url_for("StandardsView.index", year=year))
        row = next((r for r in standards.rows_of(year) if r.code == code), None) if code else None
        if request.method == "GET":
            return self._render_edit(year, code, self._form_values(row))
        form = request.form
        values = {k: form.get(k, "") for k in ("code", "name", "cap_record", "cap_year", "proof_text",
                                                "kind", "note", "sort", "national_form")}
        values.update(standards.param_fields(json.loads(form["params"])) if _json_object(form.get("params"))
                      else standards.raw_param_fields(form))
        values["categories"] = ",".join(form.getlist("categories"))
        values["active"] = bool(form.get("active"))
        target = code or (form.get("code") or "").strip()
        try:
            parsed = standards.parse_fields(form)
            if code is None and standards.rule_for(year, target) is not None \
                    and standards.catalogue_year(year) == year:
                raise DomainError(_("代码“%(code)s”已存在", code=target))
            if form.get("op") == "preview":
                rule = rules.FormRule(code=target or "X", name=parsed["name"] or "?",
                                      categories=tuple(parsed["categories"].split(",")), kind=parsed["kind"],
                                      params=parsed["params"],
                                      cap_record=parsed["cap_record"], cap_year=parsed["cap_year"])
                problems = rules.validate(rule)
                lines = _examples(rule) if not problems else []
                return self._render_edit(year, code, values, dict(problems), lines)
            _row, pending = standards.save_rule(year, target, dict(parsed, _new=code is None), user=g.user)
            db.session.commit()
        except DomainError as exc:
            db.session.rollback()
            flash(str(exc), "danger")
            return self._render_edit(year, code, values, exc.details.get("errors") or {}, status=400)
        msg = _("已保存学时认定标准“%(name)s”（%(year)s年度）", name=parsed["name"], year=year)
        if pending:
            msg += _("；本年度有%(n)d条待核准申报使用该学习形式，它们按提交时的标准计算，核准时请复核", n=pending)
        flash(msg, "success")
        return redirect(url_for("StandardsView.index", year=year))

    @expose("/copy", methods=["POST"])
    @has_access
    @permission_name("edit")
    def copy(self):
        source = request.form.get("source", type=int)
        target = request.form.get("target", type=int)
        try:
            if not source or not target or not (2000 <= target <= 2100):
                raise DomainError(_("请选择要复制的年度"))
            n = standards.copy_year(source, target, user=g.user)
            db.session.commit()
            flash(_("已将%(src)s年度的%(n)d种学习形式复制到%(dst)s年度", src=source, n=n, dst=target), "success")
        except DomainError as exc:
            db.session.rollback()
            flash(str(exc), "danger")
        return redirect(url_for("StandardsView.index", year=target or self._year()))

    @expose("/requirement", methods=["POST"])
    @has_access
    @permission_name("edit")
    def set_requirement(self):
        year = request.form.get("year", type=int)
        level = request.form.get("level") or None
        try:
            ratio = request.form.get("ratio") or "0"
            if level is not None and not (request.form.get("total") or "").strip():
                changed = requirement.clear_level_requirement(year, level, user=g.user)
            else:
                changed = requirement.set_requirement(year, request.form.get("total"),
                                                      Decimal(ratio) if ratio.replace(".", "", 1).isdigit() else ratio,
                                                      request.form.get("public") or None, user=g.user, level=level)
            db.session.commit()
            if level is not None:
                flash(_("已保存%(year)s年度%(level)s职称的学时要求，%(n)d人次的达标情况随之变化",
                        year=year, level=level, n=changed), "success")
            else:
                flash(_("已保存%(year)s年度学时要求，%(n)d人次的达标情况随之变化", year=year, n=changed), "success")
        except DomainError as exc:
            db.session.rollback()
            flash(str(exc), "danger")
        return redirect(url_for("StandardsView.index", year=year))
