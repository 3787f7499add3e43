"""达标统计 dashboard and the national export page: thin views over
app.services.dashboard / app.services.national.  Charts are inline SVG drawn by
the templates (app/templates/dashboard/_charts.html): nothing loads from the internet."""
import datetime
import io
import os
from urllib.parse import urlencode

from flask import Response, abort, current_app, flash, redirect, request, send_file, url_for
from flask_appbuilder import BaseView, expose
from flask_appbuilder.security.decorators import has_access, permission_name
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from app.extensions import db
from app.models import Region
from app.models.enums import label
from app.models.regions import region_range
from app.security.scope import current_scope, scope_clause
from app.services import audit, dashboard, jobs, national
from app.services.errors import DomainError, OutOfScope
from app.views.formatting import hours_text, id_number_for_list

PAGE_SIZE = 50
YEARS_BACK = 6


def _years():
    this = datetime.date.today().year
    return list(range(this, this - YEARS_BACK, -1))


def _filter_args():
    year = request.args.get("year") or datetime.date.today().year
    return year, request.args.get("region") or None, request.args.get("unit") or None


def grid_url(year, status="APPROVED", region=None, unit=None, **extra):
    """The hour grid filtered like a dashboard figure (FAB `_flt_<index>_<column>` args)."""
    args = {"_flt_0_year": year, "_flt_0_status": status}
    if region:
        args["_flt_0_region_code"] = region
    if unit:
        args["_flt_0_unit"] = unit
    for col, value in extra.items():
        args["_flt_0_" + col] = value
    return url_for("HourRecordView.list") + "?" + urlencode(args)


class DashboardView(BaseView):
    route_base = "/dashboard"
    default_view = "index"

    @expose("/")
    @has_access
    @permission_name("index")
    def index(self):
        year, region, unit = _filter_args()
        try:
            page = max(int(request.args.get("page", 0)), 0)
        except ValueError:
            page = 0
        try:
            summary = dashboard.summary(year, region, unit)
            count, unmet = dashboard.unmet_persons(year, region, unit, page=page, page_size=PAGE_SIZE,
                                                   summary=summary)
        except OutOfScope as e:
            abort(404, description=str(e))
        except DomainError as e:
            flash(str(e), "danger")
            return redirect(url_for("DashboardView.index"))
        scope = current_scope()
        here = {"year": summary.year}
        if summary.region is not None:
            here["region"] = summary.region.code
        if summary.unit is not None:
            here["unit"] = summary.unit.id
        region_code = summary.region.code if summary.region is not None else None
        return self.render_template(
            "dashboard/index.html",
            s=summary, years=_years(), here=here,
            crumbs=dashboard.breadcrumbs(summary.region, scope),
            unmet=unmet, unmet_count=count, page=page, page_size=PAGE_SIZE,
            pages=(count + PAGE_SIZE - 1) // PAGE_SIZE,
            id_fmt=id_number_for_list, label=label, hours_text=hours_text,
            grid_url=lambda **kw: grid_url(summary.year, region=region_code,
                                           unit=summary.unit.id if summary.unit else None, **kw),
            level_label={"city": _("地市"), "district": _("区县"), "unit": _("单位")}[summary.level],
        )

    @expose("/unmet.xlsx")
    @has_access
    @permission_name("export")
    def export_unmet(self):
        year, region, unit = _filter_args()
        buf = io.BytesIO()
        try:
            sel = dashboard.resolve(year, region, unit)
            n = dashboard.write_unmet_xlsx(year, buf, region, unit, id_format=id_number_for_list)
        except OutOfScope as e:
            abort(404, description=str(e))
        except DomainError as e:
            flash(str(e), "danger")
            return redirect(url_for("DashboardView.index"))
        audit.record(
            "export_unmet", "Person", None, year=sel.year, rows=n,
            region_code=sel.region.code if sel.region is not None else None,
            unit_id=sel.unit.id if sel.unit is not None else None,
        )
        db.session.commit()
        name = f"unmet_{sel.year}.xlsx"
        return Response(
            buf.getvalue(),
            mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )


def regions_in_scope(scope):
    """Regions a bureau user may export: its own and those below it."""
    q = select(Region).order_by(Region.code)
    if not scope.everything:
        if not scope.region_prefixes:
            return []
        from sqlalchemy import or_

        q = q.where(or_(*[region_range(Region.code, p) for p in scope.region_prefixes]))
    else:
        q = q.where(scope_clause(Region, scope))
    return db.session.execute(q).scalars().all()


class NationalExportView(BaseView):
    """部省对接: the national-layout file of a region's year, and where the API lives."""

    route_base = "/national"
    default_view = "index"

    @expose("/")
    @has_access
    @permission_name("index")
    def index(self):
        return self.render_template(
            "dashboard/national.html",
            regions=regions_in_scope(current_scope()), years=_years(),
            this_year=datetime.date.today().year, headers=national.NATIONAL_HEADERS,
        )

    @expose("/export")
    @has_access
    @permission_name("export")
    def export(self):
        """CSV streams at once; a large .xlsx runs as a long job (EXPORT_INLINE_MAX_ROWS)."""
        from app.fab.national_files import checked_filters, national_file_response

        fmt = request.args.get("format", "xlsx")
        if fmt not in ("csv", "xlsx"):
            abort(400)
        try:
            if fmt == "xlsx":
                region, year = checked_filters(request.args.get("region"), request.args.get("year"))
                total = national.count_export(region, year)
                if total > current_app.config.get("EXPORT_INLINE_MAX_ROWS", 100_000):
                    job = jobs.submit("national_export", {
                        "region": region, "year": year, "user_id": current_user.id, "total": total,
                        "filename": national.export_filename(region, year, "xlsx"),
                    }, user=current_user)
                    flash(_("共%(n)d行，正在后台导出，完成后可在本页下载", n=total), "info")
                    return redirect(url_for("NationalExportView.job", job_id=job.id))
            return national_file_response(request.args.get("region"), request.args.get("year"), fmt)
        except OutOfScope as e:
            abort(404, description=str(e))
        except DomainError as e:
            flash(str(e), "danger")
            return redirect(url_for("NationalExportView.index"))

    @expose("/job/<int:job_id>")
    @has_access
    @permission_name("export")
    def job(self, job_id):
        job = jobs.get_job(job_id, current_user)
        if job is None or job.kind != "national_export":
            abort(404)
        return self.render_template("dashboard/national_job.html", job=job, result=jobs.result_of(job))

    @expose("/job/<int:job_id>/download")
    @has_access
    @permission_name("export")
    def download(self, job_id):
        job = jobs.get_job(job_id, current_user)
        if (job is None or job.kind != "national_export" or job.state != jobs.DONE
                or not job.result_path or not os.path.exists(job.result_path)):
            abort(404)
        return send_file(
            job.result_path, as_attachment=True,
            download_name=jobs.result_of(job).get("filename") or "national.xlsx",
            mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )


MENU_LABELS = {"Dashboard": _l("达标统计"), "NationalExport": _l("部省对接")}
