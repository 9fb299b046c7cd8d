#!/usr/bin/env bash
# The test command: set up (idempotent), lint, type-check, run the whole suite against a real mosquitto, then the
# deploy under a real systemd (tests/system/deploy_container.py: debootstrap + systemd-nspawn, needs root).
# Arguments select part of the main suite (pytest arguments); the container test then does not run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
[ $# -eq 0 ] || exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need=()
  for pkg in debootstrap systemd-container; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi
.venv/bin/python -m pytest -q -p no:cacheprovider -s tests/system/deploy_container.py
