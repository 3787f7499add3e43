"""Production server settings: `.venv/bin/gunicorn 'run:app'` reads this file.

Everything comes from the environment, so one file serves every host:

    DATABASE_URL=postgresql+psycopg://ce:secret@db-host/ce_hours
    DB_POOL_SIZE=5 DB_MAX_OVERFLOW=5      # per worker process (config.py)
    WEB_CONCURRENCY=4 GUNICORN_THREADS=4  # workers x threads per host
    BIND=0.0.0.0:8000

Connections: each worker holds up to DB_POOL_SIZE + DB_MAX_OVERFLOW connections;
keep workers x (pool + overflow) x hosts under PostgreSQL's max_connections
(or put pgbouncer in between).  Threads in a worker share its pool, so
DB_POOL_SIZE should be at least GUNICORN_THREADS.  Grids need no COUNT(*) over
millions of rows (app/views/datamodel.py), so a request holds a connection for
milliseconds; CPU (page rendering) is the limit: about 2 workers per core.
Run `flask db upgrade` (or `flask ce init`) once per deployment, before the
workers start: the same migrations build SQLite and PostgreSQL.
"""
import multiprocessing
import os

bind = os.environ.get("BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", str(max(2, multiprocessing.cpu_count() * 2))))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
# Large imports and exports run as jobs (RQ workers), not in the request: a request
# that still takes this long is stuck.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then (slow leaks in long-running processes), but
# rarely: a new worker builds the whole app again (about 2 s of CPU) and then
# compiles its templates and SQL anew.  At 5 000 requests a worker restarted
# about once a minute per worker under the deadline-day mix: 3 % of the host's
# CPU, and every restart a burst of slow pages (docs/deploy-stack.md).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "100000"))
max_requests_jitter = max_requests // 10
# Load the app in each worker after fork: no database connection is shared across
# processes (SQLAlchemy pools must not cross a fork).
preload_app = False
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
# The path without its query string and no referrer: a grid filtered by an ID
# number carries the number in the query (?_flt_0_person=3201...), and the access
# log must not keep it in clear (docs/deploy-security.md, section 3).
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)s "%(a)s"'

errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def post_worker_init(worker):
    """The app's own warnings (database unavailable, Redis unreachable, failed jobs)
    go to gunicorn's error log: a daemonized worker has no stderr to print them on."""
    import logging

    app_log = logging.getLogger("app")
    for handler in logging.getLogger("gunicorn.error").handlers:
        if handler not in app_log.handlers:
            app_log.addHandler(handler)
    app_log.setLevel(logging.INFO)
    app_log.propagate = False
