#!/usr/bin/env bash
# Installs the Node-RED and Dashboard 2 versions pinned in examples/node-red/package.json into
# .cache/node-red (once; re-run only when the pins change) and prints the node-red executable's path.
# Needs node >= 18 and npm. Used by tests/test_node_red.py and scripts/node-red-screenshot.sh.
# --with-chromium: also make sure Debian's chromium and chromium-driver are there (apt-get when run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --with-chromium ] && ! { command -v chromium && command -v chromedriver; } >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    bash scripts/apt-install-missing.sh chromium chromium-driver >&2
  else
    echo "node-red.sh: chromium or chromium-driver is not installed; as root: apt-get install chromium chromium-driver" >&2
    exit 1
  fi
fi
for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "node-red.sh: '$tool' is not installed (Node.js 18-22 with npm is needed)" >&2; exit 1; }
done
dest=.cache/node-red
pins=examples/node-red/package.json
mkdir -p "$dest"
if ! cmp -s "$pins" "$dest/package.json" || [ ! -x "$dest/node_modules/.bin/node-red" ]; then
  cp "$pins" "$dest/package.json"
  (cd "$dest" && npm install --no-audit --no-fund --omit=dev --loglevel=error >&2)
fi
echo "$PWD/$dest/node_modules/.bin/node-red"
