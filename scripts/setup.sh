#!/usr/bin/env bash
# Sets up a fresh machine: system packages (as root), a venv in .venv with the package and its models.
# Idempotent: a second run only checks. Nothing is downloaded at run time after this.
set -euo pipefail
cd "$(dirname "$0")/.."
# fonts: the PDF report embeds them so any student's name prints (see attendance_daemon/attendance/pdffonts.py)
bash scripts/apt-install-missing.sh mosquitto mosquitto-clients ffmpeg fonts-dejavu-core fonts-noto-core \
  fonts-droid-fallback
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/pip install -q -r requirements.txt -r requirements-dev.txt -r requirements-hub.txt
.venv/bin/pip install -q --no-deps -r requirements-nodeps.txt
.venv/bin/pip install -q --no-deps -e .
.venv/bin/python -c "import face_recognition, attendance_daemon.recognition.detect as d; print('models ok:', d.blazeface_model_path().name)"
