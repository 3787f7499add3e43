"""REST API of the national data interchange (部省对接), under /api/v1/national_record/.

Sign in with JWT (POST /api/v1/security/login {"username", "password", "provider": "db"})
and send `Authorization: Bearer <access_token>`.

* GET /api/v1/national_record/changes     the incremental feed (cursor over updated_at, id)
* GET /api/v1/national_record/<id>        one record as the feed delivers it
* GET /api/v1/national_record/export      a region's year in the national layout (csv / xlsx)

The contract (docs/national-api.md) is the OpenAPI document /api/v1/_openapi, and it
says exactly what is answered: typed parameters with their ranges, one record
schema shared by the feed and the single-record route, RFC 3339 times with the
+08:00 offset, hours as numbers, and the error answers (400 naming the parameter,
401 without a valid token, 403 without the permission or outside the scope, 404).
FAB's generic list / _info routes are not offered: their Rison query language
cannot be described exactly, and the feed is how records leave the province.

Every route reads through the row scope (app.security.scope) and writes an audit entry.
"""
import re

from flask import Response, g, request
from flask_appbuilder.api import BaseApi, expose, protect, safe
from flask_appbuilder.security.decorators import permission_name
from flask_babel import gettext as _

from app.fab.national_files import national_file_response
from app.models import Category, IdType, LearningForm, Source
from app.security.api import ApiContractMixin, ref
from app.services import audit, national
from app.services.errors import DomainError, OutOfScope

MAX_PK = 2 ** 31 - 1
_REGION = re.compile(r"(\d{2}|\d{4}|\d{6})?")
_INT = re.compile(r"[+-]?\d{1,9}")

_TIME = {"type": "string", "format": "date-time",
         "description": "RFC 3339，北京时间 +08:00 (e.g. 2024-08-15T23:00:00+08:00)"}


def _names(enum):
    return [m.name for m in enum]


def _labels(enum):
    return [m.value for m in enum]


RECORD_SCHEMAS = {
    "NationalRecord": {
        "type": "object",
        "description": "一条已核准的学时记录（部省对接格式的字段） (an approved record)",
        "additionalProperties": False,
        "required": [
            "id", "status", "updated_at", "removed", "id_type", "id_type_label", "id_number", "name",
            "unit_name", "unit_credit_code", "region_code", "year", "category", "category_label",
            "learning_form", "learning_form_label", "form_code", "form_name", "course_name", "organizer_name",
            "start_date",
            "end_date", "hours", "source", "source_label", "approved_at",
        ],
        "properties": {
            "id": {"type": "integer", "minimum": 1, "description": "记录编号 (record id)"},
            "status": {"type": "string", "enum": ["APPROVED"]},
            "updated_at": _TIME,
            "removed": {"type": "boolean", "enum": [False]},
            "id_type": {"type": "string", "enum": _names(IdType)},
            "id_type_label": {"type": "string", "enum": _labels(IdType)},
            "id_number": {"type": "string"},
            "name": {"type": "string"},
            "unit_name": {"type": "string", "nullable": True},
            "unit_credit_code": {"type": "string", "nullable": True},
            "region_code": {"type": "string", "nullable": True, "pattern": r"^\d{6}$"},
            "year": {"type": "integer", "minimum": national.MIN_YEAR, "maximum": national.MAX_YEAR},
            "category": {"type": "string", "enum": _names(Category)},
            "category_label": {"type": "string", "enum": _labels(Category)},
            "learning_form": {"type": "string", "enum": _names(LearningForm)},
            "learning_form_label": {"type": "string", "enum": _labels(LearningForm)},
            "form_code": {"type": "string", "maxLength": 40,
                          "description": "学习形式代码（本年度学时认定标准中的代码，按记录保存） (form code as stored)"},
            "form_name": {"type": "string", "maxLength": 100,
                          "description": "学习形式名称（认定时的标准版本） (form name as stored)"},
            "course_name": {"type": "string"},
            "organizer_name": {"type": "string", "nullable": True},
            "start_date": {"type": "string", "format": "date"},
            "end_date": {"type": "string", "format": "date"},
            "hours": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "multipleOf": 0.1,
                      "description": "学时，最多一位小数 (hours, at most one decimal)"},
            "source": {"type": "string", "enum": _names(Source)},
            "source_label": {"type": "string", "enum": _labels(Source)},
            "approved_at": dict(_TIME, description="认定时间，RFC 3339 +08:00 (time of approval)"),
        },
    },
    "NationalTombstone": {
        "type": "object",
        "description": "已不再核准（已撤销）的记录：只有编号、状态和时间，不含个人信息 (no longer approved)",
        "additionalProperties": False,
        "required": ["id", "status", "updated_at", "removed"],
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "status": {"type": "string",
                       "enum": [s.name for s in national.ONCE_APPROVED if s.name != "APPROVED"]},
            "updated_at": _TIME,
            "removed": {"type": "boolean", "enum": [True]},
        },
    },
    "NationalFeedItem": {
        "oneOf": [{"$ref": "#/components/schemas/NationalRecord"},
                  {"$ref": "#/components/schemas/NationalTombstone"}],
    },
    "NationalFeedPage": {
        "type": "object",
        "additionalProperties": False,
        "required": ["items", "next_cursor", "has_more", "horizon"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/NationalFeedItem"}},
            "next_cursor": {"type": "string", "pattern": "^(" + national.CURSOR_PATTERN + ")?$",
                            "description": "下次请求时原样传回的游标；空：尚无记录，下次仍从头开始"
                                           " (pass it back next time; empty: nothing yet, start again)"},
            "has_more": {"type": "boolean", "description": "true：立即还有下一页 (another page is ready)"},
            "horizon": dict(_TIME, description="本页读取的最晚更新时间 (the newest updated_at read)"),
        },
    },
}

_SCOPE_PARAMS = [
    {"in": "query", "name": "region", "schema": {"type": "string", "pattern": "^" + _REGION.pattern + "$"},
     "description": "行政区划代码，含全部下级（32 全省，3201 或 320100 南京市，320102 玄武区），须在账号的范围内"
                    "（否则 403）；空或不传：账号的全部范围 (a region subtree inside the account's)"},
    {"in": "query", "name": "year",
     "schema": {"type": "integer", "minimum": national.MIN_YEAR, "maximum": national.MAX_YEAR},
     "description": "认定年度；不传：所有年度 (year; all when absent)"},
]


class BadParameter(DomainError):
    def __init__(self, field, message):
        super().__init__(message)
        self.field = field


def _int_arg(name, low, high, default=None):
    """The query argument `name` as an int in [low, high]; absent -> default.
    Raises BadParameter."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if not _INT.fullmatch(raw) or not low <= int(raw) <= high:
        raise BadParameter(name, _("参数 %(name)s 应为 %(low)d 到 %(high)d 之间的整数", name=name, low=low, high=high))
    return int(raw)


def _region_arg():
    raw = request.args.get("region")
    if raw is not None and not _REGION.fullmatch(raw):
        raise BadParameter("region", _("参数 region 应为2、4或6位行政区划代码（如 32、3201、320102）"))
    return raw or None


class NationalRecordApi(ApiContractMixin, BaseApi):
    resource_name = "national_record"
    openapi_spec_tag = "National interchange 部省对接"
    extra_component_schemas = RECORD_SCHEMAS

    def _audit(self, action, object_id=None, **detail):
        """Every use of the API is in the audit log, under the account's region."""
        from app.extensions import db

        user = getattr(g, "user", None)
        audit.record(action, "HourRecord", object_id, user=user,
                     region_code=getattr(user, "region_code", None), **detail)
        db.session.commit()

    @expose("/changes", methods=["GET"])
    @protect()
    @safe
    @permission_name("get")
    def changes(self):
        """Incremental pull of approved records
        ---
        get:
          summary: 增量拉取 (incremental pull, cursor over updated_at and id)
        """
        try:
            cursor = request.args.get("cursor") or None
            region = _region_arg()
            year = _int_arg("year", national.MIN_YEAR, national.MAX_YEAR)
            size = _int_arg("page_size", 1, national.MAX_PAGE_SIZE, national.DEFAULT_PAGE_SIZE)
            try:
                national.decode_cursor(cursor)
            except DomainError as e:
                raise BadParameter("cursor", str(e))
            page = national.changes(cursor=cursor, region=region, year=year, page_size=size)
        except OutOfScope as e:
            return self.response_403(str(e))
        except BadParameter as e:
            return self.response_400(str(e), e.field)
        except DomainError as e:
            return self.response_400(str(e))
        self._audit("national_pull", region=region, year=year, cursor=cursor, items=len(page.items),
                    next_cursor=page.next_cursor)
        return self.response(
            200, items=page.items, next_cursor=page.next_cursor, has_more=page.has_more,
            horizon=national.rfc3339(page.horizon),
        )

    @expose("/<int:pk>", methods=["GET"])
    @protect()
    @safe
    @permission_name("get")
    def get(self, pk):
        """One record as the feed delivers it
        ---
        get:
          summary: 单条记录 (one record, as the feed delivers it)
        """
        item = national.feed_record(pk) if 1 <= pk <= MAX_PK else None
        if item is None:
            return self.response_404()
        self._audit("national_read", pk)
        return self.response(200, **item)

    @expose("/export", methods=["GET"])
    @protect()
    @safe
    @permission_name("export")
    def export(self):
        """A region's year in the national-collection layout
        ---
        get:
          summary: 部省对接格式文件 (file in the national-collection layout)
        """
        try:
            region = _region_arg()
            year = _int_arg("year", national.MIN_YEAR, national.MAX_YEAR)
            fmt = request.args.get("format", "csv")
            if fmt not in ("csv", "xlsx"):
                raise BadParameter("format", _("参数 format 应为 csv 或 xlsx"))
            return national_file_response(region, year, fmt)
        except OutOfScope as e:
            return self.response_403(str(e))
        except BadParameter as e:
            return self.response_400(str(e), e.field)
        except DomainError as e:
            return self.response_400(str(e))

    openapi_spec_methods = {
        "changes": {"get": {
            "description": (
                "按 (updated_at, id) 顺序返回游标之后的记录。保存 next_cursor，下次原样传回：不漏、不重。"
                "记录在首次核准时进入；核准后又有变化（更正、人员调动）时以新的状态再次下发；撤销后下发只含 "
                "id、status、updated_at 的删除标记（removed=true）；从未核准的记录（草稿、待核准、退回、撤回）"
                "从不出现。只读取早于服务器安全延迟（NATIONAL_FEED_LAG_SECONDS）的记录。"
                " Rows after `cursor` in (updated_at, id) order: keep `next_cursor` and pass it back. A record"
                " enters when first approved, comes again when it changes, leaves as a tombstone when revoked;"
                " never-approved records never appear."),
            "parameters": [
                {"in": "query", "name": "cursor",
                 "schema": {"type": "string", "pattern": "^(" + national.CURSOR_PATTERN + ")?$"},
                 "description": "上一页返回的 next_cursor；空或不传：从头开始 (empty: from the start)"},
                *_SCOPE_PARAMS,
                {"in": "query", "name": "page_size",
                 "schema": {"type": "integer", "minimum": 1, "maximum": national.MAX_PAGE_SIZE,
                            "default": national.DEFAULT_PAGE_SIZE}},
            ],
            "responses": {
                "200": {"description": "一页 (one page of the feed)", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/NationalFeedPage"}}}},
                "400": ref("BadParameter"), "401": ref("Unauthorized"), "403": ref("Forbidden"),
            },
        }},
        "get": {"get": {
            "description": "已核准的记录给出全部字段，已撤销的给出删除标记；从未核准或不在范围内：404。"
                           " The record, or its tombstone once revoked; 404 when never approved or outside the scope.",
            "parameters": [{"in": "path", "name": "pk", "required": True,
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PK}}],
            "responses": {
                "200": {"description": "记录或删除标记 (the record or its tombstone)",
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/NationalFeedItem"}}}},
                "401": ref("Unauthorized"), "403": ref("Forbidden"), "404": ref("NotFound"),
            },
        }},
        "export": {"get": {
            "description": (
                "当前已核准的记录。列（app.services.columns.NATIONAL，行业导入读取的同一格式）：证件类型, 证件号码, "
                "姓名, 单位名称, 单位统一社会信用代码, 行政区划代码, 年度, 科目类别, 学习形式, 课程名称, 举办单位, "
                "开始日期, 结束日期, 学时, 来源, 认定时间（RFC 3339，+08:00）, 学习形式代码, 学习形式名称（学时认定标准中的学习形式，按记录保存的）。CSV 为带 BOM 的 UTF-8。"
                " Records approved now; CSV is UTF-8 with a BOM."),
            "parameters": [
                *_SCOPE_PARAMS,
                {"in": "query", "name": "format",
                 "schema": {"type": "string", "enum": ["csv", "xlsx"], "default": "csv"}},
            ],
            "responses": {
                "200": {"description": "文件 (the file)", "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                        "schema": {"type": "string", "format": "binary"}},
                }},
                "400": ref("BadParameter"), "401": ref("Unauthorized"), "403": ref("Forbidden"),
            },
        }},
    }


def register(appbuilder):
    """Add the API and the OpenAPI document, and let API clients obtain a JWT: the
    login takes JSON credentials (no cookie), so it is exempt from the CSRF check;
    its failed logins count like the login form's (CESecurityManager.auth_user_db)."""
    from flask_appbuilder.api.manager import SwaggerView
    from flask_appbuilder.security.api import SecurityApi as FabSecurityApi

    from app.extensions import csrf
    from app.security.api import OpenApi

    appbuilder.add_api(NationalRecordApi)
    # FAB_ADD_OPENAPI_VIEWS is off: the app's OpenApi (documented as it answers).
    appbuilder.add_api(OpenApi)
    appbuilder.add_view_no_menu(SwaggerView)
    for view in appbuilder.baseviews:
        if isinstance(view, FabSecurityApi) and view.blueprint is not None:
            csrf.exempt(view.blueprint)
