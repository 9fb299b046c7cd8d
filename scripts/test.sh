#!/usr/bin/env bash
# The test command: set up (idempotent), lint, type-check, run the whole suite against a real mosquitto.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
