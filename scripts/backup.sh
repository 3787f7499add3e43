#!/usr/bin/env bash
# Back up the database, the uploads folder and (apart) the keys.
#
#   DATABASE_URL=... UPLOAD_DIR=... scripts/backup.sh DEST [KEYS_DEST]
#
# PostgreSQL: a base backup (pg_basebackup, plain format, WAL streamed into it)
#   into DEST/base.  Point-in-time recovery replays the WAL the server archives
#   continuously with  archive_mode=on, wal_level=replica and
#   archive_command='test ! -f WALDIR/%f && cp %p WALDIR/%f'  (docs/deploy-security.md);
#   WALDIR is kept with the backups, not on the database's disk.
# SQLite: SQLite's online backup API (a consistent copy while the app writes)
#   into DEST/ce_hours.db.
# Both: the uploads folder (proof files, import files) as DEST/uploads.tar.gz,
#   and DEST/MANIFEST (what, when, sizes, SHA-256 of each file).
# Keys (AUDIT_KEY_FILE, DATA_KEY_FILE, or VAR_DIR/*.key): copied to KEYS_DEST,
#   which must not lie under DEST: a stolen data backup must not carry its keys.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${1:?usage: scripts/backup.sh DEST [KEYS_DEST]}"
KEYS_DEST="${2:-}"
VAR_DIR="${CE_VAR_DIR:-$PWD/var}"
URL="${DATABASE_URL:-sqlite:///$VAR_DIR/ce_hours.db}"
UPLOADS="${UPLOAD_DIR:-$VAR_DIR/uploads}"
mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)
[ -z "$(ls -A "$DEST")" ] || { echo "backup: $DEST is not empty" >&2; exit 2; }
started=$(date -u +%FT%TZ)
case "$URL" in
  postgresql*)
    LIBPQ=$(printf '%s' "$URL" | sed -E 's#^postgresql\+[a-z0-9]+://#postgresql://#')
    BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    RUN=""; [ "$(id -u)" = 0 ] && { chown postgres "$DEST"; RUN="runuser -u postgres --"; }
    $RUN "$BIN/pg_basebackup" -d "$LIBPQ" -D "$DEST/base" -Fp -X stream -c fast --label "ce $started"
    [ "$(id -u)" = 0 ] && chown -R "$(id -u)" "$DEST"
    ;;
  sqlite*)
    DB="${URL#sqlite:///}"
    [ -f "$DB" ] || { echo "backup: no database file $DB" >&2; exit 2; }
    python3 - "$DB" "$DEST/ce_hours.db" <<'PY'
import sqlite3, sys
src = sqlite3.connect(sys.argv[1]); dst = sqlite3.connect(sys.argv[2])
with dst:
    src.backup(dst)
ok = dst.execute("PRAGMA integrity_check").fetchone()[0]
dst.close(); src.close()
sys.exit(0 if ok == "ok" else "backup: integrity_check: " + ok)
PY
    ;;
  *) echo "backup: unknown DATABASE_URL" >&2; exit 2 ;;
esac
if [ -d "$UPLOADS" ]; then tar -C "$UPLOADS" -czf "$DEST/uploads.tar.gz" .; else tar -czf "$DEST/uploads.tar.gz" -T /dev/null; fi
if [ -n "$KEYS_DEST" ]; then
  mkdir -p "$KEYS_DEST"; KEYS_DEST=$(cd "$KEYS_DEST" && pwd)
  case "$KEYS_DEST/" in "$DEST"/*) echo "backup: keys must be kept apart from $DEST" >&2; exit 2 ;; esac
  umask 077
  for k in "${AUDIT_KEY_FILE:-$VAR_DIR/audit_key.key}" "${DATA_KEY_FILE:-$VAR_DIR/data.key}"; do
    [ -f "$k" ] && cp -p "$k" "$KEYS_DEST/"
  done
  [ -n "${AUDIT_KEY:-}" ] && printf '%s\n' "$AUDIT_KEY" > "$KEYS_DEST/audit_key.key"
fi
{
  echo "started $started"; echo "finished $(date -u +%FT%TZ)"
  echo "database ${URL%%:*}"
  [ -d "$DEST/base" ] && echo "base $(du -sb "$DEST/base" | cut -f1) bytes"
  (cd "$DEST" && find . -path ./base -prune -o -type f ! -name MANIFEST -print0 | sort -z | xargs -0 -r sha256sum)
} > "$DEST/MANIFEST"
echo "backup: $DEST ($(du -sh "$DEST" | cut -f1))"
