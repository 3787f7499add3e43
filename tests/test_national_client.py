"""The Python client example of docs/national-api.md, run as written against the
test server: a first pull copies every approved record of the account's region,
a second pull resumes from the saved cursor and applies only what changed."""
import os
import re
import runpy

from sqlalchemy import select

from app.extensions import db
from app.models import HourRecord, Status

DOC = os.path.join(os.path.dirname(os.path.dirname(__file__)), "docs", "national-api.md")


def _example(tmp_path):
    text = open(DOC, encoding="utf-8").read()
    code = re.search(r"## 4\..*?```python\n(.*?)```", text, re.S).group(1)
    path = tmp_path / "pull.py"
    path.write_text(code, encoding="utf-8")
    return str(path)


def _approved_in(app, prefix):
    with app.app_context():
        return set(db.session.execute(select(HourRecord.id).where(
            HourRecord.region_code.like(prefix + "%"), HourRecord.status == Status.APPROVED)).scalars())


def test_the_documented_client_pulls_and_resumes(app, live_server, tmp_path, monkeypatch):
    from app.services import approval
    from app.services.accounts import create_national_account

    monkeypatch.setitem(app.config, "NATIONAL_FEED_LAG_SECONDS", 0)
    with app.app_context():
        user, password = create_national_account("3201")
        username = user.username
    state = tmp_path / "state.json"
    monkeypatch.setenv("CE_API_URL", live_server)
    monkeypatch.setenv("CE_API_USER", username)
    monkeypatch.setenv("CE_API_PASSWORD", password)
    monkeypatch.setenv("CE_STATE_FILE", str(state))
    script = _example(tmp_path)

    module = runpy.run_path(script)  # defines pull(), load_state()
    first = module["pull"](page_size=7)
    copy = module["load_state"]()
    assert {int(i) for i in copy["records"]} == _approved_in(app, "3201")
    assert first >= len(copy["records"]) > 7
    cursor = copy["cursor"]
    assert cursor

    # Caught up: nothing new, same cursor.
    assert module["pull"](page_size=7) == 0 and module["load_state"]()["cursor"] == cursor

    # Elsewhere, a record is revoked and a pending one approved.
    with app.app_context():
        admin = app.appbuilder.sm.find_user(username="admin")
        from app.security.scope import scope_of

        revoked = sorted(_approved_in(app, "3201"))[0]
        pending = db.session.execute(select(HourRecord.id).where(
            HourRecord.region_code.like("3201%"), HourRecord.status == Status.SUBMITTED)).scalars().first()
        assert approval.transition([revoked], "revoke", user=admin, scope=scope_of(admin), comment="证明材料不实").done
        assert approval.transition([pending], "approve", user=admin, scope=scope_of(admin)).done
    # A new run (a new process would do the same: the state is on disk) resumes.
    again = runpy.run_path(script)
    assert again["pull"](page_size=7) == 2
    copy = again["load_state"]()
    held = {int(i) for i in copy["records"]}
    assert held == _approved_in(app, "3201") and revoked not in held and pending in held
    assert copy["records"][str(pending)]["status"] == "APPROVED"
