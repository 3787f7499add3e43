"""The entry point of an RQ worker (`rq worker ce-jobs`): builds the app once per
worker process and runs a job through services.jobs."""
from flask import has_app_context

_app = None


def rq_entry(job_id):
    """Run the job `job_id` (enqueued by services.jobs.submit)."""
    from app.extensions import db
    from app.services.jobs import run_job

    global _app
    if has_app_context():
        return run_job(job_id)
    if _app is None:
        from app import create_app

        _app = create_app()
    with _app.app_context():
        try:
            run_job(job_id)
        finally:
            db.session.remove()
