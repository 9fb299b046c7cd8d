#!/usr/bin/env bash
# Re-takes docs/img/node-red-dashboard.png: runs the Node-RED test (real mosquitto, daemons, Node-RED from npm,
# Debian's chromium, installed when missing as root), which saves the page as rendered mid-session (paused).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
NODE_RED_SCREENSHOT=docs/img/node-red-dashboard.png .venv/bin/python -m pytest -q -p no:cacheprovider \
  tests/test_node_red.py -k drives_a_session
echo "wrote docs/img/node-red-dashboard.png"
