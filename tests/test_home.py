"""The home page is each role's workbench: what waits for them, in their scope."""
import re

from sqlalchemy import func, select

from app.extensions import db
from app.models import CEUser, HourRecord, Status


def _page(client):
    return client.get("/").get_data(as_text=True)


def _badge(html, label):
    m = re.search(re.escape(label) + r'<span class="badge">(\d+)</span>', html)
    return int(m.group(1)) if m else None


def test_clerk_sees_pending_declarations_of_its_unit(app, login_as):
    html = _page(login_as("clerk_a"))
    with app.app_context():
        user = db.session.execute(select(CEUser).where(CEUser.username == "clerk_a")).scalar_one()
        expected = db.session.execute(
            select(func.count(HourRecord.id)).where(
                HourRecord.status == Status.SUBMITTED, HourRecord.unit_id == user.unit_id)
        ).scalar_one()
    assert expected > 0
    assert _badge(html, "待核准申报") == expected
    assert "申报学时" not in html  # a clerk declares nothing


def test_applicant_sees_own_year_and_declare_shortcut(app, login_as):
    html = _page(login_as("zhangsan"))
    assert "申报学时" in html and "我的学时" in html
    assert 'id="my-year"' in html
    assert "待核准申报" not in html
    assert "批量导入" not in html


def test_bureau_sees_registration_and_statistics_not_review(app, login_as):
    html = _page(login_as("bureau_nj"))
    assert "达标统计" in html and "单位注册审核" in html
    assert _badge(html, "单位注册审核") == 0
    assert "待核准申报" not in html
