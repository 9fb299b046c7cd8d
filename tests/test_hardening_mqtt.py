"""Hardening (issue 10, items 1-3, 9-12): hostile MQTT messages, names, cameras, client-id takeover, error
hygiene, CSV formulas and logs, against a real mosquitto and the daemon as a real process."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from attendance_daemon.contract.api import Response
from tests.mqtt_fixtures import Broker, DaemonProcess, is_discovery_topic

REPO = Path(__file__).resolve().parent.parent


class Sniffer:
    """A v5 client that sees everything on the broker (`#`), with properties, and can send raw requests."""

    def __init__(self, broker: Broker, client_id: str | None = None) -> None:
        self.got: list[tuple[str, bytes, bool, bytes | None]] = []
        self._lock = threading.Condition()
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"sniff-{uuid.uuid4().hex[:6]}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        self.client.subscribe("#", qos=1)
        assert ready.wait(5)

    def _on_message(self, client: Any, userdata: Any, m: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.got.append((m.topic, bytes(m.payload), bool(m.retain),
                             getattr(getattr(m, "properties", None), "CorrelationData", None)))
            self._lock.notify_all()

    def on(self, topic: str) -> list[tuple[str, bytes, bool, bytes | None]]:
        with self._lock:
            return [g for g in self.got if g[0] == topic]

    def send(self, topic: str, payload: bytes, response_topic: str | None = None, correlation: bytes | None = None,
             user: list[tuple[str, str]] | None = None, retain: bool = False) -> None:
        props = Properties(PacketTypes.PUBLISH)
        if response_topic is not None:
            props.ResponseTopic = response_topic
        if correlation is not None:
            props.CorrelationData = correlation
        if user:
            props.UserProperty = user
        self.client.publish(topic, payload, qos=1, retain=retain, properties=props).wait_for_publish(5)

    def wait(self, predicate: Any, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("condition not met")
                self._lock.wait(left)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _answers(s: Sniffer, topic: str) -> dict[Any, list[dict[str, Any]]]:
    out: dict[Any, list[dict[str, Any]]] = {}
    for _, payload, _, _ in s.on(topic):
        r = Response.model_validate_json(payload).model_dump()
        out.setdefault(r["transaction"], []).append(r)
    return out


# ---- 1. reply topics ----------------------------------------------------------------------------------


def test_response_topic_is_confined_and_cannot_kill_the_dispatcher(broker: Broker, daemon_factory: Any) -> None:
    d = daemon_factory().start()
    root = f"attendance/{d.device}"
    s = Sniffer(broker)
    try:
        cases: list[tuple[str, str | None, bytes | None]] = [
            ("wild", "attendance/+/x", None),                    # paho raised here: the dispatcher died
            ("hash", f"{root}/reply/#", None),
            ("elsewhere", "elsewhere/anything", b"c"),           # outside the allowed prefix
            ("avail", f"{root}/availability", None),             # the daemon's own retained topic
            ("loop", f"{root}/request/status", None),            # would answer itself forever
            ("resp", f"{root}/response/status", None),           # would be a second answer there
            ("long", f"{root}/reply/" + "x" * 400, None),
            ("bigcorr", f"{root}/reply/me", b"x" * 5000),       # correlation data above the 1 KiB bound
            ("ok", f"{root}/reply/me", b"corr-42"),
            ("plain", None, None),
        ]
        for tx, rt, corr in cases:
            s.send(f"{root}/request/status", json.dumps({"transaction": tx}).encode(), rt, corr,
                   user=[("k", "v" * 1000)])
        s.wait(lambda: len(_answers(s, f"{root}/response/status")) >= len(cases))
        time.sleep(0.5)
        answers = _answers(s, f"{root}/response/status")
        assert sorted(answers) == sorted(tx for tx, _, _ in cases)
        assert all(len(v) == 1 and v[0]["code"] == 200 for v in answers.values()), answers
        replies = s.on(f"{root}/reply/me")
        assert [(json.loads(p)["transaction"], corr) for _, p, _, corr in replies] == [("ok", b"corr-42")]
        assert not [g for g in s.got if not g[0].startswith(f"{root}/") and not is_discovery_topic(g[0])]
        assert [p for _, p, _, _ in s.on(f"{root}/availability")] == [b"online"]
        assert len(s.on(f"{root}/request/status")) == len(cases)
        assert not [g for g in s.got if g[0].startswith(f"{root}/reply/") and g[0] != f"{root}/reply/me"]
        with broker.client(d.device) as c:
            assert c.request("status")["data"]["mode"] == "idle"  # the dispatcher lives on
    finally:
        s.close()
    assert "Traceback" not in d.log_text()


def test_configured_reply_prefix(broker: Broker, daemon_factory: Any) -> None:
    d = daemon_factory(mqtt_extra='reply_prefixes = ["replies/"]\n').start()
    root = f"attendance/{d.device}"
    s = Sniffer(broker)
    try:
        s.send(f"{root}/request/status", b'{"transaction": 1}', "replies/me", b"c1")
        s.send(f"{root}/request/status", b'{"transaction": 2}', f"{root}/reply/me", b"c2")
        s.wait(lambda: len(_answers(s, f"{root}/response/status")) == 2)
        time.sleep(0.3)
        assert [corr for _, _, _, corr in s.on("replies/me")] == [b"c1"]
        assert not s.on(f"{root}/reply/me")  # only the configured prefixes
    finally:
        s.close()


# ---- 2. ids and names ---------------------------------------------------------------------------------


def test_ids_and_names_are_confined(broker: Broker, daemon_factory: Any, sample: dict[str, Any]) -> None:
    d: DaemonProcess = daemon_factory()
    legacy = uuid.uuid4().hex
    with sqlite3.connect(d.data / "attendance.sqlite3") as db:  # a session named before names were checked
        db.execute("INSERT INTO sessions(id, name, section, mode, source, status, started_at, roster_total) "
                   "VALUES (?, '../../escaped', 'demo', 'mp4', 'x.mp4', 'completed', '2024-01-01T00:00:00Z', 8)",
                   (legacy,))
    d.start()
    image = next(Path(sample["enrollment"]).glob("demo/*/*.jpg")).relative_to(sample["enrollment"])
    with broker.client(d.device) as c:
        def code(command: str, payload: dict[str, Any]) -> tuple[int, str]:
            r = c.request(command, payload, check=False)
            return r["code"], r.get("error") or ""

        enroll = {"section": "demo", "student_id": "S100", "name": "New Student", "images": [str(image)]}
        for field, value in (("section", "../../x/pwn"), ("section", "/tmp/abs"), ("section", ".hidden"),
                             ("section", "a" * 65), ("student_id", "../x"), ("student_id", "a b"),
                             ("name", "n" * 129)):
            got, error = code("enroll", {**enroll, field: value})
            assert got == 400 and error.startswith(field), (field, value, error)
        start = {"path": "classroom.mp4", "section": "demo"}
        for name in ("..", ".", "a/b", "x" * 65, "-x", "a b"):
            got, error = code("start_mp4", {**start, "session_name": name})
            assert got == 400 and error.startswith("session_name"), (name, error)
        # existing data with a name the pattern refuses can still be read, and its report stays inside
        assert c.request("session", {"session_id": legacy})["data"]["name"] == "../../escaped"
        path = Path(c.request("report", {"session_id": legacy, "format": "csv"})["data"]["path"])
        assert path.resolve().parent == (d.data / "reports").resolve()
        assert not (d.data.parent / "escaped.csv").exists()
    assert not list(d.data.parent.parent.glob("x/pwn*"))


def test_cli_uses_the_same_id_rule(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('[paths]\ndata_dir = "data"\n')
    for args, field in ((["enroll", "--section", "../x", "--student-id", "S1", "--name", "N", "a.jpg"], "section"),
                        (["enroll", "--section", "ok", "--student-id", "a/b", "--name", "N", "a.jpg"], "student_id"),
                        (["process", "v.mp4", "--section", "ok", "--name", ".."], "session_name")):
        proc = subprocess.run([sys.executable, "-m", "attendance_daemon", "--config", str(cfg), *args],
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        assert f"error: {field}:" in proc.stderr, proc.stderr


# ---- 3. cameras ---------------------------------------------------------------------------------------


class _Listener:
    """A loopback TCP listener that records whether anybody connected."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def test_cameras_are_declared_by_name(broker: Broker, daemon_factory: Any, daemon_media: Path) -> None:
    listener = _Listener()
    closed = _Listener()
    closed.close()  # a port nobody listens on: opening fails fast
    secret = "s3cr3t-pw"
    d = daemon_factory(extra='default_camera = "clip"\n',
                       mqtt_extra="")
    d.config.write_text(d.config.read_text() + "[cameras]\n"
                        f'clip = "{daemon_media / "long.mp4"}"\n'
                        f'hall = "http://admin:{secret}@127.0.0.1:{closed.port}/cam.mjpg"\n')
    d.start()
    try:
        with broker.client(d.device) as c:
            for camera in (f"http://127.0.0.1:{listener.port}/snap.jpg", "/dev/video0", "long.mp4", 5, "5"):
                r = c.request("start_webcam", {"section": "demo", "camera": camera}, check=False)
                assert r["code"] == 403 and r["error"].startswith("camera:") and "clip" in r["error"], r
            assert c.request("start_webcam", {"section": "demo", "camera": "nope"}, check=False)["code"] == 404
            time.sleep(0.5)
            assert listener.connections == 0  # the daemon never fetched the URL
            r = c.request("start_webcam", {"section": "demo", "camera": "hall"}, check=False)
            assert r["code"] == 400 and "hall" in r["error"] and secret not in json.dumps(r), r
            state = c.request("start_webcam", {"section": "demo", "duration_s": 1.0})["data"]
            assert state["session"]["source"] == "camera:clip"  # the default camera, by name
            results = c.wait_for("results", lambda x: x["session_id"] == state["session"]["id"], timeout=60)
            assert results["status"] == "completed" and results["source"] == "camera:clip"
            c.wait_for("state", lambda s: s["mode"] == "idle")
            state = c.request("start_webcam", {"section": "demo", "camera": 0, "duration_s": 0.5})["data"]
            assert state["session"]["source"] == "camera:clip"  # index 0 of the declared list
            c.wait_for("results", lambda x: x["session_id"] == state["session"]["id"], timeout=60)
            assert not [m for m in c.messages if secret.encode() in m[1]]
    finally:
        listener.close()
    assert secret not in d.log_text()


def test_raw_cameras_only_when_allowed(broker: Broker, daemon_factory: Any) -> None:
    d = daemon_factory(extra="allow_request_cameras = true\n").start()
    with broker.client(d.device) as c:
        r = c.request("start_webcam", {"section": "demo", "camera": "http://u:pw9@127.0.0.1:9/x"}, check=False)
        assert r["code"] == 400 and "pw9" not in json.dumps(r) and "http://***@127" in r["error"], r
    assert "pw9" not in d.log_text()


# ---- 9. client-id takeover ----------------------------------------------------------------------------


def test_shipped_broker_config_ties_client_ids_to_users() -> None:
    conf = (REPO / "deploy" / "mosquitto-attendance.conf").read_text().splitlines()
    assert "use_username_as_clientid true" in conf


def test_client_id_takeover_backs_off_and_is_reported(broker: Broker, daemon_factory: Any) -> None:
    d = daemon_factory(mqtt_extra="takeover_backoff_max_s = 8\n").start()
    kicked = 0
    seen = Sniffer(broker)
    deadline = time.monotonic() + 12
    try:
        while time.monotonic() < deadline:  # an intruder that reconnects at once whenever it is knocked off
            gone = threading.Event()
            intruder = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"attendance-daemon-{d.device}",
                                   protocol=mqtt.MQTTv311)
            intruder.on_disconnect = lambda *a, g=gone: g.set()
            intruder.connect("127.0.0.1", broker.port)
            intruder.loop_start()
            if gone.wait(max(0.0, deadline - time.monotonic())):
                kicked += 1
            intruder.disconnect()
            intruder.loop_stop()
        assert kicked <= 5, f"the daemon took its session back {kicked} times in 12 s (flapping)"
        state = f"attendance/{d.device}/state"
        before = len(seen.on(state))
        seen.wait(lambda: len(seen.on(state)) > before, timeout=20)  # republished on its next reconnect
        with broker.client(d.device) as c:
            assert c.request("status", timeout=15)["data"]["mode"] == "idle"  # back once the intruder left
        seen.wait(lambda: any(json.loads(p).get("type") == "error" and "taken over" in json.loads(p)["error"]
                              for _, p, _, _ in seen.on(f"attendance/{d.device}/events")))
    finally:
        seen.close()
    log = d.log_text()
    assert "taken over" in log and "Traceback" not in log


# ---- 10. error hygiene --------------------------------------------------------------------------------


def test_errors_are_clean_short_and_coded(broker: Broker, daemon_factory: Any, daemon_media: Path) -> None:
    d = daemon_factory().start()
    box_paths = [str(daemon_media), str(d.data), str(d.workdir)]
    with broker.client(d.device) as c:
        def check(command: str, payload: dict[str, Any], code: int) -> dict[str, Any]:
            r = c.request(command, payload, check=False)
            assert r["code"] == code, r
            error = r.get("error") or ""
            assert len(error) <= 300 and not any(p in error for p in box_paths), r
            return r

        check("start_mp4", {"path": "nope.mp4", "section": "demo"}, 404)  # the contract: missing file is 404
        check("start_mp4", {"path": "a\x00b.mp4", "section": "demo"}, 400)
        check("start_mp4", {"path": "x" * 300 + ".mp4", "section": "demo"}, 400)
        check("start_mp4", {"path": "d/" * 500_000, "section": "demo"}, 400)
        check("start_mp4", {"path": "classroom.mp4", "section": "s" * 1_000_000}, 400)
        check("enroll", {"section": "s" * 1_000_000, "student_id": "S1", "name": "N", "images": ["a.jpg"]}, 400)
        check("students", {"section": "s" * 1_000_000}, 400)
        check("session", {"session_id": "\x00" * 1000}, 400)
        check("enroll", {"section": "demo", "student_id": "S1", "name": "N", "images": ["a\x00.jpg"]}, 400)
        r = check("enroll", {"section": "demo", "student_id": "S1", "name": "N", "images": ["nope.jpg"]}, 200)
        assert r["data"]["rejected"][0]["reason"] == "file not found"
        assert len(c.latest["info"]) < 2000
        topic = c.topics.request("x" * 5000)
        c.client.publish(topic, b"{}", qos=1)
        deadline = time.monotonic() + 10
        while not any(leaf.startswith("response/xxx") for leaf, _, _ in c.messages) and time.monotonic() < deadline:
            time.sleep(0.05)
        resp = next(json.loads(p) for leaf, p, _ in c.messages if leaf.startswith("response/xxx"))
        assert resp["code"] == 404 and len(resp["error"]) <= 300
        # a retained request is refused, echoing its readable transaction
        c.client.publish(c.topics.request("status"), b'{"transaction": "r1"}', qos=1, retain=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            refused = [json.loads(p) for leaf, p, _ in c.messages if leaf == "response/status"]
            if refused:
                break
            time.sleep(0.05)
        assert refused[-1]["code"] == 400 and refused[-1]["transaction"] == "r1"


# ---- 11. CSV formulas ---------------------------------------------------------------------------------


def test_csv_cells_cannot_be_formulas(tmp_path: Path) -> None:
    import csv

    from attendance_daemon.attendance.reports import write_report
    from attendance_daemon.contract.api import AbsentStudent, PresentStudent, Results

    evil = ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]
    results = Results(
        session_id="s", name="evil", section="sec", mode="mp4", source="a.mp4", status="completed",
        started_at="2026-11-26T08:00:00Z", ended_at=None, frames_processed=1, present_count=1, total=len(evil),
        unknowns=0,
        present=[PresentStudent(student_id="S1", name=evil[0], first_seen_s=0, last_seen_s=1, seen_s=1,
                                arrived_at="2026-11-26T09:00:00+01:00", left_at="2026-11-26T09:00:01+01:00",
                                late=False, left_early=False, intervals=[])],
        absent=[AbsentStudent(student_id=f"S{i}", name=n) for i, n in enumerate(evil[1:], 2)],
        export_path=None, export_codec=None, error=None, timezone="Europe/Warsaw", end_s=1.0, late_after_s=300,
        left_early_before_s=300)
    with write_report(results, tmp_path, "csv").open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    names = [row[1] for row in rows[1:]]
    assert names == ["'" + e for e in evil]
    assert rows[1][7:10] == ["0.0", "1.0", "1.0"]  # numbers stay numbers


# ---- 12. logs -----------------------------------------------------------------------------------------


def test_sessions_logged_and_clean_shutdown_has_no_warning(broker: Broker, daemon_factory: Any) -> None:
    d = daemon_factory().start()
    with broker.client(d.device) as c:
        sid = c.request("start_mp4", {"path": "classroom.mp4", "section": "demo", "session_name": "logged"})
        c.wait_for("results", lambda r: r["session_id"] == sid["data"]["session"]["id"], timeout=60)
    d.signal(signal.SIGTERM)
    assert d.wait(60) == 0
    log = d.log_text()
    assert "INFO attendance_daemon.daemon.session_worker: session logged started: mp4" in log, log
    assert "INFO attendance_daemon.daemon.session_worker: session logged ended: completed, present 6/8" in log, log
    assert " WARNING " not in log and "reconnecting with backoff" not in log, log


@pytest.mark.parametrize("spec", ["rtsp://user:pw@10.0.0.5:554/stream", "http://a:b@h/x", "rtsp://h/x"])
def test_redaction(spec: str) -> None:
    from attendance_daemon.sessions.cameras import redact

    out = redact(f"camera: cannot open '{spec}'")
    assert "pw@" not in out and ":b@" not in out and ("@" not in spec or "***@" in out)


def test_camera_config_rules(tmp_path: Path) -> None:
    from attendance_daemon.common.errors import Forbidden, InvalidRequest
    from attendance_daemon.config import Config, load_config
    from attendance_daemon.sessions.cameras import resolve_camera

    old = Config.model_validate({"daemon": {"default_camera": "rtsp://u:p@h/x"}})  # no [cameras]: as before
    assert (resolve_camera(old, None).spec, resolve_camera(old, None).label) == ("rtsp://u:p@h/x", "rtsp://***@h/x")
    assert resolve_camera(old, 0).spec == "rtsp://u:p@h/x"
    with pytest.raises(Forbidden):
        resolve_camera(old, "/dev/video1")
    example = (REPO / "config" / "attendance-daemon.toml").read_text().replace("# [cameras]", "[cameras]")
    example = example.replace('# front = "/dev', 'front = "/dev').replace('# hall = "rtsp', 'hall = "rtsp')
    (tmp_path / "c.toml").write_text(example)
    cfg = load_config(tmp_path / "c.toml")
    assert resolve_camera(cfg, None).label == "front" and resolve_camera(cfg, 1).label == "hall"
    (tmp_path / "bad.toml").write_text('[daemon]\ndefault_camera = "nope"\n[cameras]\nfront = "0"\n')
    with pytest.raises(InvalidRequest, match="default_camera"):
        load_config(tmp_path / "bad.toml")
