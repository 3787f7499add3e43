"""Long jobs (large imports, large exports) behind one interface (SPEC §7).

`submit(kind, params)` records a Job row and runs its handler:

* inline, in the request, when the caller says the work is small;
* through RQ when REDIS_URL is configured (any worker process picks it up:
  `rq worker ce-jobs` with the app importable);
* otherwise in a background thread of this process.

State and progress live in the `ce_job` table, never only in one process's
memory, so any web worker can answer the progress page.  A job belongs to the
user who submitted it: `get_job` returns it only to that user (jobs hold import
files and exports, which were scoped when they were made).

A job whose process died (a killed worker, a restarted server) would stay
"running" for ever: `get_job` reports a job that has run longer than
JOB_MAX_SECONDS, or waited longer than that for a worker, as failed, with a
reason.  Result files (exports, certificate PDFs) are deleted JOB_KEEP_DAYS
after their job finished (`purge_old_results`, run whenever a job is submitted),
and so are the other files with personal data that jobs leave on disk
(`purge_old_files`: uploaded import files, their validated-row caches, files
of exports whose request failed), JOB_KEEP_DAYS after they were last written.
"""
import contextlib
import datetime
import json
import logging
import os
import threading
import time

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select, update

from app.extensions import db
from app.models import Job
from app.services.errors import DomainError

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


def cfg(name):
    """JOB_MAX_SECONDS (also RQ's job_timeout) or JOB_KEEP_DAYS (config.py)."""
    return current_app.config[name]

# kind -> handler(job, params, progress) -> result dict
HANDLERS = {}


def handler(kind):
    def deco(fn):
        HANDLERS[kind] = fn
        return fn

    return deco


def submit(kind, params, *, user=None, inline=False):
    """Create and start a job; returns the Job (already finished when inline)."""
    job = Job(kind=kind, state=QUEUED, params=json.dumps(params, ensure_ascii=False, default=str),
              user_id=getattr(user, "id", None))
    db.session.add(job)
    db.session.commit()
    job_id = job.id
    purge_old_results()
    if inline:
        run_job(job_id)
    elif _through_rq():
        try:
            queue().enqueue("app.worker.rq_entry", job_id, job_timeout=cfg("JOB_MAX_SECONDS"),
                            job_id=rq_job_id(job_id), failure_ttl=cfg("JOB_KEEP_DAYS") * 86400)
        except Exception as exc:  # Redis down or unreachable: say so now, do not leave it queued
            log.warning("job %s not queued, Redis unavailable: %s", job_id, exc)
            message = _("后台任务队列暂时不可用，任务未能提交；请稍后重试，如持续出现请联系系统管理员")
            db.session.execute(update(Job).where(Job.id == job_id).values(
                state=FAILED, message=message, finished_at=datetime.datetime.utcnow()))
            db.session.commit()
            raise QueueUnavailable(message) from exc
    else:
        app = current_app._get_current_object()
        threading.Thread(target=_thread_entry, args=(app, job_id), daemon=True, name=f"ce-job-{job_id}").start()
    db.session.expire_all()
    return db.session.get(Job, job_id)


class QueueUnavailable(DomainError):
    """The job queue (Redis) did not take the job; the Job row says so too."""


def _through_rq():
    return bool(current_app.config.get("REDIS_URL")) and not current_app.config.get("JOBS_IN_PROCESS")


def rq_job_id(job_id):
    """RQ's id of the job that runs Job `job_id` (its state is read back by get_job)."""
    return f"ce-job-{job_id}"


def queue():
    """The RQ queue of long jobs (`rq worker ce-jobs`).  Tests put a fakeredis
    connection in app.extensions["ce_redis"]."""
    from rq import Queue

    conn = current_app.extensions.get("ce_redis")
    if conn is None:
        from redis import Redis

        # Short timeouts: a Redis that does not answer must not hang the request.
        conn = Redis.from_url(current_app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5)
    return Queue("ce-jobs", connection=conn)


def _thread_entry(app, job_id):
    with app.app_context():
        try:
            run_job(job_id)
        finally:
            db.session.remove()


def set_progress(job_id, percent, message=None):
    """Record progress on its own connection, so it is visible while the job's
    own transaction is still open."""
    values = {"progress": max(0, min(100, int(percent)))}
    if message is not None:
        values["message"] = str(message)[:500]
    with db.engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == job_id).values(**values))


def run_job(job_id):
    job = db.session.get(Job, job_id)
    if job is None or job.state not in (QUEUED,):
        return
    job.state = RUNNING
    job.started_at = datetime.datetime.utcnow()
    db.session.commit()
    params = json.loads(job.params or "{}")
    _import_handlers()
    fn = HANDLERS.get(job.kind)
    try:
        if fn is None:
            raise DomainError(_("未知的任务类型"))
        result = fn(job_id, params, lambda p, m=None: set_progress(job_id, p, m))
        state, message = DONE, None
    except DomainError as e:
        db.session.rollback()
        result, state, message = None, FAILED, str(e)
    except Exception:  # a job never takes its worker down; the user sees a reason
        log.exception("job %s failed", job_id)
        db.session.rollback()
        result, state, message = None, FAILED, _("处理失败：系统内部错误，请联系管理员")
    values = {"state": state, "finished_at": datetime.datetime.utcnow()}
    if state == DONE:
        values["progress"] = 100
        values["result"] = json.dumps(result or {}, ensure_ascii=False, default=str)
        if isinstance(result, dict) and result.get("_path"):
            values["result_path"] = result["_path"]
        if isinstance(result, dict) and result.get("_message"):
            values["message"] = str(result["_message"])[:500]
    else:
        values["message"] = message[:500]
    db.session.execute(update(Job).where(Job.id == job_id).values(**values))
    db.session.commit()


# Modules whose @handler functions a worker must know (they register on import).
HANDLER_MODULES = ["app.services.importer", "app.services.exporter", "app.services.national",
                   "app.services.certificates", "app.services.audit_checks"]


def _import_handlers():
    import importlib

    for name in HANDLER_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            log.warning("job handler module %s not importable", name)


def get_job(job_id, user):
    """The job if `user` submitted it, else None."""
    try:
        job_id = int(job_id)
    except (TypeError, ValueError):
        return None
    # The job's row as it is now (a worker updates it), without expiring the
    # signed-in user and everything else the request has loaded.
    job = db.session.get(Job, job_id, populate_existing=True)
    if job is None or user is None or job.user_id != getattr(user, "id", None):
        return None
    if job.state in (QUEUED, RUNNING) and (_abandoned(job) or _died_in_worker(job)):
        db.session.refresh(job)
    return job


def _died_in_worker(job):
    """Mark `job` failed if RQ reports that the process running it died (a killed
    or crashed work-horse: RQ marks its job failed; a job's own errors never get
    there, run_job records them).  Its transaction never committed, so nothing of
    it was stored.  True when it was marked."""
    if not _through_rq():
        return False
    from rq.exceptions import NoSuchJobError
    from rq.job import Job as RQJob, JobStatus

    try:
        status = RQJob.fetch(rq_job_id(job.id), connection=queue().connection).get_status()
    except NoSuchJobError:  # lost (Redis restarted without its data), unless just submitted
        young = job.created_at and job.created_at > datetime.datetime.utcnow() - datetime.timedelta(seconds=30)
        if young:
            return False
        status = None
    except Exception:  # Redis unreachable: nothing to learn now
        return False
    if status not in (None, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
        return False
    # Read again: run_job may have recorded the end after the state was read above.
    db.session.expire(job)
    if job.state not in (QUEUED, RUNNING):
        return False
    message = _("任务已中断：处理任务的后台进程意外停止，本次任务的数据均未保存，请重新提交")
    done = db.session.execute(
        update(Job).where(Job.id == job.id, Job.state.in_((QUEUED, RUNNING)))
        .values(state=FAILED, message=message, finished_at=datetime.datetime.utcnow())
    ).rowcount
    db.session.commit()
    return bool(done)


def _abandoned(job):
    """Mark `job` failed if no process can still be working on it: running longer
    than JOB_MAX_SECONDS (RQ stops it then; a thread's process may have died), or
    queued that long without a worker taking it.  True when it was marked."""
    limit = datetime.datetime.utcnow() - datetime.timedelta(seconds=cfg("JOB_MAX_SECONDS"))
    since = job.started_at if job.state == RUNNING else job.created_at
    if since is None or since > limit:
        return False
    message = (_("任务已中断：处理进程已停止或超时，请重新提交") if job.state == RUNNING
               else _("任务未被执行：没有可用的后台处理进程，请联系管理员"))
    done = db.session.execute(
        update(Job).where(Job.id == job.id, Job.state == job.state)  # not if it just finished
        .values(state=FAILED, message=message, finished_at=datetime.datetime.utcnow())
    ).rowcount
    db.session.commit()
    return bool(done)


def purge_old_results():
    """Delete the result files of jobs that finished more than JOB_KEEP_DAYS ago
    (the job's page then says the file has expired)."""
    limit = datetime.datetime.utcnow() - datetime.timedelta(days=cfg("JOB_KEEP_DAYS"))
    old = db.session.execute(
        select(Job.id, Job.result_path).where(Job.result_path.is_not(None), Job.finished_at < limit)
    ).all()
    for job_id, path in old:
        try:
            with contextlib.suppress(FileNotFoundError):  # already gone: only forget it
                os.remove(path)
        except OSError:
            log.warning("could not delete the result file of job %s: %s", job_id, path)
            continue
        db.session.execute(update(Job).where(Job.id == job_id).values(result_path=None))
    if old:
        db.session.commit()
    purge_old_files()


# Folders of files that jobs leave, (config setting of the root, sub-folder).
JOB_FOLDERS = (("UPLOAD_DIR", "imports"), ("UPLOAD_DIR", os.path.join("imports", "validated")),
               ("VAR_DIR", "exports"), ("VAR_DIR", "certificates"))


def purge_old_files(now=None):
    """Delete the files in JOB_FOLDERS last written more than JOB_KEEP_DAYS ago
    (import files hold whole ID numbers and names in clear: an import not confirmed
    within that time is uploaded again).  Returns the number of files deleted."""
    limit = (now or time.time()) - cfg("JOB_KEEP_DAYS") * 86400
    deleted = 0
    for setting, sub in JOB_FOLDERS:
        folder = os.path.join(current_app.config[setting], sub)
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < limit:
                    os.remove(entry.path)
                    deleted += 1
            except FileNotFoundError:
                continue  # another process deleted it first
            except OSError:
                log.warning("could not delete the old job file %s", entry.path)
    return deleted


def kept_file(path):
    """`path` (a job's input file) if it is still kept, else DomainError."""
    if not path or not os.path.exists(path):
        raise DomainError(_("文件已超过保留期限（%(days)d天）被删除，请重新上传", days=cfg("JOB_KEEP_DAYS")))
    return path


def result_of(job):
    return json.loads(job.result) if job and job.result else {}


def params_of(job):
    return json.loads(job.params) if job and job.params else {}
