"""REST API of the national data interchange (部省对接), under /api/v1/national_record/.

Sign in with FAB's JWT login (POST /api/v1/security/login {"username", "password",
"provider": "db"}) and send `Authorization: Bearer <access_token>`.

* GET /api/v1/national_record/            approved records, FAB list (Rison `q`: filters,
                                          order, page, page_size)
* GET /api/v1/national_record/<id>        one approved record
* GET /api/v1/national_record/_info       metadata (filters)
* GET /api/v1/national_record/changes     the incremental feed (cursor over updated_at, id)
* GET /api/v1/national_record/export      a region's year in the national layout (csv / xlsx)

Every route reads through the row scope (ScopeFilter / app.security.scope).
"""
from flask import request
from flask_appbuilder.api import ModelRestApi, expose, protect, rison, safe
from flask_appbuilder.models.sqla.filters import FilterEqual
from flask_appbuilder.security.decorators import permission_name
from flask_babel import lazy_gettext as _l

from app.fab.datamodel import CEInterface
from app.fab.filters import RequestFiltersMixin
from app.fab.labels import HOUR_LABELS
from app.fab.national_files import national_file_response
from app.models import HourRecord, Status
from app.security.scope import ScopeFilter
from app.services import national
from app.services.errors import DomainError, OutOfScope

_changes_schema = {
    "type": "object",
    "properties": {
        "cursor": {"type": "string"},
        "region": {"type": "string"},
        "year": {"type": "integer"},
        "page_size": {"type": "integer"},
    },
}

_export_schema = {
    "type": "object",
    "properties": {
        "region": {"type": "string"},
        "year": {"type": "integer"},
        "format": {"type": "string", "enum": ["csv", "xlsx"]},
    },
}


def _args(kwargs, names):
    """Rison `q` first, then plain query arguments."""
    values = dict(kwargs.get("rison") or {})
    for name in names:
        if name not in values and request.args.get(name) not in (None, ""):
            values[name] = request.args.get(name)
    return values


class NationalRecordApi(RequestFiltersMixin, ModelRestApi):
    # Active filters per request, not on the view shared by threads (RequestFiltersMixin).
    resource_name = "national_record"
    openapi_spec_tag = "National interchange 部省对接"
    datamodel = CEInterface(HourRecord)
    # Read-only: no post / put / delete / related / distinct routes.
    include_route_methods = {"get", "get_list", "info", "changes", "export"}
    base_filters = [["id", ScopeFilter, None], ["status", FilterEqual, Status.APPROVED]]
    list_columns = [
        "id", "person.id_type", "person.id_number", "person.name", "unit.name",
        "unit.credit_code", "region_code", "year", "category", "learning_form",
        "course_name", "organizer_name", "start_date", "end_date", "hours", "source",
        "status", "reviewed_at", "created_at", "updated_at",
    ]
    show_columns = list_columns
    # No add / edit routes; FAB's _info would otherwise describe every column,
    # including the unscoped row count of related tables.
    add_columns = edit_columns = ["year"]
    description_columns = {"year": _l("认定年度")}
    label_columns = dict(
        HOUR_LABELS, id=_l("记录编号"), **{
            "person.id_type": _l("证件类型"), "unit.credit_code": _l("单位统一社会信用代码"),
            "updated_at": _l("更新时间"),
        }
    )
    search_columns = ["region_code", "year", "category", "learning_form", "source", "updated_at"]
    order_columns = ["id", "updated_at", "year"]
    base_order = ("id", "asc")
    page_size = 100
    max_page_size = national.MAX_PAGE_SIZE

    @expose("/changes", methods=["GET"])
    @protect()
    @safe
    @permission_name("get")
    @rison(_changes_schema)
    def changes(self, **kwargs):
        """Incremental pull of approved records
        ---
        get:
          summary: Incremental pull (cursor over updated_at, id)
          description: >-
            Rows in (updated_at, id) order after `cursor`.  Keep `next_cursor` and
            pass it next time: no row is skipped or repeated, and a row changed after
            delivery (returned, corrected, revoked, moved) comes again with its new
            state.  Rows that no longer count (status other than APPROVED) come as
            tombstones with only id, status, updated_at and removed=true.  Only rows
            older than the safety lag of the server (NATIONAL_FEED_LAG_SECONDS) are read,
            so rows of late-committing transactions cannot fall behind a cursor.
            Arguments as plain query arguments or Rison in `q`, e.g.
            `q=(region:320100,year:2025,page_size:500)` (Rison).
          parameters:
          - in: query
            name: cursor
            schema: {type: string}
            description: next_cursor of the previous page; empty to start
          - in: query
            name: region
            schema: {type: string}
            description: region code; its whole subtree (320100 = Nanjing)
          - in: query
            name: year
            schema: {type: integer}
          - in: query
            name: page_size
            schema: {type: integer, minimum: 1, maximum: 1000, default: 100}
          - in: query
            name: q
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    cursor: {type: string}
                    region: {type: string}
                    year: {type: integer}
                    page_size: {type: integer}
          responses:
            200:
              description: One page of the feed
              content:
                application/json:
                  schema:
                    type: object
                    properties:
                      items:
                        type: array
                        items:
                          type: object
                          properties:
                            id: {type: integer}
                            status: {type: string}
                            updated_at: {type: string, format: date-time}
                            removed: {type: boolean}
                            id_type: {type: string}
                            id_number: {type: string}
                            name: {type: string}
                            unit_name: {type: string}
                            unit_credit_code: {type: string}
                            region_code: {type: string}
                            year: {type: integer}
                            category: {type: string}
                            learning_form: {type: string}
                            course_name: {type: string}
                            organizer_name: {type: string}
                            start_date: {type: string, format: date}
                            end_date: {type: string, format: date}
                            hours: {type: string}
                            source: {type: string}
                            approved_at: {type: string, format: date-time}
                      next_cursor: {type: string}
                      has_more: {type: boolean}
                      horizon: {type: string, format: date-time}
            400:
              $ref: '#/components/responses/400'
            401:
              $ref: '#/components/responses/401'
            403:
              $ref: '#/components/responses/403'
          security:
          - jwt: []
        """
        args = _args(kwargs, ("cursor", "region", "year", "page_size"))
        try:
            page = national.changes(
                cursor=args.get("cursor"), region=args.get("region"), year=args.get("year"),
                page_size=args.get("page_size"),
            )
        except OutOfScope as e:
            return self.response(403, message=str(e))
        except DomainError as e:
            return self.response_400(message=str(e))
        return self.response(
            200, items=page.items, next_cursor=page.next_cursor, has_more=page.has_more,
            horizon=page.horizon.isoformat(),
        )

    @expose("/export", methods=["GET"])
    @protect()
    @safe
    @permission_name("export")
    @rison(_export_schema)
    def export(self, **kwargs):
        """Approved records of a region and year in the national-collection layout
        ---
        get:
          summary: File export in the national-collection layout
          description: >-
            Columns (app.services.columns.NATIONAL, the layout the industry import
            reads): 证件类型, 证件号码, 姓名, 单位名称, 单位统一社会信用代码, 行政区划代码,
            年度, 科目类别, 学习形式, 课程名称, 举办单位, 开始日期, 结束日期, 学时, 来源,
            认定时间.  CSV is UTF-8 with a BOM.
          parameters:
          - in: query
            name: region
            schema: {type: string}
          - in: query
            name: year
            schema: {type: integer}
          - in: query
            name: format
            schema: {type: string, enum: [csv, xlsx], default: csv}
          responses:
            200:
              description: the file
              content:
                text/csv: {}
                application/vnd.openxmlformats-officedocument.spreadsheetml.sheet: {}
            400:
              $ref: '#/components/responses/400'
            401:
              $ref: '#/components/responses/401'
            403:
              $ref: '#/components/responses/403'
          security:
          - jwt: []
        """
        args = _args(kwargs, ("region", "year", "format"))
        fmt = args.get("format") or "csv"
        if fmt not in ("csv", "xlsx"):
            return self.response_400(message="format")
        try:
            return national_file_response(args.get("region"), args.get("year"), fmt)
        except OutOfScope as e:
            return self.response(403, message=str(e))
        except DomainError as e:
            return self.response_400(message=str(e))


def register(appbuilder):
    """Add the API, and let API clients obtain a JWT: FAB's SecurityApi login takes
    JSON credentials (no cookie), so it is exempt from the CSRF check and rate-limited
    like the login form."""
    from flask_appbuilder.security.api import SecurityApi

    from app.extensions import csrf

    appbuilder.add_api(NationalRecordApi)
    for view in appbuilder.baseviews:
        if isinstance(view, SecurityApi) and view.blueprint is not None:
            csrf.exempt(view.blueprint)
            sm = appbuilder.sm
            if sm.is_auth_limited and getattr(sm, "limiter", None) is not None:
                sm.limiter.limit(sm.auth_rate_limit, methods=["POST"])(view.blueprint)
