#!/usr/bin/env bash
# Re-takes the console's screenshots in docs/img/node-red-console-*.png (1280x800): runs the console test (real
# mosquitto, the daemon, Node-RED from npm, Debian's chromium and chromium-driver, installed when missing as root),
# which saves each page as it clicks through it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
bash scripts/apt-install-missing.sh chromium chromium-driver
CONSOLE_SCREENSHOTS=1 .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_node_red_console.py
echo "wrote docs/img/node-red-console-*.png"
