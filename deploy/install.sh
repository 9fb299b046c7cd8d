#!/usr/bin/env bash
# Installs or upgrades attendance-daemon as a systemd service on a Debian/Raspberry Pi OS box, with a local mosquitto.
# Usage (as root, from the checkout):
#   bash deploy/install.sh [--device-id ID] [--password PASS] [--offline] [--wheels DIR]
#                          [--central HOST:PORT [--central-user U --central-password P]
#                           [--central-cafile F [--central-insecure]] [--central-certfile F --central-keyfile F]
#                           [--no-try-private]]
# --central bridges the box's local mosquitto to a central broker (docs/fleet.md): the config is rendered
# by attendance_daemon.mqtt.bridge into /etc/mosquitto/conf.d/attendance-bridge.conf (kept on a re-run without it).
# Re-running it upgrades in place: the configured device id and MQTT password are kept unless given; the new
# release (source + venv) is built next to the running one and swapped in only once it is complete; then the
# daemon is restarted. --offline never contacts a package index: the wheels come from the box's own wheel cache
# (/opt/attendance-daemon/wheels, filled by every install) and from --wheels DIR (made with `pip wheel`).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)
PREFIX=/opt/attendance-daemon
CONF_DIR=/etc/attendance-daemon
CONF=$CONF_DIR/config.toml
PASSWD=/etc/mosquitto/attendance.passwd
DEVICE_ID=""
PASSWORD=""
OFFLINE=0
EXTRA_WHEELS=()
BRIDGE=()
while [ $# -gt 0 ]; do
  case "$1" in
    --device-id) DEVICE_ID=$2; shift 2 ;;
    --password) PASSWORD=$2; shift 2 ;;
    --offline) OFFLINE=1; shift ;;
    --wheels) EXTRA_WHEELS+=(--find-links "$(realpath "$2")"); shift 2 ;;
    --central) BRIDGE+=(--central "$2"); shift 2 ;;
    --central-user) BRIDGE+=(--username "$2"); shift 2 ;;
    --central-password) BRIDGE+=(--password "$2"); shift 2 ;;
    --central-cafile) BRIDGE+=(--cafile "$(realpath "$2")"); shift 2 ;;
    --central-certfile) BRIDGE+=(--certfile "$(realpath "$2")"); shift 2 ;;
    --central-keyfile) BRIDGE+=(--keyfile "$(realpath "$2")"); shift 2 ;;
    --central-insecure) BRIDGE+=(--insecure); shift ;;
    --no-try-private) BRIDGE+=(--no-try-private); shift ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
cfg() { python3 "$SRC/deploy/mqtt_config.py" "$@"; }

# System packages, only when missing: a re-run needs no apt index.
need=()
for pkg in python3-venv mosquitto mosquitto-clients fonts-dejavu-core fonts-noto-core fonts-droid-fallback; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  [ "$OFFLINE" = 0 ] || { echo "--offline: missing Debian packages: ${need[*]}" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Identity: an existing config's device id, user and password are kept unless given (re-running the README's
# command must not hand mosquitto a new password the daemon does not know).
OLD_USER=""
USERNAME=""
if [ -f "$CONF" ]; then
  OLD_USER=$(cfg get "$CONF" username)
  [ -n "$DEVICE_ID" ] || { DEVICE_ID=$(cfg get "$CONF" device_id); USERNAME=$OLD_USER; }
  [ -n "$PASSWORD" ] || PASSWORD=$(cfg get "$CONF" password)
fi
[ -n "$DEVICE_ID" ] || DEVICE_ID=$(hostname | tr '[:upper:]' '[:lower:]' | sed 's/[^a-z0-9_-]/-/g')
[ -n "$USERNAME" ] || USERNAME=$DEVICE_ID
[ -n "$PASSWORD" ] || PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')

id attendance >/dev/null 2>&1 || useradd --system --home /var/lib/attendance-daemon --shell /usr/sbin/nologin attendance
usermod -aG video attendance

# Build the new release completely before touching the running one.
install -d "$PREFIX/releases" "$PREFIX/wheels"
REL=$PREFIX/releases/$(date -u +%Y%m%dT%H%M%SZ)
[ ! -e "$REL" ] || REL=$REL-$$
SWAPPED=0
cleanup() { [ "$SWAPPED" = 1 ] || { rm -rf "$REL"; echo "install failed; the installed release is unchanged" >&2; }; }
trap cleanup EXIT
install -d "$REL/src"
tar -C "$SRC" --exclude=./.venv --exclude=./.cache --exclude=./.git --exclude=./data --exclude='*.egg-info' \
    --exclude=./build --exclude=__pycache__ -cf - . | tar -C "$REL/src" -xf -
"${PYTHON:-python3}" -m venv "$REL/venv"  # PYTHON=python3.11 where python3 is older (Jetson, Ubuntu 22.04)
V=$REL/venv/bin
W=$PREFIX/wheels
INDEX=()
[ "$OFFLINE" = 0 ] || INDEX=(--no-index)
# Every wheel the release needs goes into the box's wheel cache first (what makes an offline reinstall work),
# then the venv is installed from that cache alone.
"$V"/pip wheel -q "${INDEX[@]}" --find-links "$W" "${EXTRA_WHEELS[@]}" -w "$W" setuptools wheel
"$V"/pip wheel -q "${INDEX[@]}" --find-links "$W" "${EXTRA_WHEELS[@]}" -w "$W" -r "$REL/src/requirements.txt"
"$V"/pip wheel -q "${INDEX[@]}" --find-links "$W" "${EXTRA_WHEELS[@]}" -w "$W" --no-deps \
    -r "$REL/src/requirements-nodeps.txt"
"$V"/pip wheel -q --no-index --find-links "$W" -w "$REL/dist" --no-deps "$REL/src"
"$V"/pip install -q --no-index --find-links "$W" -r "$REL/src/requirements.txt"
"$V"/pip install -q --no-index --find-links "$W" --no-deps -r "$REL/src/requirements-nodeps.txt"
"$V"/pip install -q --no-index --no-deps "$REL"/dist/*.whl
"$V"/python -c "import face_recognition, attendance_daemon.cli.daemon_cli, attendance_daemon.recognition.detect as d; d.blazeface_model_path()"

# Configuration (kept on upgrade; only the given identity is written into it).
install -d -m 0750 -o root -g attendance "$CONF_DIR"
if [ ! -f "$CONF" ]; then
  install -m 0640 -o root -g attendance "$SRC/config/attendance-daemon.toml" "$CONF"
  OLD_USER=""
fi
[ "$(cfg get "$CONF" device_id)" = "$DEVICE_ID" ] || cfg set "$CONF" device_id "$DEVICE_ID"
[ "$(cfg get "$CONF" username)" = "$USERNAME" ] || cfg set "$CONF" username "$USERNAME"
[ "$(cfg get "$CONF" password)" = "$PASSWORD" ] || cfg set "$CONF" password "$PASSWORD"

install -m 0644 "$SRC/deploy/mosquitto-attendance.conf" /etc/mosquitto/conf.d/attendance.conf
install -m 0644 "$SRC/deploy/mosquitto-attendance.acl" /etc/mosquitto/attendance.acl
touch "$PASSWD"
chmod 0640 "$PASSWD"
chgrp mosquitto "$PASSWD" 2>/dev/null || true
mosquitto_passwd -b "$PASSWD" "$USERNAME" "$PASSWORD"
if [ -n "$OLD_USER" ] && [ "$OLD_USER" != "$USERNAME" ]; then
  mosquitto_passwd -D "$PASSWD" "$OLD_USER" || true
fi
# The bridge to the central broker: rendered by the release's own code (the same renderer the tests run
# mosquitto with); it holds the central password, so only root and mosquitto read it.
if [ ${#BRIDGE[@]} -gt 0 ]; then
  "$V"/python -m attendance_daemon.mqtt.bridge --device-id "$DEVICE_ID" "${BRIDGE[@]}" > "$REL/attendance-bridge.conf"
  install -m 0640 -g mosquitto "$REL/attendance-bridge.conf" /etc/mosquitto/conf.d/attendance-bridge.conf
  rm -f "$REL/attendance-bridge.conf"
fi

# Swap: the `current` symlink moves atomically to the new release; venv/ and src/ point through it.
ln -sfn "releases/$(basename "$REL")" "$PREFIX/current.new"
mv -Tf "$PREFIX/current.new" "$PREFIX/current"
SWAPPED=1
for d in venv src; do
  if [ -d "$PREFIX/$d" ] && [ ! -L "$PREFIX/$d" ]; then rm -rf "${PREFIX:?}/$d"; fi  # layout before releases/
  ln -sfn "current/$d" "$PREFIX/$d"
done
# Keep the new and the previous release (to roll back: point `current` at it and restart).
others=()
for r in "$PREFIX"/releases/*; do [ "$r" = "$REL" ] || others+=("$r"); done  # sorted: oldest first
[ ${#others[@]} -le 1 ] || rm -rf "${others[@]:0:${#others[@]}-1}"

install -m 0644 "$SRC/systemd/attendance-daemon.service" /etc/systemd/system/attendance-daemon.service
systemctl daemon-reload
systemctl restart mosquitto
systemctl enable attendance-daemon
# A running daemon is restarted, so an upgrade runs the new code (a running session ends as `stopped`).
systemctl restart attendance-daemon
echo "installed $(basename "$REL"): device id '$DEVICE_ID', MQTT user '$USERNAME' (password in $CONF)"
runuser -u attendance -- "$PREFIX/venv/bin/attendance-daemon" --config "$CONF" check --camera \
  || echo "warning: some checks failed (see above); the service is installed and will retry" >&2
echo "check:     systemctl status attendance-daemon; mosquitto_sub -u $USERNAME -P '<password>' -t 'attendance/$DEVICE_ID/#' -v"
