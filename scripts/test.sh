#!/usr/bin/env bash
# The test command: set up (idempotent), lint, type-check, run the whole suite against a real mosquitto, then the
# deploy under a real systemd (tests/system/deploy_container.py: debootstrap + systemd-nspawn, needs root).
# Arguments select part of the main suite (pytest arguments); the container test then does not run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# PostgreSQL for the hub's tests (tests/hub_fixtures.py runs its own server on a free port)
bash scripts/apt-install-missing.sh postgresql
# the Node-RED console's test drives Debian's chromium with Debian's chromium-driver (selenium, nothing downloaded)
bash scripts/apt-install-missing.sh chromium chromium-driver
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
[ $# -eq 0 ] || exit 0
bash scripts/apt-install-missing.sh debootstrap systemd-container
.venv/bin/python -m pytest -q -p no:cacheprovider -s tests/system/deploy_container.py
