#!/usr/bin/env bash
# Installs the Home Assistant pinned in examples/home-assistant/requirements.txt into .cache/home-assistant/venv
# (once, from PyPI, about 5 minutes; re-installed from scratch only when the pins change) and prints the hass
# executable's path. Needs Python 3.11 or 3.12 with venv ($PYTHON, default python3). Used by
# tests/test_home_assistant_real.py.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/home-assistant
pins=examples/home-assistant/requirements.txt
PY=${PYTHON:-python3}
if ! cmp -s "$pins" "$dest/requirements.txt" || [ ! -x "$dest/venv/bin/hass" ]; then
  rm -rf "$dest"
  mkdir -p "$dest"
  "$PY" -m venv "$dest/venv"
  "$dest/venv/bin/pip" install -q --disable-pip-version-check -r "$pins" >&2
  cp "$pins" "$dest/requirements.txt"  # last: an interrupted install is redone on the next run
fi
echo "$PWD/$dest/venv/bin/hass"
