"""attendancectl as a user runs it, and the deploy/ broker config (passwords + per-device ACL) for real."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from attendance_daemon.mqtt.client import ApiClient
from attendance_daemon.mqtt.uploader import UPLOAD_LEAVES, upload
from tests.mqtt_fixtures import Broker, free_port

REPO = Path(__file__).resolve().parent.parent


def ctl(broker: Broker, device: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from attendance_daemon.cli.ctl import main; main()",
                           "--port", str(broker.port), "--device", device, "--timeout", "20", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def test_attendancectl_session(broker: Broker, daemon_factory: Any, ground_truth: dict[str, Any]) -> None:
    d = daemon_factory().start()
    assert json.loads(ctl(broker, d.device, "status").stdout)["mode"] == "idle"
    proc = ctl(broker, d.device, "pause")
    assert proc.returncode == 1 and "409: not running: cannot pause while idle" in proc.stderr
    proc = ctl(broker, d.device, "start-mp4", "classroom.mp4", "--section", "demo", "--name", "ctl", "--watch")
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert results["name"] == "ctl" and results["status"] == "completed"
    assert sorted(p["student_id"] for p in results["present"]) == ground_truth["present"]
    assert json.loads(ctl(broker, d.device, "results").stdout)["session_id"] == results["session_id"]
    assert json.loads(ctl(broker, d.device, "sections").stdout) == [{"section": "demo", "students": 8}]
    listing = json.loads(ctl(broker, d.device, "sessions", "--status", "completed").stdout)
    assert [s["name"] for s in listing] == ["ctl"]
    report = json.loads(ctl(broker, d.device, "report", results["session_id"], "--format", "csv").stdout)
    assert Path(report["path"]).is_file()
    proc = ctl(broker, d.device, "start-mp4", "../secret.mp4", "--section", "demo")
    assert proc.returncode == 1 and "403" in proc.stderr and "Traceback" not in proc.stderr


def test_ctl_fails_fast_when_the_device_is_offline_or_unknown(broker: Broker, daemon_factory: Any) -> None:
    t0 = time.monotonic()
    proc = ctl(broker, "no-such-device", "status")  # --timeout 20: must not be waited out
    assert proc.returncode == 1 and "device 'no-such-device' is unknown on this broker" in proc.stderr
    assert time.monotonic() - t0 < 12
    d = daemon_factory().start()
    d.stop()  # a clean stop publishes `offline` retained
    t0 = time.monotonic()
    proc = ctl(broker, d.device, "pause")
    assert proc.returncode == 1 and f"device '{d.device}' is offline" in proc.stderr, proc.stderr
    assert time.monotonic() - t0 < 12 and "Traceback" not in proc.stderr


def test_ctl_enroll_and_remove_student(broker: Broker, daemon_factory: Any, sample: dict[str, Any]) -> None:
    d = daemon_factory().start()
    enrollment = Path(sample["enrollment"])
    image = sorted(enrollment.rglob("*.jpg"))[0].relative_to(enrollment)
    proc = ctl(broker, d.device, "enroll", "--section", "extra", "--student-id", "X1", "--name", "Zoë Ñandú",
               str(image))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["encodings_added"] == 1
    students = json.loads(ctl(broker, d.device, "students", "--section", "extra").stdout)
    assert [(s["student_id"], s["name"]) for s in students] == [("X1", "Zoë Ñandú")]
    proc = ctl(broker, d.device, "enroll", "--section", "extra", "--student-id", "X2", "--name", "Nobody",
               "missing.jpg")
    assert proc.returncode == 1 and "no image was accepted" in proc.stderr and "file not found" in proc.stderr
    proc = ctl(broker, d.device, "remove-student", "--section", "extra", "--student-id", "X1")
    assert proc.returncode == 0 and json.loads(proc.stdout) == {"removed": True}
    proc = ctl(broker, d.device, "remove-student", "--section", "extra", "--student-id", "X1")
    assert proc.returncode == 1 and "404" in proc.stderr


def test_ctl_reports_an_unreachable_broker() -> None:
    proc = subprocess.run([sys.executable, "-c", "from attendance_daemon.cli.ctl import main; main()",
                           "--port", str(free_port()), "status"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 1 and "cannot reach the MQTT broker" in proc.stderr


@pytest.fixture
def secured_broker(tmp_path: Path) -> Iterator[Broker]:
    """mosquitto with deploy/'s ACL and a password file made by mosquitto_passwd."""
    broker = Broker.with_passwords(tmp_path, {"room-1": "pw1", "room-2": "pw2", "dashboard": "dash"},
                                   REPO / "deploy" / "mosquitto-attendance.acl")
    yield broker
    broker.stop()


def _retained(port: int, user: str, password: str, pattern: str, wait_s: float = 2.0) -> dict[str, bytes]:
    got: dict[str, bytes] = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, password)
    client.on_connect = lambda c, *a: c.subscribe(pattern, qos=1)
    client.on_message = lambda c, u, m: got.__setitem__(m.topic, bytes(m.payload))
    client.connect("127.0.0.1", port)
    client.loop_start()
    time.sleep(wait_s)
    client.disconnect()
    client.loop_stop()
    return got


def test_password_and_acl_confine_each_device(secured_broker: Broker, daemon_factory: Any,
                                              daemon_media: Path) -> None:
    """The shipped ACL, enforced by mosquitto: devices confined to their own topics (and their own HA discovery
    configs), the dashboard user reads and commands every device."""
    port = secured_broker.port
    for room, pw in (("room-1", "pw1"), ("room-2", "pw2")):
        daemon_factory(device=room, mqtt_extra=f'username = "{room}"\npassword = "{pw}"\n',
                       on=secured_broker).start(wait=False)
    with ApiClient("127.0.0.1", port, "room-1", username="room-1", password="pw1") as owner:
        owner.wait_for("availability", lambda v: v == "online", timeout=60)
        assert owner.request("status")["data"]["mode"] == "idle"
    # another device's user can neither see nor command room-1
    with ApiClient("127.0.0.1", port, "room-1", username="room-2", password="pw2") as other:
        with pytest.raises(TimeoutError):
            other.request("status", timeout=2)
        assert "state" not in other.latest and "availability" not in other.latest
    # ... nor overwrite room-1's Home Assistant discovery config, nor read any
    evil = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    evil.username_pw_set("room-2", "pw2")
    evil.connect("127.0.0.1", port)
    evil.loop_start()
    evil.publish("homeassistant/sensor/room-1/mode/config", b'{"name":"hijacked"}', qos=1, retain=True)
    evil.publish("attendance/room-1/request/stop", b"{}", qos=1)
    time.sleep(0.5)
    evil.disconnect()
    evil.loop_stop()
    assert _retained(port, "room-2", "pw2", "homeassistant/#", wait_s=1.0) == {}
    # the fleet dashboard reads and commands both devices (one connection at a time: one per user)
    for room in ("room-1", "room-2"):
        with ApiClient("127.0.0.1", port, room, username="dashboard", password="dash") as dash:
            dash.wait_for("availability", lambda v: v == "online", timeout=60)
            assert dash.wait_for("state", lambda s: True)["mode"] == "idle"
            sid = dash.request("start_mp4", {"path": "long.mp4", "section": "demo"})["data"]["session"]["id"]
            assert dash.request("stop", {"session_id": sid})["data"]["mode"] == "idle"
    # the dashboard user may upload (raw chunks under attendance/<device>/upload/), and so the box receives them
    with ApiClient("127.0.0.1", port, "room-1", username="dashboard", password="dash", leaves=UPLOAD_LEAVES) as up:
        media = upload(up, daemon_media / "classroom.mp4", name="acl-upload.mp4")
        assert media["bytes"] == (daemon_media / "classroom.mp4").stat().st_size
        assert up.request("delete_media", {"name": "acl-upload.mp4"})["data"]["deleted"] is True
    configs = _retained(port, "dashboard", "dash", "homeassistant/#")
    assert {t.split("/")[2] for t in configs} == {"room-1", "room-2"}  # each device wrote its own
    assert json.loads(configs["homeassistant/sensor/room-1/mode/config"])["name"] == "Mode"  # not hijacked
    with pytest.raises(ConnectionRefusedError, match="refused"):
        ApiClient("127.0.0.1", port, "room-1", username="room-1", password="wrong")


def test_tls_connection_to_the_broker(tmp_path: Path, daemon_factory: Any) -> None:
    """The daemon's TLS options against a mosquitto TLS listener with a CA made here."""
    openssl = shutil.which("openssl")
    assert openssl, "openssl is part of the base system"
    ca_key, ca_crt = tmp_path / "ca.key", tmp_path / "ca.crt"
    srv_key, srv_csr, srv_crt = tmp_path / "srv.key", tmp_path / "srv.csr", tmp_path / "srv.crt"
    ext = tmp_path / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for cmd in (
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
         "-keyout", str(ca_key), "-out", str(ca_crt)],
        [openssl, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", str(srv_key),
         "-out", str(srv_csr)],
        [openssl, "x509", "-req", "-in", str(srv_csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
         "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(srv_crt)],
    ):
        subprocess.run(cmd, check=True, capture_output=True)
    tls_broker = Broker(tmp_path, extra=f"user root\ncafile {ca_crt}\ncertfile {srv_crt}\nkeyfile {srv_key}\n")
    try:
        d = daemon_factory(on=tls_broker, mqtt_extra=f'tls = true\nca_certs = "{ca_crt}"\n')
        d.start(wait=False)
        got: list[bytes] = []
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        client.tls_set(ca_certs=str(ca_crt))
        client.on_message = lambda c, u, m: got.append(bytes(m.payload))
        client.on_connect = lambda c, *a: c.subscribe(f"attendance/{d.device}/availability")
        client.connect("127.0.0.1", tls_broker.port)
        client.loop_start()
        try:
            deadline = time.monotonic() + 60
            while b"online" not in got and time.monotonic() < deadline:
                time.sleep(0.1)
            assert b"online" in got, d.log_text()[-2000:]
        finally:
            client.disconnect()
            client.loop_stop()
        # attendancectl over TLS: verified with the CA, refused without it, --insecure skips the check
        proc = ctl(tls_broker, d.device, "--tls", "--cafile", str(ca_crt), "status")
        assert proc.returncode == 0 and json.loads(proc.stdout)["mode"] == "idle", proc.stderr
        proc = ctl(tls_broker, d.device, "--tls", "status")
        assert proc.returncode == 1 and "cannot reach the MQTT broker" in proc.stderr
        assert "CERTIFICATE_VERIFY_FAILED" in proc.stderr and "Traceback" not in proc.stderr
        proc = ctl(tls_broker, d.device, "--tls", "--insecure", "status")
        assert proc.returncode == 0 and json.loads(proc.stdout)["mode"] == "idle", proc.stderr
    finally:
        tls_broker.stop()


def test_check_command_reports_each_part(broker: Broker, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f'[paths]\ndata_dir = "data"\n[mqtt]\nport = {broker.port}\n[daemon]\ndefault_camera = "7"\n')

    def check(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "attendance_daemon", "--config", str(cfg), "check", *args],
                              capture_output=True, text=True, timeout=120, check=False)

    proc = check()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()}
    assert set(lines) == {"data", "database", "detector", "encoder", "broker"}
    assert "ok" in lines["detector"] and "tflite" in lines["detector"]
    assert "accepted (MQTT 5)" in lines["broker"]
    proc = check("--camera")  # there is no camera 7 here
    assert proc.returncode == 1 and "camera    FAIL" in proc.stdout and "check failed: camera" in proc.stderr
    broker.stop()
    proc = check()
    assert proc.returncode == 1 and "broker    FAIL" in proc.stdout
