"""Accessibility in the HTML itself (issue 27), without a browser: the page's language,
the skip link and the main landmark, names of icon-only controls, errors tied to their
fields, and the 大字版 switch stored on the account.  The browser tests
(test_a11y_browser.py, test_keyboard_browser.py) check the rendered pages with axe-core
and drive the flows by keyboard."""
import re

from sqlalchemy import select

from app.extensions import db
from app.models import CEUser
from tests.conftest import csrf_token, post


def html(resp):
    return resp.get_data(as_text=True)


def large_text(app, username):
    with app.app_context():
        return db.session.execute(select(CEUser.large_text).where(CEUser.username == username)).scalar_one()


def test_pages_say_their_language(client, login_as):
    assert '<html lang="zh-CN">' in html(client.get("/login/"))
    c = login_as("clerk_a")
    assert '<html lang="zh-CN">' in html(c.get("/hourrecordview/list/"))
    c.get("/lang/en")
    assert '<html lang="en">' in html(c.get("/hourrecordview/list/"))


def test_skip_link_main_landmark_and_named_controls(login_as):
    page = html(login_as("clerk_a").get("/review/todo/list/"))
    assert re.search(r'<a class="ce-skip-link" href="#ce-main">跳到主要内容</a>', page)
    assert '<main id="ce-main"' in page
    assert 'role="header"' not in page
    # the language menu names the language in words, not only with a flag
    assert re.search(r'<span class="sr-only">界面语言：</span>简体中文', page)
    # the grid's checkboxes and the icon links of each row have names
    assert 'id="check_all" class="action_check_all" name="check_all" type="checkbox" aria-label="全选本页"' in page
    boxes = re.findall(r'<input id="\d+" class="action_check"[^>]*>', page)
    assert boxes and all('aria-label="选择此行"' in b for b in boxes)
    assert re.search(r'<span class="sr-only">查看</span>\s*<i class="fa fa-search"></i>', page)
    assert 'href="/static/css/a11y.css"' in page


def test_failed_login_marks_both_fields_and_announces_the_error(client):
    page = html(post(client, "/login/", {"username": "clerk_a", "password": "wrong"}, follow_redirects=True))
    alert = re.search(r'<div class="alert alert-\w+" role="alert" id="(ce-flash-\d+)">', page)
    assert alert, page[:2000]
    for field in ("username", "password"):
        tag = re.search(rf'<input[^>]*id="{field}"[^>]*>', page).group(0)
        assert 'aria-invalid="true"' in tag and alert.group(1) in tag, tag


def test_registration_error_is_tied_to_its_field(client):
    data = {"name": "测试单位", "credit_code": "123", "city": "320100", "region_code": "320102",
            "kind": "EMPLOYER", "contact_name": "赵六", "contact_phone": "025-86660000",
            "admin_name": "赵六", "username": "a11y_admin", "password": "Jianye#Admin26", "confirm": "Jianye#Admin26"}
    page = html(post(client, "/register/unit", data))
    assert 'role="alert"' in page
    tag = re.search(r'<input[^>]*id="credit_code"[^>]*>', page).group(0)
    assert 'aria-invalid="true"' in tag and "ce-flash-1" in tag and "credit_code-help" in tag
    other = re.search(r'<input[^>]*id="contact_name"[^>]*>', page).group(0)
    assert "aria-invalid" not in other


def test_declaration_errors_are_tied_to_their_fields(login_as):
    c = login_as("zhangsan")
    page = html(post(c, "/declare/new", {"op": "submit", "year": "2026", "course_name": ""}))
    tag = re.search(r'<input[^>]*id="course_name"[^>]*>', page).group(0)
    assert 'aria-invalid="true"' in tag and 'aria-describedby="err-course_name"' in tag
    assert re.search(r'id="err-course_name" data-for="course_name">\S+', page)


def test_large_text_switch_is_stored_on_the_account(app, login_as):
    c = login_as("clerk_a")
    page = html(c.get("/"))
    assert 'id="ce-large-text" role="button"' in page and 'aria-pressed="false"' in page
    assert '<html lang="zh-CN">' in page and "ce-large" not in page.split("<head>")[0]
    resp = post(c, "/account/large-text/", {"large_text": "1", "next": "/hourrecordview/list/"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/hourrecordview/list/")
    assert large_text(app, "clerk_a") is True and large_text(app, "clerk_b") is False
    page = html(c.get("/hourrecordview/list/"))  # the cached page frame follows the switch
    assert '<html lang="zh-CN" class="ce-large">' in page and 'aria-pressed="true"' in page
    # the page without script: its button switches back
    page = html(c.get("/account/large-text/"))
    assert "当前：大字版" in page and "切换到标准版" in page
    resp = post(c, "/account/large-text/", {"large_text": "0"}, headers={"X-Requested-With": "fetch"})
    assert resp.get_json() == {"large_text": False}
    assert large_text(app, "clerk_a") is False
    assert "ce-large" not in html(c.get("/hourrecordview/list/")).split("<head>")[0]


def test_large_text_switch_needs_a_signed_in_user_and_a_csrf_token(app, client, login_as):
    resp = client.get("/account/large-text/")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
    c = login_as("clerk_a")
    assert c.post("/account/large-text/", data={"large_text": "1"}).status_code == 400
    assert large_text(app, "clerk_a") is False
    # an outside address is not followed back
    token = csrf_token(c)
    resp = c.post("/account/large-text/", data={"large_text": "1", "next": "//evil.example/", "csrf_token": token})
    assert resp.status_code == 302 and "evil" not in resp.headers["Location"]
