from tests.conftest import login


def test_login_page_is_chinese(client):
    html = client.get("/login/").get_data(as_text=True)
    assert "登录" in html


def test_demo_accounts_log_in(app):
    for username in ["admin", "bureau_js", "bureau_nj", "bureau_sz", "unitadmin_a", "clerk_a",
                     "clerk_b", "agency_clerk", "organizer", "zhangsan", "lisi", "wangwu"]:
        c = app.test_client()
        html = login(c, username).get_data(as_text=True)
        assert "退出" in html or "注销" in html, username
