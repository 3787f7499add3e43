#!/usr/bin/env bash
# The production shape on loopback ports, for the stack tests, the fault drills
# and bench/load.py:
#
#   nginx (reverse proxy, STACK_HTTP_PORT) -> gunicorn (2 workers x threads,
#   gunicorn.conf.py, TRUSTED_PROXY_HOPS=1) -> PostgreSQL (scripts/pg.sh, own
#   cluster, WAL archived to $STACK_DIR/wal-archive) + redis-server (limits, job
#   queue) <- two `rq worker` processes.
#
#   scripts/stack.sh start      a fresh database with the demo data; prints the URL
#   scripts/stack.sh stop       stops every process it started
#   scripts/stack.sh status
#   scripts/stack.sh redis-stop|redis-start   (the fault drills)
#
# Everything lives in $STACK_DIR (default /tmp/ce-stack): stack.env (the
# variables every process was given), pid files, logs, uploads.  Ports:
# STACK_HTTP_PORT (18080), STACK_APP_PORT (18081), STACK_REDIS_PORT (18082),
# STACK_PG_PORT (54339).  Processes: STACK_WEB_WORKERS (2), STACK_WEB_THREADS (4).
# The second factor (issue 25) is off on this stack unless STACK_MFA_ROLES names
# roles: the tests sign in as the demo accounts with their password.
# Work runs as jobs in the rq workers from small sizes on (STACK_IMPORT_INLINE_MAX_*
# 0, STACK_EXPORT_INLINE_MAX_ROWS 10, STACK_CERT_BATCH_INLINE_MAX 2), so that
# the tests see the workers do it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
D="${STACK_DIR:-/tmp/ce-stack}"
HTTP_PORT="${STACK_HTTP_PORT:-18080}"
APP_PORT="${STACK_APP_PORT:-18081}"
REDIS_PORT="${STACK_REDIS_PORT:-18082}"
PG_PORT="${STACK_PG_PORT:-54339}"
VENV="$ROOT/.venv/bin"

pg() { PGDATA_DIR="$D/pg" PGPORT_TEST="$PG_PORT" bash scripts/pg.sh "$@"; }

stop_pid() {  # stop_pid FILE [SIGNAL]: the process in FILE, waited for
  local f="$1" sig="${2:-TERM}" pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -"$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

stop() {
  [ -f "$D/nginx.conf" ] && [ -f "$D/nginx.pid" ] && \
    nginx -p "$D" -c "$D/nginx.conf" -s quit 2>/dev/null || true
  stop_pid "$D/nginx.pid"
  stop_pid "$D/gunicorn.pid"
  stop_pid "$D/rq1.pid"
  stop_pid "$D/rq2.pid"
  stop_pid "$D/redis.pid"
  [ -d "$D/pg" ] && pg stop || true
}

wait_http() {  # wait_http URL SECONDS
  local url="$1" n="$2"
  for _ in $(seq $((n * 5))); do
    "$VENV/python" - "$url" <<'EOF' && return 0
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=2).read()
except Exception:
    sys.exit(1)
EOF
    sleep 0.2
  done
  echo "stack: $url did not answer" >&2
  return 1
}

start_redis() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$D/redis" \
    --daemonize yes --pidfile "$D/redis.pid" --logfile "$D/logs/redis.log"
  for _ in $(seq 100); do
    [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.1
  done
  echo "stack: redis-server did not start on port $REDIS_PORT (see $D/logs/redis.log)" >&2
  return 1
}

case "${1:-start}" in
stop) stop; exit 0 ;;
redis-stop) stop_pid "$D/redis.pid"; exit 0 ;;   # the fault drills
redis-start) start_redis; exit 0 ;;
status)
  for n in nginx gunicorn rq1 rq2 redis; do
    if [ -f "$D/$n.pid" ] && kill -0 "$(cat "$D/$n.pid")" 2>/dev/null; then echo "$n up"; else echo "$n down"; fi
  done
  exit 0 ;;
start) ;;
*) echo "usage: $0 start|stop|status|redis-stop|redis-start" >&2; exit 2 ;;
esac

stop
mkdir -p "$D"
rm -rf "$D/var" "$D/logs" "$D/nginx-tmp"
mkdir -p "$D/var/uploads" "$D/logs" "$D/nginx-tmp" "$D/redis"
chmod 1777 "$D/nginx-tmp"  # nginx's workers (www-data when started as root) buffer uploads there

# 1. PostgreSQL (own cluster) and a fresh database
BASE_URL=$(pg start)
DB_URL="${BASE_URL%/*}/ce_stack"
"$VENV/python" - "$BASE_URL" <<'EOF'
import sys
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
eng = create_engine(make_url(sys.argv[1]).set(database="postgres"), isolation_level="AUTOCOMMIT")
with eng.connect() as c:
    c.execute(text('DROP DATABASE IF EXISTS ce_stack WITH (FORCE)'))
    c.execute(text('CREATE DATABASE ce_stack'))
EOF

# 1b. continuous WAL archiving, as in production (point-in-time recovery:
# scripts/backup.sh, scripts/restore.sh, docs/deploy-security.md).  Kept in the
# cluster's postgresql.auto.conf, so a restart (the fault drills) keeps it.
WAL_DIR="$D/wal-archive"
rm -rf "$WAL_DIR"; mkdir -p "$WAL_DIR"
[ "$(id -u)" = 0 ] && chown postgres "$WAL_DIR"
"$VENV/python" - "$BASE_URL" "$WAL_DIR" <<'EOF'
import sys
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
eng = create_engine(make_url(sys.argv[1]).set(database="postgres"), isolation_level="AUTOCOMMIT")
with eng.connect() as c:
    c.execute(text("ALTER SYSTEM SET archive_mode = 'on'"))
    cmd = f"test ! -f {sys.argv[2]}/%f && cp %p {sys.argv[2]}/%f".replace("'", "''")
    c.execute(text(f"ALTER SYSTEM SET archive_command = '{cmd}'"))
EOF
pg stop; pg start >/dev/null

# 2. the variables every process gets
cat >"$D/stack.env" <<EOF
DATABASE_URL=$DB_URL
REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
SECRET_KEY=stack-test-$(date +%s)-$RANDOM
CE_VAR_DIR=$D/var
UPLOAD_DIR=$D/var/uploads
TRUSTED_PROXY_HOPS=1
PUBLIC_BASE_URL=http://127.0.0.1:$HTTP_PORT
BIND=127.0.0.1:$APP_PORT
WEB_CONCURRENCY=${STACK_WEB_WORKERS:-2}
GUNICORN_THREADS=${STACK_WEB_THREADS:-4}
DB_POOL_SIZE=${STACK_WEB_THREADS:-4}
DB_MAX_OVERFLOW=2
GUNICORN_ACCESS_LOG=$D/logs/access.log
IMPORT_INLINE_MAX_BYTES=${STACK_IMPORT_INLINE_MAX_BYTES:-0}
IMPORT_INLINE_MAX_ROWS=${STACK_IMPORT_INLINE_MAX_ROWS:-0}
EXPORT_INLINE_MAX_ROWS=${STACK_EXPORT_INLINE_MAX_ROWS:-10}
CERT_BATCH_INLINE_MAX=${STACK_CERT_BATCH_INLINE_MAX:-2}
NATIONAL_FEED_LAG_SECONDS=0
MFA_ROLES=${STACK_MFA_ROLES:-}
DEMO=1
STACK_DIR=$D
STACK_URL=http://127.0.0.1:$HTTP_PORT
STACK_APP_URL=http://127.0.0.1:$APP_PORT
STACK_PG_PORT=$PG_PORT
STACK_REDIS_PORT=$REDIS_PORT
WAL_ARCHIVE_DIR=$WAL_DIR
EOF
set -a; . "$D/stack.env"; set +a

"$VENV/flask" --app run.py ce init --demo >"$D/logs/init.log" 2>&1

# 3. Redis
start_redis

# 4. two RQ workers (each forks a work-horse per job)
for n in 1 2; do
  setsid "$VENV/rq" worker ce-jobs --url "$REDIS_URL" --name "ce-stack-w$n-$$" --path "$ROOT" \
    --worker-class app.worker.PreloadedWorker \
    >"$D/logs/rq$n.log" 2>&1 < /dev/null &
  echo $! >"$D/rq$n.pid"
done

# 5. gunicorn (gunicorn.conf.py reads BIND, WEB_CONCURRENCY, GUNICORN_THREADS)
"$VENV/gunicorn" -c gunicorn.conf.py --no-control-socket --chdir "$ROOT" --pid "$D/gunicorn.pid" --daemon \
  --error-logfile "$D/logs/gunicorn.log" 'run:app'

# 6. nginx in front
SOCK_USER=""
[ "$(id -u)" = 0 ] && SOCK_USER="user www-data;"
cat >"$D/nginx.conf" <<EOF
$SOCK_USER
worker_processes 1;
pid $D/nginx.pid;
error_log $D/logs/nginx-error.log warn;
daemon on;
events { worker_connections 1024; }
http {
  include /etc/nginx/mime.types;
  access_log off;
  client_body_temp_path $D/nginx-tmp/body;
  proxy_temp_path $D/nginx-tmp/proxy;
  fastcgi_temp_path $D/nginx-tmp/fastcgi;
  uwsgi_temp_path $D/nginx-tmp/uwsgi;
  scgi_temp_path $D/nginx-tmp/scgi;
  upstream ce_app { server 127.0.0.1:$APP_PORT; keepalive 32; }
  server {
    listen 127.0.0.1:$HTTP_PORT;
    client_max_body_size 64m;
    location / {
      proxy_pass http://ce_app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_read_timeout 130s;
    }
  }
}
EOF
nginx -p "$D" -c "$D/nginx.conf"

wait_http "http://127.0.0.1:$APP_PORT/health" 60
wait_http "http://127.0.0.1:$HTTP_PORT/health" 20
echo "http://127.0.0.1:$HTTP_PORT"
