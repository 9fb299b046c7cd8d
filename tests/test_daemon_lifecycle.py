"""Pause/resume, stop, broker restarts, kill -9, SIGTERM and webcam sessions, with real processes."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

from tests.mqtt_fixtures import Broker


def _start_long(c: Any, name: str = "long") -> str:
    state = c.request("start_mp4", {"path": "long.mp4", "section": "demo", "session_name": name})["data"]
    return str(state["session"]["id"])


def test_pause_resume_holds_exact_frame(broker: Broker, daemon_factory: Any, long_truth: dict[str, Any]) -> None:
    d = daemon_factory().start()
    with broker.client(d.device) as c:
        sid = _start_long(c)
        c.wait_for("progress", lambda p: p["session_id"] == sid and p["frame"] >= 150)
        assert c.request("resume", check=False)["code"] == 409  # not paused
        assert c.request("pause", {"session_id": "someone-else"}, check=False)["code"] == 409
        paused = c.request("pause", {"session_id": sid})["data"]
        assert paused["paused"] and paused["mode"] == "mp4"
        assert c.request("pause", check=False)["error"] == "already paused"
        held = c.wait_for("progress", lambda p: p["paused"])
        time.sleep(1.5)
        still = c.json("progress")
        assert still["paused"] and still["frame"] == held["frame"]  # nothing decoded while paused
        assert c.json("state")["paused"] is True
        mark = len(c.messages)
        c.request("resume", {"session_id": sid})
        resumed = c.wait_for("progress", lambda p: not p["paused"])
        first_after = next(json.loads(p) for leaf, p, _ in c.messages[mark:] if leaf == "progress")
        assert first_after["frame"] == held["frame"]  # resumes exactly where it paused
        results = c.wait_for("results", lambda r: r["session_id"] == sid, timeout=120)
        assert resumed["frame"] >= held["frame"]
        assert results["status"] == "completed" and results["frames_processed"] == 900
        assert sorted(p["student_id"] for p in results["present"]) == long_truth["present"]
        assert results["unknowns"] == long_truth["unknowns"]


def test_stop_mid_session(broker: Broker, daemon_factory: Any) -> None:
    d = daemon_factory().start()
    with broker.client(d.device) as c:
        sid = _start_long(c)
        c.wait_for("progress", lambda p: p["session_id"] == sid and p["present"] >= 1)
        state = c.request("stop")["data"]
        assert state["mode"] == "idle"  # answered after the results were stored
        results = c.wait_for("results", lambda r: r["session_id"] == sid)
        assert results["status"] == "stopped" and results["present_count"] >= 1
        assert 0 < results["frames_processed"] < 900
        assert c.request("start_mp4", {"path": "classroom.mp4", "section": "demo"})["code"] == 200


def test_broker_restart_mid_session(broker: Broker, daemon_factory: Any, long_truth: dict[str, Any]) -> None:
    d = daemon_factory().start()
    with broker.client(d.device) as c:
        sid = _start_long(c)
        c.wait_for("progress", lambda p: p["session_id"] == sid and p["frame"] >= 100)
    broker.stop()
    time.sleep(2.0)
    broker.start()  # no persistence: every retained message is gone until the daemon republishes
    with broker.client(d.device) as c:
        assert c.wait_for("availability", lambda v: v == "online", timeout=30)
        assert c.wait_for("info", lambda i: True, timeout=10)["device_id"] == d.device
        results = c.wait_for("results", lambda r: r["session_id"] == sid, timeout=120)
        assert results["status"] == "completed" and results["frames_processed"] == 900
        assert sorted(p["student_id"] for p in results["present"]) == long_truth["present"]
        assert c.wait_for("state", lambda s: s["mode"] == "idle")["busy"] is False


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _state(pid: int) -> str:
    try:
        return next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("State:")).lower()
    except (OSError, StopIteration):
        return "zombie"


def test_kill9_marks_session_interrupted(broker: Broker, daemon_factory: Any) -> None:
    d = daemon_factory().start()
    with broker.client(d.device) as c:
        sid = _start_long(c)
        c.wait_for("progress", lambda p: p["session_id"] == sid and p["present"] >= 3)
        time.sleep(1.0)  # at least one attendance flush (every 0.5 s in the test config)
        assert d.proc is not None
        children = _children(d.proc.pid)
        assert children, "the daemon encodes in a child process"
        d.signal(signal.SIGKILL)
        d.wait(10)
        assert c.wait_for("availability", lambda v: v == "offline", timeout=30) == "offline"  # the LWT
        deadline = time.monotonic() + 15  # the encoder child notices its parent is gone and exits
        while any(Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid) for pid in children):
            assert time.monotonic() < deadline, f"orphaned children left running: {children}"
            time.sleep(0.2)
    db = sqlite3.connect(d.data / "attendance.sqlite3")
    assert db.execute("SELECT status FROM sessions WHERE id=?", (sid,)).fetchone()[0] == "running"
    db.close()
    d.start()
    with broker.client(d.device) as c:
        results = c.wait_for("results", lambda r: r["session_id"] == sid, timeout=30)
        assert results["status"] == "interrupted" and results["error"]
        assert results["present_count"] >= 3  # attendance up to the crash survived
        assert 0 < results["frames_processed"] < 900
        # the stale retained `mp4` state may arrive before the republished one: wait for the new one
        assert c.wait_for("state", lambda s: s["mode"] == "idle", timeout=10)["busy"] is False
        assert c.request("session", {"session_id": sid})["data"]["status"] == "interrupted"
        # the live roster the crash left at final: false is replaced by the final one, up to the crash
        roster = c.wait_for("attendance", lambda r: r["session_id"] == sid and r["final"], timeout=10)
        assert sum(s["present"] for s in roster["students"]) == results["present_count"]


def test_sigterm_stops_cleanly(broker: Broker, daemon_factory: Any) -> None:
    d = daemon_factory().start()
    with broker.client(d.device) as c:
        sid = _start_long(c)
        c.wait_for("progress", lambda p: p["session_id"] == sid and p["present"] >= 1)
        d.signal(signal.SIGTERM)
        assert d.wait(60) == 0
        results = c.wait_for("results", lambda r: r["session_id"] == sid, timeout=10)
        assert results["status"] == "stopped" and results["present_count"] >= 1
        assert c.wait_for("availability", lambda v: v == "offline", timeout=10) == "offline"
    assert "Traceback" not in d.log_text()


def test_webcam_session_with_duration_and_vanishing_camera(broker: Broker, daemon_factory: Any,
                                                          daemon_media: Path) -> None:
    """A recorded file inside the media dir stands in for a camera (OpenCV opens both the same way)."""
    d = daemon_factory(extra="allow_request_cameras = true\n").start()
    with broker.client(d.device) as c:
        state = c.request("start_webcam", {"section": "demo", "camera": "long.mp4", "duration_s": 4.0})["data"]
        assert state["mode"] == "webcam" and state["session"]["source"].startswith("camera:")
        sid = state["session"]["id"]
        progress = c.wait_for("progress", lambda p: p["session_id"] == sid)
        assert progress["total"] is None and progress["percent"] is None and progress["eta_s"] is None
        c.request("pause", {"session_id": sid})
        held = c.wait_for("progress", lambda p: p["session_id"] == sid and p["paused"])
        time.sleep(1.0)
        assert c.json("progress")["frame"] == held["frame"]  # no analysis while a webcam session is paused
        c.request("resume", {"session_id": sid})
        results = c.wait_for("results", lambda r: r["session_id"] == sid, timeout=60)
        assert results["status"] == "completed" and results["mode"] == "webcam"
        c.wait_for("state", lambda s: s["mode"] == "idle")
        # a camera that vanishes: the clip is unlinked while open, so when it ends the reopen fails
        media = daemon_media
        vanishing = media / f"vanish-{d.device}.mp4"
        shutil.copy(media / "classroom.mp4", vanishing)
        state = c.request("start_webcam", {"section": "demo", "camera": vanishing.name})["data"]
        sid = state["session"]["id"]
        c.wait_for("progress", lambda p: p["session_id"] == sid)
        vanishing.unlink()
        results = c.wait_for("results", lambda r: r["session_id"] == sid, timeout=60)
        assert results["status"] == "failed" and "stopped delivering frames" in results["error"]
        assert c.request("status")["data"]["mode"] == "idle"  # the daemon lives on
        missing = c.request("start_webcam", {"section": "demo", "camera": 7}, check=False)
        assert missing["code"] == 400 and "camera" in missing["error"]
