#!/usr/bin/env bash
# Install everything and run the whole test suite on SQLite, then on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
bash scripts/venv.sh requirements-dev.txt
# axe-core for the accessibility browser tests (tests/test_a11y_browser.py), pinned by
# tests/a11y/package-lock.json and handed to the browser from these files.
npm ci --prefix tests/a11y --no-audit --no-fund --loglevel=error
PY=.venv/bin/python
echo "== tests on SQLite =="
$PY -m pytest -q -n 2 -p no:cacheprovider "$@" tests
echo "== tests on PostgreSQL =="
PGURL=$(bash scripts/pg.sh start)
trap 'bash scripts/pg.sh stop' EXIT
# The axe-core page sweep checks markup, which does not depend on the database: it
# runs once, on SQLite (the keyboard flows run on both).
TEST_DATABASE_URL="$PGURL" $PY -m pytest -q -n 2 -p no:cacheprovider --ignore=tests/test_a11y_browser.py "$@" tests
