"""Error pages speak Chinese (and English after /lang/en); API errors stay JSON."""
from tests.conftest import login


def test_missing_record_page_is_chinese(client):
    login(client, "clerk_a")
    resp = client.get("/hourrecordview/show/999999")
    assert resp.status_code == 404
    assert "页面或记录不存在，或不在您的权限范围内" in resp.get_data(as_text=True)


def test_post_without_csrf_token_explains_itself(client):
    login(client, "clerk_a")
    resp = client.post("/hourrecordview/delete/1")
    assert resp.status_code == 400
    assert "CSRF 校验失败" in resp.get_data(as_text=True)


def test_oversized_upload_is_refused_in_chinese(app, client):
    login(client, "clerk_a")
    limit = app.config["MAX_CONTENT_LENGTH"]
    resp = client.post("/hourrecordview/action_post", data=b"x" * (limit + 1),
                       content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 413
    assert "超过了系统允许的大小" in resp.get_data(as_text=True)


def test_error_page_follows_the_language(client):
    login(client, "clerk_a")
    client.get("/lang/en")
    resp = client.get("/hourrecordview/show/999999")
    assert resp.status_code == 404
    assert "页面或记录不存在" not in resp.get_data(as_text=True)
