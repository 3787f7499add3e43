"""A small provincial portal of the ticket → token → user-info kind, for the
portal login tests: it follows the flow provincial portals publish.

- GET  /sso/login?servicecode=..&goto=..  the portal's login page (pick a test account)
- POST /sso/login                         issues a ticket (single use, 60 s) and
                                          sends the browser to goto?ticket=...
- POST /sso/token     servicecode, time, sign=MD5(servicecode+servicepwd+time), ticket -> token
- POST /sso/userinfo  servicecode, time, sign, token -> the user's fields
- GET  /sso/logout?goto=..

Answers are JSON {"result": "0", "errmsg": ..., ...}; "result" other than "0" is a refusal.
Every server-to-server call is kept in `calls` (the tests check what was sent).
"""
import datetime
import hashlib
import html
import secrets
import threading
import time
from urllib.parse import urlencode, urlsplit

from flask import Flask, jsonify, redirect, request
from werkzeug.serving import make_server

TICKET_TTL = 60
TIME_SKEW = 300


def make_portal(services, accounts):
    """services: {servicecode: servicepwd}; accounts: {login: {field: value}}."""
    app = Flask("ticket_portal")
    tickets, tokens, calls = {}, {}, []
    app.config["calls"] = calls
    lock = threading.Lock()

    def refuse(message):
        return jsonify(result="1", errmsg=message)

    def check_signature(form):
        code = form.get("servicecode", "")
        if code not in services:
            return "未注册的接入系统"
        stamp = form.get("time", "")
        try:
            at = datetime.datetime.strptime(stamp, "%Y%m%d%H%M%S")
        except ValueError:
            return "时间戳格式错误"
        if abs((datetime.datetime.now() - at).total_seconds()) > TIME_SKEW:
            return "时间戳已过期"
        expected = hashlib.md5((code + services[code] + stamp).encode("utf-8")).hexdigest()
        if not secrets.compare_digest(expected, form.get("sign", "")):
            return "签名错误"
        return None

    @app.get("/sso/login")
    def login_page():
        code, goto = request.args.get("servicecode", ""), request.args.get("goto", "")
        if code not in services or not goto:
            return "接入系统未注册", 400
        options = "".join(f'<option value="{html.escape(k)}">{html.escape(k)}</option>' for k in accounts)
        return (
            '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>江苏政务服务网（测试）</title></head>'
            '<body><h1>江苏政务服务网 统一身份认证（测试门户）</h1>'
            '<form method="post" action="/sso/login">'
            f'<input type="hidden" name="servicecode" value="{html.escape(code)}">'
            f'<input type="hidden" name="goto" value="{html.escape(goto)}">'
            f'<label for="account">账号</label><select id="account" name="account">{options}</select>'
            '<button type="submit" id="portal-submit">登录</button></form></body></html>'
        )

    @app.post("/sso/login")
    def login_submit():
        account, goto = request.form.get("account"), request.form.get("goto", "")
        if account not in accounts:
            return "账号不存在", 400
        ticket = "ST-" + secrets.token_urlsafe(24)
        with lock:
            tickets[ticket] = (account, time.time(), request.form.get("servicecode"))
        sep = "&" if urlsplit(goto).query else "?"
        return redirect(goto + sep + urlencode({"ticket": ticket}))

    @app.post("/sso/token")
    def token():
        calls.append(("token", request.get_data(as_text=True)))
        error = check_signature(request.form)
        if error:
            return refuse(error)
        with lock:
            entry = tickets.pop(request.form.get("ticket", ""), None)  # single use
        if entry is None:
            return refuse("票据无效或已使用")
        account, issued, code = entry
        if time.time() - issued > TICKET_TTL or code != request.form.get("servicecode"):
            return refuse("票据已过期")
        value = secrets.token_urlsafe(24)
        with lock:
            tokens[value] = (account, time.time())
        return jsonify(result="0", errmsg="成功", token=value)

    @app.post("/sso/userinfo")
    def userinfo():
        calls.append(("userinfo", request.get_data(as_text=True)))
        error = check_signature(request.form)
        if error:
            return refuse(error)
        with lock:
            entry = tokens.get(request.form.get("token", ""))
        if entry is None or time.time() - entry[1] > 600:
            return refuse("令牌无效")
        return jsonify(dict(result="0", errmsg="成功", userid=entry[0], **accounts[entry[0]]))

    @app.get("/sso/logout")
    def logout():
        goto = request.args.get("goto") or "/sso/login"
        return (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>已退出</title></head>'
                f'<body><p id="portal-logged-out">已退出江苏政务服务网</p>'
                f'<a href="{html.escape(goto)}">返回</a></body></html>')

    return app


class PortalServer(threading.Thread):
    """The portal on a loopback port, in a thread."""

    def __init__(self, app, port=0):
        super().__init__(daemon=True)
        self.app = app
        self.server = make_server("127.0.0.1", port, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def run(self):
        self.server.serve_forever()

    def stop(self):
        self.server.shutdown()
