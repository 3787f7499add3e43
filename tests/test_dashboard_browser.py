"""In a real browser: bureau_nj opens the dashboard and sees the charts (served by the
app itself, no internet); over real HTTP, an API client with bureau_nj's JWT pulls every
approved Nanjing record in pages, each exactly once."""
import datetime
import json
import urllib.parse
import urllib.request

from sqlalchemy import select

from app.extensions import db
from app.models import HourRecord, Status
from tests.conftest import browser_login, screenshot

YEAR = datetime.date.today().year - 1


def test_bureau_sees_dashboard_charts(live_server, page):
    external = []
    page.on("request", lambda r: external.append(r.url) if not r.url.startswith(live_server) else None)
    browser_login(page, live_server, "bureau_nj")
    page.click("text=统计与对接")
    page.click("text=达标统计")
    page.wait_for_load_state("networkidle")
    page.select_option("#year", str(YEAR))
    page.click("#dashboard-filter button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert f"{YEAR}年度" in page.inner_text("h2")
    for chart in ("#chart-rate", "#chart-groups", "#chart-category", "#chart-source"):
        svg = page.locator(f"{chart} svg")
        assert svg.count() == 1 and svg.is_visible(), chart
        box = svg.bounding_box()
        assert box["width"] > 100 and box["height"] > 40, chart
    # The donut prints the rate; bars exist per district and per category / source.
    assert "%" in page.locator("#chart-rate svg").text_content()
    assert page.locator("#chart-groups svg g.ce-bar").count() >= 2
    assert "玄武区" in page.inner_text("#chart-groups")
    assert page.locator("#chart-category svg g.ce-bar").count() == 2
    assert page.locator("#chart-source svg g.ce-bar").count() == 5
    assert int(page.inner_text("#kpi-persons")) > 0
    screenshot(page, "dashboard_bureau_nj")
    # Drill down into a district by clicking its bar.
    page.click("#chart-groups svg a >> nth=0")
    page.wait_for_load_state("networkidle")
    assert "region=3201" in page.url
    assert page.locator("#group-table tbody tr").count() >= 1
    screenshot(page, "dashboard_bureau_nj_district")
    assert external == [], external


def _get(url, token=None, data=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request(url, data=json.dumps(data).encode() if data else None, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read().decode())


def test_api_client_pulls_nanjing_in_pages_over_http(app, live_server, monkeypatch):
    monkeypatch.setitem(app.config, "NATIONAL_FEED_LAG_SECONDS", 0)
    token = _get(live_server + "/api/v1/security/login",
                 data={"username": "bureau_nj", "password": "Demo@2026", "provider": "db"})["access_token"]
    got, cursor, pages = [], "", 0
    while True:
        qs = urllib.parse.urlencode({"cursor": cursor, "page_size": 8, "region": "320100"})
        body = _get(f"{live_server}/api/v1/national_record/changes?{qs}", token)
        got.extend(i["id"] for i in body["items"] if not i["removed"])
        cursor, pages = body["next_cursor"], pages + 1
        if not body["has_more"]:
            break
    with app.app_context():
        expected = set(db.session.execute(select(HourRecord.id).where(
            HourRecord.status == Status.APPROVED, HourRecord.region_code.like("3201%"))).scalars())
    assert pages > 3
    assert len(got) == len(set(got)), "a record came twice"
    assert set(got) == expected
