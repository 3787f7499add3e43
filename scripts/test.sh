#!/usr/bin/env bash
# Install everything and run the whole test suite on SQLite, then on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
bash scripts/venv.sh requirements-dev.txt
PY=.venv/bin/python
echo "== tests on SQLite =="
$PY -m pytest -q -n 2 -p no:cacheprovider "$@" tests
echo "== tests on PostgreSQL =="
PGURL=$(bash scripts/pg.sh start)
trap 'bash scripts/pg.sh stop' EXIT
TEST_DATABASE_URL="$PGURL" $PY -m pytest -q -n 2 -p no:cacheprovider "$@" tests

# ---- Backup / restore drill (issue 26): its own PostgreSQL cluster with WAL
# archiving on ports ${CE_DRILL_PORT:-52600}/+1, a base backup, a mistaken bulk
# revoke, a point-in-time restore into a new cluster; ~2-3 minutes.
echo "== backup and point-in-time restore drill =="
$PY -m pytest -q -p no:cacheprovider -s tests/drill_backup.py
