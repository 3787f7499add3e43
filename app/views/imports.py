"""Bulk import pages (template download, upload, preview, confirm, error file,
progress) and the grid export endpoint's body.  Thin: the rules live in
app.services.importer / exporter / jobs."""
import os

from flask import abort, current_app, flash, jsonify, redirect, request, send_file, url_for
from flask_appbuilder import BaseView, expose, has_access, permission_name
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from app.extensions import db
from app.security import roles as R
from app.services import audit, exporter, importer, jobs
from app.services.columns import KINDS, get_kind
from app.services.errors import DomainError
from app.services.excel_template import build_template, template_filename

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

KIND_ROLES = {
    "unit": {R.UNIT_ADMIN, R.UNIT_OPERATOR},
    "bureau": {R.BUREAU, R.ADMIN},
    "organizer": {R.ORGANIZER},
    "industry": {R.INDUSTRY},
}
KIND_LABELS = {
    "unit": _l("单位导入（专业科目）"),
    "bureau": _l("人社局导入（公需科目）"),
    "organizer": _l("研修上报（高级研修项目）"),
    "industry": _l("行业导入"),
}


def kinds_for(user):
    names = {r.name for r in user.roles}
    return [k for k in KINDS if KIND_ROLES[k] & names]


def _inline(size_or_rows, key, default):
    return size_or_rows <= current_app.config.get(key, default)


class ImportView(BaseView):
    route_base = "/imports"
    default_view = "index"

    @expose("/")
    @has_access
    @permission_name("import")
    def index(self):
        from app.models import Job

        kinds = kinds_for(current_user)
        recent = (
            db.session.query(Job).filter(Job.user_id == current_user.id)
            .order_by(Job.id.desc()).limit(10).all()
        )
        return self.render_template(
            "imports/index.html", kinds=kinds, labels=KIND_LABELS, recent=recent,
            max_mb=importer.cfg("IMPORT_MAX_BYTES") / 1048576, max_rows=importer.cfg("IMPORT_MAX_ROWS"),
        )

    @expose("/template/<kind>")
    @has_access
    @permission_name("import")
    def template(self, kind):
        if kind not in kinds_for(current_user):
            abort(404)
        data = build_template(kind)
        import io

        return send_file(io.BytesIO(data), mimetype=XLSX, as_attachment=True,
                         download_name=template_filename(kind))

    @expose("/upload", methods=["POST"])
    @has_access
    @permission_name("import")
    def upload(self):
        kind = request.form.get("kind", "")
        upload = request.files.get("file")
        if kind not in kinds_for(current_user):
            flash(_("请选择导入类型"), "danger")
            return redirect(url_for("ImportView.index"))
        if upload is None or not upload.filename:
            flash(_("请选择要导入的文件"), "danger")
            return redirect(url_for("ImportView.index"))
        try:
            path = importer.save_upload(upload.stream, upload.filename)
        except DomainError as e:
            flash(str(e), "danger")
            return redirect(url_for("ImportView.index"))
        # A file named after a person ("张三320102….xlsx") names the job, the batch and
        # the audit entry with the number masked.
        params = {"kind": kind, "path": path, "filename": audit.mask_personal(os.path.basename(upload.filename)[:200]),
                  "user_id": current_user.id}
        job = jobs.submit("import_analyse", params, user=current_user,
                          inline=_inline(os.path.getsize(path), "IMPORT_INLINE_MAX_BYTES", 1024 * 1024))
        return redirect(url_for("ImportView.job", job_id=job.id))

    @expose("/job/<int:job_id>")
    @has_access
    @permission_name("job")
    def job(self, job_id):
        job = jobs.get_job(job_id, current_user)
        if job is None:
            abort(404)
        if job.state in (jobs.QUEUED, jobs.RUNNING):
            return self.render_template("imports/progress.html", job=job)
        if job.state == jobs.FAILED:
            return self.render_template("imports/progress.html", job=job)
        result = jobs.result_of(job)
        params = jobs.params_of(job)
        if job.kind == "export":
            return self.render_template("imports/progress.html", job=job, result=result)
        res = importer.ImportResult.from_dict(result)
        shown = importer.cfg("IMPORT_MAX_SHOWN_ERRORS")
        return self.render_template(
            "imports/preview.html", job=job, res=res, params=params, kind=get_kind(params["kind"]),
            label=KIND_LABELS[params["kind"]], stored=job.kind == "import_store",
            errors=res.errors[:shown], duplicates=res.duplicates[:shown], shown=shown,
        )

    @expose("/job/<int:job_id>/status")
    @has_access
    @permission_name("job")
    def status(self, job_id):
        job = jobs.get_job(job_id, current_user)
        if job is None:
            abort(404)
        return jsonify(state=job.state, progress=job.progress, message=job.message)

    @expose("/job/<int:job_id>/confirm", methods=["POST"])
    @has_access
    @permission_name("import")
    def confirm(self, job_id):
        job = jobs.get_job(job_id, current_user)
        if job is None or job.kind != "import_analyse" or job.state != jobs.DONE:
            abort(404)
        params = jobs.params_of(job)
        if params["kind"] not in kinds_for(current_user):
            abort(404)
        res = importer.ImportResult.from_dict(jobs.result_of(job))
        if not res.ok:
            flash(_("文件有错误，不能导入；请下载错误文件改正后重新导入"), "danger")
            return redirect(url_for("ImportView.job", job_id=job.id))
        rows = res.rows_total
        new = jobs.submit("import_store", params, user=current_user,
                          inline=_inline(rows, "IMPORT_INLINE_MAX_ROWS", 20000))
        return redirect(url_for("ImportView.job", job_id=new.id))

    @expose("/job/<int:job_id>/errors")
    @has_access
    @permission_name("job")
    def errors(self, job_id):
        job = jobs.get_job(job_id, current_user)
        if job is None or not job.kind.startswith("import") or job.state != jobs.DONE:
            abort(404)
        params = jobs.params_of(job)
        res = importer.ImportResult.from_dict(jobs.result_of(job))
        import io

        try:
            data = importer.error_file(jobs.kept_file(params["path"]), res)
        except DomainError as e:
            flash(str(e), "danger")
            return redirect(url_for("ImportView.job", job_id=job.id))
        base = os.path.splitext(params.get("filename") or "import")[0]
        return send_file(io.BytesIO(data), mimetype=XLSX, as_attachment=True,
                         download_name=f"{base}_错误行.xlsx")

    @expose("/job/<int:job_id>/download")
    @has_access
    @permission_name("job")
    def download(self, job_id):
        job = jobs.get_job(job_id, current_user)
        if job is None or job.kind != "export" or job.state != jobs.DONE or not job.result_path:
            abort(404)
        if not os.path.exists(job.result_path):
            abort(404)
        result = jobs.result_of(job)
        return send_file(job.result_path, mimetype=XLSX, as_attachment=True,
                         download_name=result.get("filename") or "export.xlsx")


def export_grid(view):
    """Body of every grid's /export/: small results stream back at once, large
    ones run as a job (EXPORT_INLINE_MAX_ROWS)."""
    total = exporter.count_rows(view)
    filename = exporter.export_filename(view)
    if total > current_app.config.get("EXPORT_INLINE_MAX_ROWS", 100_000):
        job = jobs.submit("export", exporter.job_params(view, total, filename, current_user), user=current_user)
        flash(_("共%(n)d行，正在后台导出，完成后可在本页下载", n=total), "info")
        return redirect(url_for("ImportView.job", job_id=job.id))
    path = exporter.temp_path()
    n = exporter.export_view(view, path)
    audit.record("export", view.datamodel.obj.__name__, None, unit_id=current_user.unit_id,
                 region_code=current_user.region_code, rows=n, query=exporter.request_query(),
                 id_numbers=exporter.id_numbers_in(view))
    db.session.commit()
    resp = send_file(path, mimetype=XLSX, as_attachment=True, download_name=filename)
    resp.call_on_close(lambda: os.path.exists(path) and os.remove(path))
    return resp
