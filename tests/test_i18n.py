"""Chinese by default, English second; ID numbers masked for roles that do not need them."""
import re

from sqlalchemy import select

from app.extensions import db
from app.models import Person


def visible_text(resp):
    html = resp.get_data(as_text=True)
    html = re.sub(r"<script.*?</script>|<style.*?</style>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def attributes(resp, name):
    return set(re.findall(name + r'="([^"]*)"', resp.get_data(as_text=True)))


def test_login_page_is_chinese(client):
    resp = client.get("/login/")
    text = visible_text(resp)
    assert resp.status_code == 200
    for word in ("登录", "用户名", "密码"):
        assert word in text, word
    assert 'lang="zh' in resp.get_data(as_text=True) or "继续教育学时管理系统" in text
    for english in ("Sign In", "Username", "Password", "Login"):
        assert english not in text, english


def test_menu_and_grid_labels_are_chinese(login_as):
    client = login_as("admin")
    resp = client.get("/hourrecordview/list/")
    text = visible_text(resp)
    for label in ("学时管理", "学时记录", "专业技术人员", "单位", "行政区划", "操作日志"):
        assert label in text, label
    for column in ("姓名", "证件号码", "认定年度", "科目类别", "学习形式", "课程（项目）名称", "学时", "来源", "状态", "所在单位"):
        assert column in text, column
    # enum members are shown by their Chinese labels, never by their stored names
    assert "专业科目" in text and "已核准" in text
    for stored in ("APPROVED", "SUBMITTED", "PRO", "PUB", "DECLARED", "TRAIN_ONSITE"):
        assert not re.search(r"\b%s\b" % stored, text), stored
    # FAB's own list buttons, which FAB's zh catalog leaves in English
    assert {"查看", "编辑", "删除", "新增"} <= set(text.split()), "FAB buttons"
    assert {"添加新记录", "显示记录", "编辑记录", "删除记录"} <= attributes(resp, "title") | attributes(resp, "data-original-title")


def test_no_english_left_on_the_chinese_pages(login_as):
    client = login_as("admin")
    with client.application.app_context():
        pk = db.session.execute(select(Person.id).order_by(Person.id)).scalars().first()
    allowed = {"English", "Excel", "laquo", "raquo", "nbsp", "amp", "lt", "gt"}
    for url in ("/hourrecordview/list/", "/personview/list/", "/unitview/list/", "/regionview/list/",
                f"/personview/show/{pk}", "/hourrecordview/show/1", "/hourrecordview/add",
                "/personview/add", "/unitview/add"):
        resp = client.get(url)
        assert resp.status_code == 200, url
        words = set(re.findall(r"[A-Za-z]{2,}", visible_text(resp))) - allowed
        assert not words, (url, sorted(words))


def test_detail_page_shows_values_not_python(login_as):
    client = login_as("bureau_nj")
    text = visible_text(client.get("/personview/show/1"))
    assert "None" not in text and "False" not in text and "object at 0x" not in text
    assert "南京金陵科技有限公司（" in text  # the unit history, readable
    assert "否" in text  # 自由职业: 否
    text = visible_text(client.get("/personview/list/"))
    assert "False" not in text and "True" not in text


def test_english_is_the_second_locale(login_as):
    client = login_as("admin")
    client.get("/lang/en")
    resp = client.get("/hourrecordview/list/")
    text = visible_text(resp)
    assert {"Show", "Edit", "Delete"} <= set(text.split())
    assert "Add a new record" in attributes(resp, "title") | attributes(resp, "data-original-title")
    assert "查看" not in text.split()
    client.get("/lang/zh")
    assert "查看" in visible_text(client.get("/hourrecordview/list/")).split()


def test_login_page_in_english_after_switching(client):
    client.get("/lang/en")
    text = visible_text(client.get("/login/"))
    assert "Password" in text and "密码" not in text


MASKED = re.compile(r"\b\d{6}\*{8}[\dX]{4}\b")
WHOLE = re.compile(r"\b\d{17}[\dX]\b")


def test_bureau_sees_masked_id_numbers(login_as):
    client = login_as("bureau_nj")
    for url in ("/personview/list/", "/hourrecordview/list/", "/personview/show/1"):
        text = visible_text(client.get(url))
        assert MASKED.search(text), url
        assert not WHOLE.search(text), url
    text = visible_text(client.get("/personview/list/"))
    with client.application.app_context():
        zhangsan = db.session.execute(select(Person.id_number).where(Person.name == "张三")).scalar_one()
    assert zhangsan[:6] + "********" + zhangsan[-4:] in text
    assert zhangsan not in text


def test_unit_clerk_sees_whole_id_numbers(login_as):
    client = login_as("clerk_a")
    text = visible_text(client.get("/personview/list/"))
    with client.application.app_context():
        zhangsan = db.session.execute(select(Person.id_number).where(Person.name == "张三")).scalar_one()
    assert zhangsan in text
    assert WHOLE.search(text) and not MASKED.search(text)


def test_chinese_names_have_no_space(login_as):
    client = login_as("zhangsan")
    html = client.get("/hourrecordview/list/").get_data(as_text=True)
    navbar = html[html.find("navbar"):html.find("</nav>") if "</nav>" in html else None]
    assert "张三" in visible_text_of(navbar)
    assert "张 三" not in visible_text_of(navbar)


def visible_text_of(html):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
