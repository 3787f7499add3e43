"""Long jobs whose process died are reported as failed, not "running" for ever, and
result files are deleted after their keeping period (app/services/jobs.py)."""
import datetime
import json
import os

from sqlalchemy import select

from app.extensions import db
from app.models import CEUser, Job
from app.services import jobs

NOW = datetime.datetime.utcnow


def _job(username, **values):
    user = db.session.execute(select(CEUser).where(CEUser.username == username)).scalar_one()
    job = Job(kind="export", params=json.dumps({}), user_id=user.id, **values)
    db.session.add(job)
    db.session.commit()
    return job.id


def test_a_job_whose_process_died_is_reported_failed(app, login_as):
    with app.app_context():
        dead = _job("bureau_nj", state=jobs.RUNNING, started_at=NOW() - datetime.timedelta(hours=2))
        busy = _job("bureau_nj", state=jobs.RUNNING, started_at=NOW() - datetime.timedelta(minutes=5))
        waiting = _job("bureau_nj", state=jobs.QUEUED, created_at=NOW() - datetime.timedelta(hours=3))
    c = login_as("bureau_nj")
    page = c.get(f"/imports/job/{dead}").get_data(as_text=True)
    assert "处理失败：任务已中断：处理进程已停止或超时，请重新提交" in page
    assert c.get(f"/imports/job/{busy}/status").get_json()["state"] == "running"
    status = c.get(f"/imports/job/{waiting}/status").get_json()
    assert status == {"state": "failed", "progress": 0, "message": "任务未被执行：没有可用的后台处理进程，请联系管理员"}
    with app.app_context():
        states = dict(db.session.execute(select(Job.id, Job.state).where(Job.id.in_([dead, busy, waiting]))).all())
        assert states == {dead: "failed", busy: "running", waiting: "failed"}
        assert db.session.get(Job, dead).finished_at is not None


def test_the_limit_is_configurable(app, login_as, monkeypatch):
    monkeypatch.setitem(app.config, "JOB_MAX_SECONDS", 60)
    with app.app_context():
        job_id = _job("bureau_nj", state=jobs.RUNNING, started_at=NOW() - datetime.timedelta(minutes=5))
    assert login_as("bureau_nj").get(f"/imports/job/{job_id}/status").get_json()["state"] == "failed"


def test_old_result_files_are_deleted_and_the_page_says_so(app, login_as, tmp_path):
    paths = {}
    with app.app_context():
        for name, age in (("old", 8), ("recent", 1)):
            path = tmp_path / f"{name}.xlsx"
            path.write_bytes(b"PK")
            paths[name] = (_job("bureau_nj", state=jobs.DONE, result=json.dumps({"rows": 3}), result_path=str(path),
                                finished_at=NOW() - datetime.timedelta(days=age)), path)
        jobs.purge_old_results()
        old_id, old_path = paths["old"]
        recent_id, recent_path = paths["recent"]
        assert not os.path.exists(old_path) and os.path.exists(recent_path)
        assert db.session.get(Job, old_id).result_path is None
        assert db.session.get(Job, recent_id).result_path == str(recent_path)
    c = login_as("bureau_nj")
    page = c.get(f"/imports/job/{old_id}").get_data(as_text=True)
    assert "结果文件已超过保留期限并已删除，请重新生成。" in page and "btn-download" not in page
    assert c.get(f"/imports/job/{old_id}/download").status_code == 404
    page = c.get(f"/imports/job/{recent_id}").get_data(as_text=True)
    assert "btn-download" in page and "结果文件已超过保留期限" not in page
