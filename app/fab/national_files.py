"""The national export (部省对接) as a file response, shared by the API
(app.api.national) and the web page (app.views.dashboard.NationalExportView)."""
import os
import tempfile

from flask import Response, g, send_file, stream_with_context

from app.extensions import db
from app.security.scope import current_scope
from app.services import audit, national


def checked_filters(region, year):
    """(region code or None, year or None) after checking them against the scope.
    Raises DomainError / OutOfScope."""
    year = national.check_year(year)
    prefix = national.check_region_in_scope(national.check_region(region), current_scope())
    return (prefix.ljust(6, "0") if prefix else None), year


def national_file_response(region, year, fmt):
    """The export file as a Response (audited); shared by the API and the web page.
    CSV streams; .xlsx is written to a temporary file first (constant memory).
    Raises DomainError / OutOfScope on bad filters, before anything is sent."""
    scope = current_scope()
    region, year = checked_filters(region, year)
    user = getattr(g, "user", None)
    audit.record(
        "export_national", "HourRecord", None, region_code=region, year=year, format=fmt,
        user=user if getattr(user, "is_authenticated", False) else None,
    )
    db.session.commit()
    name = national.export_filename(region, year, fmt)
    rows = national.export_rows(region, year, scope=scope)
    if fmt == "xlsx":
        fd, path = tempfile.mkstemp(suffix=".xlsx", dir=national.export_dir())
        os.close(fd)
        national.write_xlsx(rows, path)
        resp = send_file(
            path, as_attachment=True, download_name=name,
            mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
        resp.call_on_close(lambda: os.path.exists(path) and os.remove(path))
        return resp
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return Response(stream_with_context(national.iter_csv(rows)), headers=headers,
                    mimetype="text/csv")
