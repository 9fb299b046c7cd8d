"""The MQTT contract against a real mosquitto and the daemon as a real process."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from attendance_daemon.contract.api import Info, Progress, Response, Results, State
from tests.mqtt_fixtures import Broker, RecordingClient


def test_full_session_flow(broker: Broker, daemon_factory: Any, ground_truth: dict[str, Any]) -> None:
    d = daemon_factory().start()
    with broker.client(d.device) as c:
        idle = State.model_validate(c.wait_for("state", lambda s: True))
        assert idle.mode == "idle" and not idle.busy and idle.session is None
        info = Info.model_validate(c.wait_for("info", lambda i: True))
        assert info.device_id == d.device and info.detector == "tflite"
        assert info.sections == [{"section": "demo", "students": 8}]
        assert c.request("status")["data"]["mode"] == "idle"

        started = time.monotonic()
        resp = c.request("start_mp4", {"path": "classroom.mp4", "section": "demo", "session_name": "flow",
                                       "export": True})
        state = State.model_validate(resp["data"])
        assert state.mode == "mp4" and state.busy and state.session and state.session.name == "flow"
        sid = state.session.id
        busy = c.request("start_mp4", {"path": "classroom.mp4", "section": "demo"}, check=False)
        assert busy["code"] == 409 and busy["status"] == "error"
        assert busy["error"] == "busy: mp4 session 'flow' is running"
        assert busy["data"]["state"]["session"]["id"] == sid

        results = Results.model_validate(c.wait_for("results", lambda r: r["session_id"] == sid))
        elapsed = time.monotonic() - started
        assert results.status == "completed"
        assert sorted(p.student_id for p in results.present) == ground_truth["present"]
        assert sorted(a.student_id for a in results.absent) == ground_truth["absent"]
        assert results.unknowns == ground_truth["unknowns"]
        assert results.export_path and results.export_path.endswith("flow.mp4")
        c.wait_for("state", lambda s: s["mode"] == "idle")
        final = Progress.model_validate(c.json("progress"))
        assert final.frame == final.total == 180 and final.percent == 100.0
        events = [json.loads(p) for leaf, p, _ in c.messages if leaf == "events"]
        kinds = [e["type"] for e in events]
        assert kinds[0] == "session_started" and kinds[-1] == "session_finished"
        assert sorted(e["student_id"] for e in events if e["type"] == "student_present") == ground_truth["present"]
        assert kinds.count("unknown_face") == 1
        assert c.latest["snapshot"][:2] == b"\xff\xd8"  # a JPEG
        progress_times = [leaf for leaf, _, _ in c.messages if leaf == "progress"]
        assert 2 <= len(progress_times) <= 2 * elapsed + 4  # throttled to 2/s, plus start and end

    # a dashboard connecting later sees the whole truth from retained messages
    with broker.client(d.device) as late:
        assert late.wait_for("availability", lambda v: v == "online")
        assert late.wait_for("state", lambda s: True)["mode"] == "idle"
        assert late.wait_for("results", lambda r: True)["session_id"] == sid
        assert late.wait_for("progress", lambda p: True)["frame"] == 180
        retained = {leaf for leaf, _, r in late.messages if r}
        assert {"availability", "info", "state", "progress", "results", "snapshot"} <= retained


def test_history_reports_and_roster_commands(broker: Broker, daemon_factory: Any, sample: dict[str, Any]) -> None:
    d = daemon_factory().start()
    with broker.client(d.device) as c:
        sid = c.request("start_mp4", {"path": "classroom.mp4", "section": "demo"})["data"]["session"]["id"]
        c.wait_for("state", lambda s: s["mode"] == "idle")
        listing = c.request("sessions", {"section": "demo", "status": "completed"})["data"]
        assert [s["session_id"] for s in listing] == [sid]
        assert c.request("sessions", {"since": "2999-01-01T00:00:00Z"})["data"] == []
        bad = c.request("sessions", {"since": "yesterday"}, check=False)
        assert bad["code"] == 400 and bad["error"].startswith("since:")
        assert c.request("session", {"session_id": sid})["data"]["present_count"] == 6
        for fmt in ("csv", "pdf"):
            path = c.request("report", {"session_id": sid, "format": fmt})["data"]["path"]
            assert path.endswith(f".{fmt}") and str(d.data) in path
        assert c.request("session", {"session_id": "nope"}, check=False)["code"] == 404

        assert c.request("sections")["data"] == [{"section": "demo", "students": 8}]
        students = c.request("students", {"section": "demo"})["data"]
        assert {"student_id": "S001", "name": "Barack Obama", "encodings": 1} in students
        assert c.request("students", {"section": "nope"}, check=False)["code"] == 404
        enrolled = c.request("enroll", {"section": "new", "student_id": "N1", "name": "Obama Again",
                                        "images": ["demo/S001__Barack_Obama/photo.jpg", "missing.jpg"]})["data"]
        assert enrolled["student_id"] == "N1" and enrolled["encodings_added"] == 1
        assert enrolled["rejected"][0]["reason"] == "file not found"
        info = c.wait_for("info", lambda i: len(i["sections"]) == 2)
        assert {"section": "new", "students": 1} in info["sections"]
        outside = c.request("enroll", {"section": "new", "student_id": "N2", "name": "X",
                                       "images": ["../../../etc/passwd"]}, check=False)
        assert outside["code"] == 403 and outside["error"].startswith("images:")
        assert c.request("remove_student", {"section": "new", "student_id": "N1"})["data"] == {"removed": True}
        assert c.request("remove_student", {"section": "new", "student_id": "N1"}, check=False)["code"] == 404


def test_bad_requests_each_get_one_clear_answer(broker: Broker, daemon_factory: Any) -> None:
    d = daemon_factory().start()
    with broker.client(d.device) as c:
        def raw(command: str, payload: bytes, retain: bool = False) -> dict[str, Any]:
            before = len([m for m in c.messages if m[0] == f"response/{command}"])
            c.client.publish(c.topics.request(command), payload, qos=1, retain=retain)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                got = [m for m in c.messages if m[0] == f"response/{command}"]
                if len(got) > before:
                    time.sleep(0.2)  # a second answer would arrive now
                    got = [m for m in c.messages if m[0] == f"response/{command}"]
                    assert len(got) == before + 1, "exactly one response per request"
                    return Response.model_validate_json(got[-1][1]).model_dump()
                time.sleep(0.02)
            raise AssertionError(f"no response to {command}")

        r = raw("status", b"{not json")
        assert (r["code"], r["transaction"]) == (400, None) and "invalid JSON" in r["error"]
        assert raw("status", b"\xff\xfe")["code"] == 400
        assert raw("status", b"[1, 2]")["error"] == "payload: must be a JSON object, got list"
        assert raw("status", b"")["code"] == 200  # empty payload means {}
        r = raw("frobnicate", b'{"transaction": "x1"}')
        assert (r["code"], r["transaction"]) == (404, "x1") and "unknown command 'frobnicate'" in r["error"]
        r = raw("start_mp4", b'{"transaction": 7, "section": 5}')
        assert r["code"] == 400 and r["transaction"] == 7
        assert "section" in r["error"] and "path" in r["error"]  # wrong type and missing field both named
        r = raw("start_mp4", b'{"path": "classroom.mp4", "section": "demo", "export": "yes"}')
        assert r["code"] == 400 and "export" in r["error"]
        r = raw("start_mp4", b'{"path": "/etc/passwd", "section": "demo"}')
        assert r["code"] == 403 and "outside the media directory" in r["error"]
        r = raw("start_mp4", b'{"path": "../long.json/../../../../etc/passwd", "section": "demo"}')
        assert r["code"] == 403
        assert raw("start_mp4", b'{"path": "nope.mp4", "section": "demo"}')["code"] == 404
        assert raw("start_mp4", b'{"path": "classroom.mp4", "section": "nope"}')["code"] == 404
        assert raw("start_webcam", b'{"section": "demo", "camera": "/etc/passwd"}')["code"] == 403
        r = raw("status", b"{}", retain=True)
        assert r["code"] == 400 and "retained" in r["error"]
        time.sleep(0.3)
        with broker.client(d.device) as fresh:  # the daemon deleted the retained request: nothing replays
            time.sleep(0.5)
            assert not [leaf for leaf, _, retained in fresh.messages if retained and leaf.startswith("request/")]
        for command in ("pause", "resume", "stop"):
            r = raw(command, b"{}")
            assert r["code"] == 409 and "idle" in r["error"], r
        assert raw("status", b'{"transaction": {"a": 1}}')["code"] == 400
        assert c.request("status")["data"]["mode"] == "idle"  # still serving


def test_mqtt5_response_topic_and_correlation(broker: Broker, daemon_factory: Any) -> None:
    d = daemon_factory().start()
    got: list[tuple[str, bytes, bytes | None]] = []
    ready = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"v5-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5)
    client.on_subscribe = lambda *a: ready.set()
    client.on_message = lambda cl, u, m: got.append(
        (m.topic, bytes(m.payload), getattr(m.properties, "CorrelationData", None)))
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        reply = f"attendance/{d.device}/reply/me"  # allowed under R/ (mqtt.reply_prefixes)
        client.subscribe(reply, qos=1)
        assert ready.wait(5)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = reply
        props.CorrelationData = b"corr-42"
        client.publish(f"attendance/{d.device}/request/status", b'{"transaction": "t5"}', qos=1, properties=props)
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
        assert got, "no reply on the response topic"
        topic, payload, corr = got[0]
        assert topic == reply and corr == b"corr-42"
        assert json.loads(payload)["transaction"] == "t5"
    finally:
        client.disconnect()
        client.loop_stop()


def test_concurrent_start_storm(broker: Broker, daemon_factory: Any) -> None:
    """Fifty clients send start at the same instant: exactly one ok, forty-nine 409."""
    d = daemon_factory().start()
    n = 50
    clients = [broker.client(d.device) for _ in range(n)]
    barrier = threading.Barrier(n)
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()

    def fire(c: Any) -> None:
        barrier.wait()
        r = c.request("start_mp4", {"path": "long.mp4", "section": "demo"}, check=False, timeout=60)
        with lock:
            answers.append(r)

    threads = [threading.Thread(target=fire, args=(c,)) for c in clients]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        codes = sorted(a["code"] for a in answers)
        assert codes == [200] + [409] * (n - 1)
        winner = next(a for a in answers if a["code"] == 200)["data"]["session"]
        assert all(a["data"]["state"]["session"]["id"] == winner["id"] for a in answers if a["code"] == 409)
        stopped = clients[0].request("stop", {"session_id": winner["id"]})["data"]
        assert stopped["mode"] == "idle"
        assert clients[0].wait_for("results", lambda r: r["session_id"] == winner["id"])["status"] == "stopped"
    finally:
        for c in clients:
            c.close()


def test_mqtt311_brokers_are_supported(broker: Broker, daemon_factory: Any) -> None:
    """For brokers without MQTT v5 (e.g. the embedded amqtt of the demo): same API, no response topics."""

    d = daemon_factory(mqtt_extra='protocol = "3.1.1"\n').start()
    with RecordingClient("127.0.0.1", broker.port, d.device, protocol="3.1.1") as c:
        assert c.request("status")["data"]["mode"] == "idle"
        assert c.request("pause", check=False)["code"] == 409


def test_unwritable_export_fails_the_session_not_the_daemon(broker: Broker, daemon_factory: Any) -> None:
    """Like a full disk: the export cannot be written. The session ends `failed` with the reason."""
    d = daemon_factory().start()
    (d.data / "exports").rmdir()
    (d.data / "exports").write_text("a file where the exports folder should be")
    with broker.client(d.device) as c:
        sid = c.request("start_mp4", {"path": "classroom.mp4", "section": "demo", "export": True})["data"]
        sid = sid["session"]["id"]
        results = c.wait_for("results", lambda r: r["session_id"] == sid)
        assert results["status"] == "failed" and results["error"]
        events = [json.loads(p) for leaf, p, _ in c.messages if leaf == "events"]
        assert any(e["type"] == "error" and e["session_id"] == sid for e in events)
        assert c.wait_for("state", lambda s: s["mode"] == "idle")["busy"] is False
        ok = c.request("start_mp4", {"path": "classroom.mp4", "section": "demo"})["data"]["session"]["id"]
        assert c.wait_for("results", lambda r: r["session_id"] == ok)["status"] == "completed"
