"""The REST APIs' common contract, and FAB's JWT login and OpenAPI views as they answer.

Every API of the app (today: the national interchange, app/api/national.py) answers
besides 200 only what its OpenAPI document says, as JSON {"message": ...} in Chinese:

* 400 `BadParameter`: the message says why and `field` names the parameter;
* 401 `Unauthorized`: no, a malformed or an expired token (flask-jwt-extended's own
  answers, 422 {"msg": "Not enough segments"} among them, are replaced by
  `jwt_error_handlers` in the security manager);
* 403 `Forbidden`: the role lacks the permission, or the region is outside the account's;
* 404 `NotFound`; 405 with an Allow header (app/web.py).

The document names JWT as the only security scheme (FAB also names API keys,
which are not enabled here).
"""
from flask import current_app, request
from flask_appbuilder.api import BaseApi, expose, protect, safe
from flask_appbuilder.api.manager import OpenApi as FabOpenApi
from flask_appbuilder.const import API_SECURITY_ACCESS_TOKEN_KEY, API_SECURITY_REFRESH_TOKEN_KEY
from flask_appbuilder.security.api import SecurityApi as FabSecurityApi
from flask_babel import gettext as _


def _message_schema(**extra):
    return {"type": "object", "required": ["message"],
            "properties": {"message": {"type": "string"}, **extra}}


def ref(name):
    return {"$ref": f"#/components/responses/{name}"}


COMPONENT_RESPONSES = {
    "BadParameter": {
        "description": "参数不正确：message 说明原因，field 是参数名 (a parameter is wrong; field names it)",
        "content": {"application/json": {"schema": _message_schema(field={"type": "string"})}},
    },
    "Unauthorized": {
        "description": "未携带、格式错误或已过期的访问令牌，或用户名密码错误 (missing, malformed or expired token)",
        "content": {"application/json": {"schema": _message_schema()}},
    },
    "Forbidden": {
        "description": "角色无此权限，或行政区划不在账号的范围内 (no permission, or a region outside the account's)",
        "content": {"application/json": {"schema": _message_schema()}},
    },
    "NotFound": {
        "description": "不存在，或不在账号的范围内 (unknown, or outside the account's scope)",
        "content": {"application/json": {"schema": _message_schema()}},
    },
}


def unauthorized_message():
    return _("未登录或访问令牌无效，请先通过 /api/v1/security/login 登录取得令牌")


class ApiContractMixin:
    """Chinese error answers, 400 naming the parameter, JWT only in the document,
    and the app's components (`extra_component_schemas` of the API class)."""

    extra_component_schemas = {}

    def response_400(self, message=None, field=None):
        body = {"message": str(message or _("请求参数不正确"))}
        if field:
            body["field"] = field
        return self.response(400, **body)

    def response_401(self):
        return self.response(401, message=unauthorized_message())

    def response_403(self, message=None):
        return self.response(403, message=str(message or _("您没有执行此操作的权限")))

    def response_404(self):
        return self.response(404, message=_("记录不存在，或不在您的权限范围内"))

    def operation_helper(self, path=None, operations=None, methods=None, func=None, **kwargs):
        super().operation_helper(path=path, operations=operations, methods=methods, func=func, **kwargs)
        for operation in operations.values():
            if operation.get("security") == [{"jwt": []}, {"api_key": []}]:
                operation["security"] = [{"jwt": []}]

    def add_apispec_components(self, api_spec):
        super().add_apispec_components(api_spec)
        for name, response in COMPONENT_RESPONSES.items():
            if name not in api_spec.components.responses:
                api_spec.components.response(name, response)
        for name, schema in self.extra_component_schemas.items():
            if name not in api_spec.components.schemas:
                api_spec.components.schema(name, schema)
        api_spec.components.security_schemes.pop("api_key", None)


class OpenApi(ApiContractMixin, FabOpenApi):
    """FAB's OpenAPI document (same class name: same permission), documented as
    it answers: one version, v1; no Swagger-less 500 or bare 404."""

    @expose("/<version>/_openapi")
    @protect()
    @safe
    def get(self, version):
        """The OpenAPI document of an API version
        ---
        get:
          summary: OpenAPI 文档 (this document)
        """
        api_spec = self._create_api_spec(version)
        found = False
        for base_api in current_app.appbuilder.baseviews:
            if isinstance(base_api, BaseApi) and base_api.version == version:
                base_api.add_api_spec(api_spec)
                found = True
        if not found:
            return self.response_404()
        return self.response(200, **api_spec.to_dict())

    openapi_spec_methods = {"get": {"get": {
        "parameters": [{"in": "path", "name": "version", "required": True,
                        "schema": {"type": "string", "enum": ["v1"]}}],
        "responses": {
            "200": {"description": "The OpenAPI document",
                    "content": {"application/json": {"schema": {"type": "object"}}}},
            "401": ref("Unauthorized"), "403": ref("Forbidden"), "404": ref("NotFound"),
        },
    }}}


LOGIN_REQUEST = {
    "type": "object",
    "additionalProperties": False,
    "required": ["username", "password"],
    "properties": {
        "username": {"type": "string", "minLength": 1},
        # (FAB refuses a password made of NUL characters only)
        "password": {"type": "string", "minLength": 1, "pattern": "[^\\u0000]"},
        "provider": {"type": "string", "enum": ["db"]},
        "refresh": {"type": "boolean", "description": "true：同时返回刷新令牌 (also return a refresh token)"},
        "totp": {"type": "string", "maxLength": 40, "description": (
            "动态口令（6 位）或恢复码：MFA_ROLES 中的角色必须提供 "
            "(the second factor's code or a recovery code; required for the roles in MFA_ROLES)")},
    },
}
_TOKENS = {
    "type": "object", "additionalProperties": False, "required": [API_SECURITY_ACCESS_TOKEN_KEY],
    "properties": {API_SECURITY_ACCESS_TOKEN_KEY: {"type": "string"},
                   API_SECURITY_REFRESH_TOKEN_KEY: {"type": "string"}},
}


class SecurityApi(ApiContractMixin, FabSecurityApi):
    """FAB's JWT login and refresh (same class name: same endpoints), documented as
    they answer, with Chinese messages; a malformed body is a 400 naming its fields."""

    extra_component_schemas = {"LoginRequest": LOGIN_REQUEST}

    @expose("/login", methods=["POST"])
    @safe
    def login(self):
        """Sign in and get a JWT
        ---
        post:
          summary: 登录取得访问令牌 (sign in, get a JWT access token)
        """
        from flask_appbuilder.security.schemas import login_post
        from flask_jwt_extended import create_access_token, create_refresh_token
        from marshmallow import ValidationError

        body = request.get_json(silent=True) if request.is_json else None
        if not isinstance(body, dict):
            return self.response_400(_("请求体应为 JSON 对象"))
        body = dict(body)
        code = body.pop("totp", None)
        if code is not None and (not isinstance(code, str) or len(code) > 40):
            return self.response_400(_("登录参数不正确：%(fields)s", fields="totp"), "totp")
        try:
            payload = login_post.load(body)
        except ValidationError as error:
            fields = sorted(map(str, error.messages)) if isinstance(error.messages, dict) else []
            return self.response_400(_("登录参数不正确：%(fields)s", fields="、".join(fields)),
                                     ",".join(fields) or None)
        if payload.get("provider", "db") != "db":
            return self.response_400(_("登录参数不正确：%(fields)s", fields="provider"), "provider")
        user = self.appbuilder.sm.auth_user_db(payload["username"], payload["password"])
        if not user:
            return self.response(401, message=_("用户名或密码错误"))
        # The second factor (issue 25) for the roles in MFA_ROLES, as on the login page.
        refusal = self.appbuilder.sm.api_second_factor(user, code)
        if refusal:
            return self.response(401, message=refusal)
        tokens = {API_SECURITY_ACCESS_TOKEN_KEY: create_access_token(identity=str(user.id), fresh=True)}
        if payload.get("refresh"):
            tokens[API_SECURITY_REFRESH_TOKEN_KEY] = create_refresh_token(identity=str(user.id))
        return self.response(200, **tokens)

    @expose("/refresh", methods=["POST"])
    def refresh(self):
        # (no @safe: the token check raises, and flask-jwt-extended answers 401)
        """Get a new access token with a refresh token
        ---
        post:
          summary: 以刷新令牌换取新的访问令牌 (refresh the access token)
        """
        from flask_jwt_extended import create_access_token, get_jwt_identity, verify_jwt_in_request

        verify_jwt_in_request(refresh=True)
        return self.response(200, **{API_SECURITY_ACCESS_TOKEN_KEY: create_access_token(
            identity=get_jwt_identity(), fresh=False)})

    openapi_spec_methods = {
        "login": {"post": {
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/LoginRequest"}}}},
            "responses": {
                "200": {"description": "登录成功 (signed in)",
                        "content": {"application/json": {"schema": _TOKENS}}},
                "400": ref("BadParameter"), "401": ref("Unauthorized"),
            },
        }},
        "refresh": {"post": {
            "responses": {
                "200": {"description": "新的访问令牌 (a new access token)",
                        "content": {"application/json": {"schema": _TOKENS}}},
                "401": ref("Unauthorized"),
            },
            "security": [{"jwt_refresh": []}],
        }},
    }


def jwt_error_handlers(jwt_manager):
    """flask-jwt-extended answers a missing token 401 but a malformed one 422
    {"msg": "Not enough segments"}: every token problem is a 401 here, JSON in
    Chinese, with the WWW-Authenticate challenge of RFC 6750."""
    from flask import jsonify

    def answer(message):
        resp = jsonify(message=str(message))
        resp.status_code = 401
        resp.headers["WWW-Authenticate"] = 'Bearer realm="api"'
        return resp

    jwt_manager.unauthorized_loader(lambda _reason: answer(unauthorized_message()))
    jwt_manager.invalid_token_loader(lambda _reason: answer(_("访问令牌格式不正确，请重新登录取得令牌")))
    jwt_manager.expired_token_loader(lambda _h, _d: answer(_("访问令牌已过期，请重新登录或用刷新令牌换取新令牌")))
    jwt_manager.revoked_token_loader(lambda _h, _d: answer(_("访问令牌已失效，请重新登录")))
    jwt_manager.needs_fresh_token_loader(lambda _h, _d: answer(_("此操作需要重新登录")))
    jwt_manager.user_lookup_error_loader(lambda _h, _d: answer(_("访问令牌对应的账号不存在或已停用")))
    jwt_manager.token_verification_failed_loader(lambda _h, _d: answer(_("访问令牌校验失败，请重新登录")))
    return jwt_manager
