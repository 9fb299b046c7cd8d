#!/usr/bin/env bash
# Installs attendance-daemon as a systemd service on a Debian/Raspberry Pi OS box, with a local mosquitto.
# Usage (as root, from the checkout):  bash deploy/install.sh [--device-id ID] [--password PASS]
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)
DEVICE_ID=$(hostname | tr '[:upper:]' '[:lower:]' | sed 's/[^a-z0-9_-]/-/g')
PASSWORD=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device-id) DEVICE_ID=$2; shift 2 ;;
    --password) PASSWORD=$2; shift 2 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
[ -n "$PASSWORD" ] || PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends python3-venv mosquitto mosquitto-clients >/dev/null

id attendance >/dev/null 2>&1 || useradd --system --home /var/lib/attendance-daemon --shell /usr/sbin/nologin attendance
usermod -aG video attendance

install -d /opt/attendance-daemon
rm -rf /opt/attendance-daemon/src && cp -r "$SRC" /opt/attendance-daemon/src
rm -rf /opt/attendance-daemon/src/{.venv,.cache,.git,data}
[ -x /opt/attendance-daemon/venv/bin/python ] || python3 -m venv /opt/attendance-daemon/venv
V=/opt/attendance-daemon/venv/bin
$V/pip install -q --upgrade pip
$V/pip install -q -r "$SRC/requirements.txt"
$V/pip install -q --no-deps -r "$SRC/requirements-nodeps.txt"
$V/pip install -q --no-deps /opt/attendance-daemon/src

install -d -m 0750 -o root -g attendance /etc/attendance-daemon
if [ ! -f /etc/attendance-daemon/config.toml ]; then
  sed -e "s/^# device_id = .*/device_id = \"$DEVICE_ID\"/" \
      -e "s/^# username = .*/username = \"$DEVICE_ID\"/" \
      -e "s/^# password = .*/password = \"$PASSWORD\"/" \
      "$SRC/config/attendance-daemon.toml" > /etc/attendance-daemon/config.toml
  chgrp attendance /etc/attendance-daemon/config.toml
  chmod 0640 /etc/attendance-daemon/config.toml
fi

install -m 0644 "$SRC/deploy/mosquitto-attendance.conf" /etc/mosquitto/conf.d/attendance.conf
install -m 0644 "$SRC/deploy/mosquitto-attendance.acl" /etc/mosquitto/attendance.acl
touch /etc/mosquitto/attendance.passwd
chmod 0640 /etc/mosquitto/attendance.passwd
chgrp mosquitto /etc/mosquitto/attendance.passwd 2>/dev/null || true
mosquitto_passwd -b /etc/mosquitto/attendance.passwd "$DEVICE_ID" "$PASSWORD"

install -m 0644 "$SRC/systemd/attendance-daemon.service" /etc/systemd/system/attendance-daemon.service
systemctl daemon-reload
systemctl restart mosquitto
systemctl enable --now attendance-daemon
echo "installed: device id '$DEVICE_ID', MQTT user '$DEVICE_ID' (password in /etc/attendance-daemon/config.toml)"
runuser -u attendance -- $V/attendance-daemon --config /etc/attendance-daemon/config.toml check --camera \
  || echo "warning: some checks failed (see above); the service is installed and will retry" >&2
echo "check:     systemctl status attendance-daemon; mosquitto_sub -u $DEVICE_ID -P '<password>' -t 'attendance/$DEVICE_ID/#' -v"
