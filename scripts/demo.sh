#!/usr/bin/env bash
# The main job on a fresh machine: set up, build the demo sample (real faces from registry packages,
# a synthetic classroom video), start a local mosquitto and the daemon, run an MP4 session over MQTT with
# a progress bar, print the results and the report, then shut everything down cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
V=.venv/bin
DEMO=${DEMO_DIR:-.cache/demo}
mkdir -p "$DEMO"
DEMO=$(cd "$DEMO" && pwd)
PORT=$($V/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

echo "== building the demo sample in $DEMO"
[ -f "$DEMO/media/classroom.mp4" ] || $V/attendance-daemon sample --out "$DEMO" --cache .cache/faces >/dev/null
cat > "$DEMO/daemon.toml" <<TOML
[paths]
data_dir = "data"
media_dir = "media"
enrollment_dir = "enrollment"
[mqtt]
port = $PORT
device_id = "demo"
TOML
$V/attendance-daemon --config "$DEMO/daemon.toml" sections | grep -q '^demo' \
  || $V/attendance-daemon --config "$DEMO/daemon.toml" enroll-bulk "$DEMO/enrollment"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

echo "== starting a local broker on 127.0.0.1:$PORT"
MOSQ=$(command -v mosquitto || echo /usr/sbin/mosquitto)
PROTOCOL=5
if [ -x "$MOSQ" ] && [ -z "${DEMO_EMBEDDED_BROKER:-}" ]; then
  printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$PORT" > "$DEMO/mosquitto.conf"
  "$MOSQ" -c "$DEMO/mosquitto.conf" > "$DEMO/mosquitto.log" 2>&1 &
else
  echo "mosquitto not installed (run as root to let setup install it); using the embedded amqtt broker"
  $V/pip install -q amqtt
  PROTOCOL=3.1.1   # amqtt speaks MQTT 3.1.1 only
  printf 'protocol = "3.1.1"\n' >> "$DEMO/daemon.toml"   # appends to the [mqtt] table
  $V/python -m attendance_daemon.demo.embedded_broker "$PORT" > "$DEMO/broker.log" 2>&1 &
fi
pids+=($!)

echo "== starting the daemon (log: $DEMO/daemon.log)"
$V/attendance-daemon --config "$DEMO/daemon.toml" run > "$DEMO/daemon.log" 2>&1 &
pids=($! "${pids[@]}")   # the daemon stops first, so it can publish 'offline' to a live broker

CTL=("$V/attendancectl" --port "$PORT" --device demo --protocol "$PROTOCOL")
for _ in $(seq 1 60); do "${CTL[@]}" --timeout 1 status >/dev/null 2>&1 && break; sleep 1; done
echo "== daemon state"
"${CTL[@]}" status
echo "== MP4 session over MQTT (attendancectl start-mp4 --watch)"
"${CTL[@]}" start-mp4 classroom.mp4 --section demo --export --watch > "$DEMO/results.json"
$V/python - "$DEMO/results.json" "$DEMO/ground_truth.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); truth = json.load(open(sys.argv[2]))["expected"]
print(f"session {r['name']}: {r['status']}, present {r['present_count']}/{r['total']}, unknown faces {r['unknowns']}")
for p in r["present"]:
    print(f"  present {p['student_id']} {p['name']:<18} seen {p['seen_s']:5.1f}s from {p['first_seen_s']:.1f}s")
for a in r["absent"]:
    print(f"  absent  {a['student_id']} {a['name']}")
print(f"export: {r['export_path']}")
ok = sorted(p["student_id"] for p in r["present"]) == truth["present"] and r["unknowns"] == truth["unknowns"]
print("matches the ground truth" if ok else f"DIFFERS from the ground truth {truth}")
sys.exit(0 if ok else 1)
PY
SID=$($V/python -c "import json,sys; print(json.load(open(sys.argv[1]))['session_id'])" "$DEMO/results.json")
echo "== report"
"${CTL[@]}" report "$SID" --format pdf
