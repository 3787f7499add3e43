#!/usr/bin/env bash
# Start a throw-away PostgreSQL server for the tests (own cluster, port 54329,
# trust auth on localhost) and print its URL.  `scripts/pg.sh stop` stops it.
set -euo pipefail
PGDATA="${PGDATA_DIR:-/tmp/ce-pgdata}"
PORT="${PGPORT_TEST:-54329}"
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
RUN="runuser -u postgres --"
[ "$(id -u)" = 0 ] || RUN=""
if [ "${1:-start}" = stop ]; then
  $RUN "$BIN/pg_ctl" -D "$PGDATA" stop -m fast >/dev/null 2>&1 || true
  exit 0
fi
OPTS="-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
start() { $RUN "$BIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w -o "$OPTS" start >/dev/null; }
if ! $RUN "$BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
  # A cluster left by an earlier run (the benchmark's province lives there too)
  # is started again; a missing or broken one is made anew.
  if ! { [ -f "$PGDATA/PG_VERSION" ] && start; }; then
    rm -rf "$PGDATA"; mkdir -p "$PGDATA"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$PGDATA"
    $RUN "$BIN/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
    start
  fi
fi
echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/ce_test"
