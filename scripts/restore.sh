#!/usr/bin/env bash
# Restore a backup made by scripts/backup.sh into a NEW database (never over the old one).
#
# PostgreSQL, to a moment (point-in-time recovery):
#   scripts/restore.sh pg BACKUP WALDIR NEW_PGDATA PORT [TARGET_TIME] [UPLOAD_DIR] [LIVE_UPLOADS]
#     copies BACKUP/base to NEW_PGDATA, replays the archived WAL from WALDIR up
#     to TARGET_TIME (recovery_target_time, e.g. '2026-12-06 16:04:00+08'; empty:
#     all of it), promotes, starts the server on PORT and prints its URL.
#     LIVE_UPLOADS: an uploads folder that survived (or its latest rsync copy);
#     the files uploaded after the base backup are added from it.  Uploaded
#     files are content-addressed and never changed, so nothing is overwritten.
# SQLite:
#   scripts/restore.sh sqlite BACKUP NEW_DB_FILE [UPLOAD_DIR]
# Uploads are unpacked into UPLOAD_DIR (must be empty or missing).  The keys
# (backed up apart) go back to AUDIT_KEY_FILE / DATA_KEY_FILE by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:?usage: see the head of scripts/restore.sh}"
unpack_uploads() {  # $1 backup, $2 upload dir
  [ -n "${2:-}" ] || return 0
  mkdir -p "$2"
  [ -z "$(ls -A "$2")" ] || { echo "restore: $2 is not empty" >&2; exit 2; }
  tar -C "$2" -xzf "$1/uploads.tar.gz"
}
case "$kind" in
  pg)
    BK="$2"; WAL=$(cd "$3" && pwd); NEW="$4"; PORT="$5"; TARGET="${6:-}"; UP="${7:-}"; LIVE="${8:-}"
    [ ! -e "$NEW" ] || { echo "restore: $NEW exists; restore into a new directory" >&2; exit 2; }
    BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    RUN=""; [ "$(id -u)" = 0 ] && RUN="runuser -u postgres --"
    cp -a "$BK/base" "$NEW"
    rm -f "$NEW/postmaster.pid" "$NEW/standby.signal"
    {
      echo "restore_command = 'cp $WAL/%f %p'"
      [ -n "$TARGET" ] && echo "recovery_target_time = '$TARGET'"
      echo "recovery_target_action = 'promote'"
      echo "archive_mode = off"
    } >> "$NEW/postgresql.auto.conf"
    touch "$NEW/recovery.signal"
    chmod 700 "$NEW"
    [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$NEW"
    $RUN "$BIN/pg_ctl" -D "$NEW" -l "$NEW/server.log" -w -t 300 \
      -o "-p $PORT -k /tmp -c listen_addresses=127.0.0.1" start >/dev/null
    # wait for the end of recovery (promotion)
    for _ in $(seq 1 600); do
      [ "$($RUN "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -Atc 'select pg_is_in_recovery()' postgres 2>/dev/null)" = f ] && break
      sleep 0.5
    done
    [ "$($RUN "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -Atc 'select pg_is_in_recovery()' postgres)" = f ] \
      || { echo "restore: recovery did not finish, see $NEW/server.log" >&2; exit 1; }
    unpack_uploads "$BK" "$UP"
    if [ -n "$UP" ] && [ -n "$LIVE" ] && [ -d "$LIVE" ]; then cp -a -n "$LIVE/." "$UP/"; fi
    echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/"
    ;;
  sqlite)
    BK="$2"; NEW="$3"; UP="${4:-}"
    [ ! -e "$NEW" ] || { echo "restore: $NEW exists" >&2; exit 2; }
    mkdir -p "$(dirname "$NEW")"
    python3 - "$BK/ce_hours.db" "$NEW" <<'PY'
import sqlite3, sys
src = sqlite3.connect(sys.argv[1]); dst = sqlite3.connect(sys.argv[2])
with dst:
    src.backup(dst)
ok = dst.execute("PRAGMA integrity_check").fetchone()[0]
sys.exit(0 if ok == "ok" else "restore: integrity_check: " + ok)
PY
    unpack_uploads "$BK" "$UP"
    echo "sqlite:///$NEW"
    ;;
  *) echo "restore: first argument is pg or sqlite" >&2; exit 2 ;;
esac
