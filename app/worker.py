"""The entry point of an RQ worker (`rq worker ce-jobs -w app.worker.PreloadedWorker`):
the app is built once per worker process and each job runs through services.jobs.

rq forks a work-horse per job (a killed work-horse fails only its job; the worker
goes on).  Building the app (~2 s of CPU: every view, FAB's security, the
translations) in the work-horse would repeat that for every job, since the
work-horse exits afterwards; PreloadedWorker builds it in the worker process before
any fork, and every work-horse inherits it.  No database connection crosses the
fork: the worker's pool is emptied after building, and a work-horse starts a pool
of its own."""
import logging
import os

from flask import has_app_context
from rq.worker import Worker

_app = None
_app_pid = None


def _build_app():
    global _app, _app_pid
    from app import create_app
    from app.extensions import db

    _app = create_app()
    _app_pid = os.getpid()
    # rq's own logger (configured by `rq worker`): the stack tests count these lines.
    logging.getLogger("rq.worker").info("ce: app built in process %s", _app_pid)
    with _app.app_context():
        db.engine.dispose()  # nothing pooled is handed down to a work-horse
    return _app


class PreloadedWorker(Worker):
    """rq's forking Worker with the app built before the first fork."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if _app is None:
            _build_app()


def rq_entry(job_id):
    """Run the job `job_id` (enqueued by services.jobs.submit)."""
    from app.extensions import db
    from app.services.jobs import run_job

    if has_app_context():
        return run_job(job_id)
    app = _app or _build_app()
    with app.app_context():
        if _app_pid != os.getpid():
            # A forked work-horse: its own connections, the inherited pool left alone.
            db.engine.dispose(close=False)
        try:
            run_job(job_id)
        finally:
            db.session.remove()
