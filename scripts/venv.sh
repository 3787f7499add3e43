#!/usr/bin/env bash
# Create .venv and install the pinned Python packages ($1: requirements file).
set -euo pipefail
cd "$(dirname "$0")/.."
REQ="${1:-requirements.txt}"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r "$REQ"
# Compiled catalogs (zh default, en second).
.venv/bin/pybabel compile -d translations
