"""Certificate printing (signed in), the registry of issued certificates, and the
PUBLIC verification page (no login, rate-limited).

Thin: rules live in app.services.certificates; every person and certificate is
loaded through app.security.scope.
"""
import datetime
import io
import os
import tempfile

from flask import abort, current_app, flash, make_response, redirect, render_template, request, send_file, url_for
from flask_appbuilder import BaseView, expose
from flask_appbuilder.security.decorators import has_access, permission_name
from flask_appbuilder.utils.limit import Limit
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_limiter.util import get_remote_address
from flask_login import current_user

from app.extensions import db
from app.models import Person
from app.models.certificate import Certificate
from app.security.scope import current_scope, filter_ids_in_scope, get_scoped, scope_clause
from app.services import certificates as certs
from app.services import jobs
from app.services.errors import DomainError
from app.services.requirement import totals_by_year
from app.views.base import ScopedModelView
from app.fab.datamodel import CEInterface
from app.views.formatting import hours_text, sees_full_id, translated

PAGE_SIZE = 50


def _base_url():
    """Where the QR code and the printed URL send a reader: the configured public
    address (behind a proxy the request's own host may be an internal one)."""
    return current_app.config.get("PUBLIC_BASE_URL") or request.url_root


def _pdf_response(data_or_file, filename):
    return send_file(data_or_file, mimetype="application/pdf", as_attachment=True, download_name=filename)


def _year_arg(default=None):
    try:
        year = int(request.values.get("year") or default or 0)
    except (TypeError, ValueError):
        year = 0
    return year if 2000 <= year <= 2100 else (default or datetime.date.today().year)


def _is_staff(scope):
    return bool(scope.everything or scope.unit_ids or scope.region_prefixes)


class CertificatePrintView(BaseView):
    """打印学时登记证书: applicants their own; unit staff and bureau staff the
    persons in their scope, one or many (one PDF, a page per person)."""

    route_base = "/certificates"
    default_view = "index"

    @expose("/")
    @has_access
    @permission_name("print")
    def index(self):
        scope = current_scope()
        own = []
        for pid in scope.person_ids:
            person = get_scoped(Person, pid)
            if person is not None:
                own.append((person, list(totals_by_year(person.id).values())))
        ctx = {"own": own, "staff": _is_staff(scope)}
        if ctx["staff"]:
            year = _year_arg(datetime.date.today().year - 1)
            q = (request.args.get("q") or "").strip()[:50]
            try:
                page = max(int(request.args.get("page", 0)), 0)
            except ValueError:
                page = 0
            rows, has_more = certs.persons_with_hours(
                year, scope_clause(Person), query=q, offset=page * PAGE_SIZE, limit=PAGE_SIZE
            )
            this_year = datetime.date.today().year
            ctx.update(year=year, q=q, page=page, rows=rows, has_more=has_more,
                       years=list(range(this_year, this_year - 6, -1)),
                       batch_max=current_app.config.get("CERT_BATCH_MAX", 1000))
        return self.render_template("certificates/print.html", **ctx)

    @expose("/pdf/<int:person_id>/<int:year>")
    @has_access
    @permission_name("print")
    def person_pdf(self, person_id, year):
        person = get_scoped(Person, person_id)
        if person is None:
            flash(_("人员不存在或不在您的权限范围内"), "danger")
            return redirect(url_for(".index"))
        try:
            cert, data = certs.certificate_pdf(
                person, year, user=current_user, full_id=sees_full_id(), base_url=_base_url()
            )
            db.session.commit()
        except DomainError as e:
            db.session.rollback()
            flash(str(e), "danger")
            return redirect(url_for(".index", year=year))
        return _pdf_response(io.BytesIO(data), _("学时登记证书_%(year)d_%(serial)s.pdf", year=year, serial=cert.serial))

    @expose("/batch", methods=["POST"])
    @has_access
    @permission_name("print_batch")
    def batch(self):
        year = _year_arg()
        scope = current_scope()
        if request.form.get("all"):
            rows, more = certs.persons_with_hours(
                year, scope_clause(Person), query=(request.form.get("q") or "").strip()[:50],
                limit=int(current_app.config.get("CERT_BATCH_MAX", 1000)),
            )
            if more:
                flash(_("人数超过单次打印上限%(n)d人，请缩小范围后再打印",
                        n=int(current_app.config.get("CERT_BATCH_MAX", 1000))), "danger")
                return redirect(url_for(".index", year=year))
            ids = [p.id for p, _t in rows]
        else:
            requested = set()
            for raw in request.form.getlist("person_id"):
                try:
                    requested.add(int(raw))
                except ValueError:
                    continue
            ids = sorted(filter_ids_in_scope(Person, requested, scope))
            if len(ids) != len(requested):
                # The whole print is refused: a partial PDF would hide what was left out.
                flash(_("%(n)d 名人员不存在或不在您的权限范围内，未打印", n=len(requested) - len(ids)), "danger")
                return redirect(url_for(".index", year=year))
        if not ids:
            flash(_("请选择要打印证书的人员"), "warning")
            return redirect(url_for(".index", year=year))
        if len(ids) > int(current_app.config.get("CERT_BATCH_MAX", 1000)):
            flash(_("人数超过单次打印上限%(n)d人，请缩小范围后再打印",
                    n=int(current_app.config.get("CERT_BATCH_MAX", 1000))), "danger")
            return redirect(url_for(".index", year=year))
        if len(ids) > int(current_app.config.get("CERT_BATCH_INLINE_MAX", 100)):
            # A long batch runs as a job (an RQ worker, or a thread of this
            # process); the user follows it on the job page and downloads the PDF.
            job = jobs.submit(certs.JOB_KIND, {
                "person_ids": ids, "year": year, "user_id": current_user.id, "base_url": _base_url(),
                "filename": _("学时登记证书_%(year)d_%(n)d人.pdf", year=year, n=len(ids)),
            }, user=current_user)
            flash(_("共%(n)d人，正在后台生成证书，完成后可在本页下载", n=len(ids)), "info")
            return redirect(url_for(".job", job_id=job.id))
        # Rendered in this request, in chunks, into a spooled temporary file
        # (memory bounded).
        out = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)
        try:
            printed, skipped = certs.batch_pdf(
                ids, year, out, user=current_user, full_id=sees_full_id(scope), base_url=_base_url()
            )
        except DomainError as e:
            db.session.rollback()
            out.close()
            flash(str(e), "danger")
            return redirect(url_for(".index", year=year))
        out.seek(0)
        return _pdf_response(out, _("学时登记证书_%(year)d_%(n)d人.pdf", year=year, n=printed))


    def _own_job(self, job_id):
        job = jobs.get_job(job_id, current_user)
        if job is None or job.kind != certs.JOB_KIND:
            abort(404)
        return job

    @expose("/job/<int:job_id>")
    @has_access
    @permission_name("print_batch")
    def job(self, job_id):
        job = self._own_job(job_id)
        return self.render_template("certificates/job.html", job=job, result=jobs.result_of(job),
                                    running=job.state in (jobs.QUEUED, jobs.RUNNING), done=job.state == jobs.DONE)

    @expose("/job/<int:job_id>/download")
    @has_access
    @permission_name("print_batch")
    def job_download(self, job_id):
        job = self._own_job(job_id)
        if job.state != jobs.DONE or not job.result_path or not os.path.exists(job.result_path):
            abort(404)
        return _pdf_response(job.result_path, jobs.result_of(job).get("filename") or "certificates.pdf")


class CertificateView(ScopedModelView):
    """证书登记簿: the issued certificates of the persons in scope (read only)."""

    datamodel = CEInterface(Certificate)
    route_base = "/certificateregistry"
    list_title = _l("证书登记簿")
    show_title = _l("证书详情")
    base_permissions = ["can_list", "can_show"]
    list_columns = ["serial", "person.name", "year", "status", "total_hours", "issued_at", "issued_by"]
    show_columns = [
        "serial", "person.name", "year", "status", "professional_hours", "public_hours", "total_hours",
        "met", "issued_at", "issued_by", "superseded_at", "content_sha256",
    ]
    search_columns = ["serial", "year", "status"]
    order_columns = ["serial", "year", "issued_at"]
    base_order = ("id", "desc")
    label_columns = {
        "serial": _l("证书编号"),
        "person.name": _l("姓名"),
        "year": _l("认定年度"),
        "status": _l("状态"),
        "professional_hours": _l("专业科目学时"),
        "public_hours": _l("公需科目学时"),
        "total_hours": _l("合计学时"),
        "met": _l("是否达标"),
        "issued_at": _l("发证时间"),
        "issued_by": _l("打印人"),
        "superseded_at": _l("作废时间"),
        "content_sha256": _l("内容摘要（SHA-256）"),
    }
    formatters_columns = {
        "status": translated,
        "total_hours": hours_text,
        "professional_hours": hours_text,
        "public_hours": hours_text,
    }


def _verify_limit():
    return current_app.config.get("CERT_VERIFY_RATE_LIMIT", "30 per minute")


def _too_many(_exc):
    return make_response(render_template("certificates/verify_limited.html"), 429)


class CertificateVerifyView(BaseView):
    """证书核验: public, no login.  Shows only the state, the masked name, the year,
    the hours per category and in total, and the issue date.  Rate-limited per
    client address through FAB's limiter, whose storage (RATELIMIT_STORAGE_URI,
    Redis in production) is shared by every worker."""

    route_base = "/verify"
    default_view = "form"

    def __init__(self):
        # A fresh list per instance (FAB appends to it).
        self.limits = [Limit(_verify_limit, key_func=get_remote_address)]
        super().__init__()

    def create_blueprint(self, appbuilder, endpoint=None, static_folder=None):
        blueprint = super().create_blueprint(appbuilder, endpoint=endpoint, static_folder=static_folder)
        # This page's own "too many requests" answer (the app-wide one speaks of logins).
        blueprint.register_error_handler(429, _too_many)
        return blueprint

    def _page(self, raw_code):
        result = None
        if raw_code:
            result = certs.verify(raw_code)
            db.session.commit()
        resp = make_response(self.render_template(
            "certificates/verify.html", code=(raw_code or "")[:40], result=result, states=certs,
        ))
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["X-Robots-Tag"] = "noindex"
        return resp

    # One endpoint for the form and the QR link, so both draw on one rate-limit
    # counter (the limiter counts per endpoint).
    @expose("/")
    @expose("/<string:code>")
    def form(self, code=None):
        return self._page(code or request.args.get("code"))
