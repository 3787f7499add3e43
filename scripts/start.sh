#!/usr/bin/env bash
# Install everything and start the app with demo data on http://127.0.0.1:5000
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
bash scripts/venv.sh requirements.txt
exec .venv/bin/python run.py
