#!/usr/bin/env bash
# Install everything and run the whole test suite on SQLite, then on PostgreSQL,
# then the production-stack tests and fault drills (tests/stack: nginx, gunicorn,
# PostgreSQL, Redis, rq workers started by scripts/stack.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
bash scripts/venv.sh requirements-dev.txt
# == npm packages of the tests: the OpenID Connect provider (oidc-provider) that
# tests/test_portal_login*.py start and stop on loopback (tests/portal/fixtures.py).
npm ci --prefix tests/oidc --no-audit --no-fund --loglevel=error
# axe-core for the accessibility browser tests (tests/test_a11y_browser.py), pinned by
# tests/a11y/package-lock.json and handed to the browser from these files.
npm ci --prefix tests/a11y --no-audit --no-fund --loglevel=error
PY=.venv/bin/python
# Each stage is bounded (timeout): a test that waits for a lock its own process holds
# fails the run in minutes instead of using up CI's 90.
echo "== import contracts (.importlinter: layers, no circles) =="
.venv/bin/lint-imports .importlinter
echo "== tests on SQLite =="
timeout 1800 $PY -m pytest -q -n 2 -p no:cacheprovider "$@" tests
echo "== tests on PostgreSQL =="
PGURL=$(bash scripts/pg.sh start)
trap 'bash scripts/pg.sh stop' EXIT
# The axe-core page sweep checks markup, which does not depend on the database: it
# runs once, on SQLite (the keyboard flows run on both).
TEST_DATABASE_URL="$PGURL" timeout 1800 $PY -m pytest -q -n 2 -p no:cacheprovider --ignore=tests/test_a11y_browser.py "$@" tests
bash scripts/pg.sh stop
trap - EXIT

echo "== production stack: nginx -> gunicorn -> PostgreSQL, Redis, rq workers =="
# One stack for the whole stage (started and stopped by the tests' session fixture;
# stopped here too if the run is interrupted).  Bounded: a few minutes.
export STACK_DIR="${STACK_DIR:-/tmp/ce-stack}"
trap 'bash scripts/stack.sh stop' EXIT
CE_STACK_TESTS=1 timeout 1200 $PY -m pytest -q -p no:cacheprovider "$@" tests/stack
