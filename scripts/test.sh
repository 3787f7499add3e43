#!/usr/bin/env bash
# Install everything and run the whole test suite on SQLite, then on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
bash scripts/venv.sh requirements-dev.txt
PY=.venv/bin/python
echo "== import contracts (.importlinter: layers, no circles) =="
.venv/bin/lint-imports .importlinter
echo "== tests on SQLite =="
$PY -m pytest -q -n 2 -p no:cacheprovider "$@" tests
echo "== tests on PostgreSQL =="
PGURL=$(bash scripts/pg.sh start)
trap 'bash scripts/pg.sh stop' EXIT
TEST_DATABASE_URL="$PGURL" $PY -m pytest -q -n 2 -p no:cacheprovider "$@" tests
