"""The timetable against the real daemon and broker, in real time: lessons a few seconds ahead (the times of day
take seconds, HH:MM:SS), a declared camera that is a recorded classroom (OpenCV opens both the same way).

One daemon walks through: a lesson started and ended by the timetable (`late` from the lesson start), a lesson
that waits for a manual session and then starts late, a scheduled session stopped by hand and not restarted, and a
restart of the daemon during a lesson (started late) after missing another one (`lesson_missed`)."""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from attendance_daemon.contract.api import Info, Results, Schedule, State
from attendance_daemon.timetable.week import WEEKDAYS
from tests.mqtt_fixtures import Broker, RecordingClient

ZONES = ("Asia/Kolkata", "America/New_York")  # one of them is far from midnight at any time


def _zone() -> ZoneInfo:
    for name in ZONES:
        local = datetime.now(ZoneInfo(name))
        if 1 <= local.hour <= 22:
            return ZoneInfo(name)
    raise AssertionError("unreachable: the zones are 10.5 h apart")


class Lessons:
    """Lessons at offsets (seconds) from a reference instant, as timetable entries in the daemon's zone."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone, self.t0 = zone, datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)

    def at(self, offset_s: float) -> datetime:
        return self.t0 + timedelta(seconds=offset_s)

    def entry(self, lesson_id: str, start_s: float, end_s: float) -> dict[str, Any]:
        start, end = self.at(start_s).astimezone(self.zone), self.at(end_s).astimezone(self.zone)
        return {"lesson_id": lesson_id, "weekday": WEEKDAYS[start.weekday()], "start": start.strftime("%H:%M:%S"),
                "end": end.strftime("%H:%M:%S"), "section": "demo", "camera": "clip"}

    def key(self, lesson_id: str, start_s: float) -> str:
        return f"{lesson_id}@{self.at(start_s).astimezone(self.zone).date().isoformat()}"

    def sleep_until(self, offset_s: float) -> None:
        time.sleep(max(0.0, (self.at(offset_s) - datetime.now(UTC)).total_seconds()))


def events(c: RecordingClient, kind: str, **match: Any) -> list[dict[str, Any]]:
    found = [json.loads(p) for leaf, p, _ in list(c.messages) if leaf == "events"]
    return [e for e in found if e["type"] == kind and all(e.get(k) == v for k, v in match.items())]


def wait_event(c: RecordingClient, kind: str, timeout: float = 30.0, **match: Any) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = events(c, kind, **match)
        if found:
            return found[0]
        time.sleep(0.1)
    raise TimeoutError(f"no {kind} event matching {match} within {timeout} s")


def test_timetable_runs_lessons_on_the_real_daemon(broker: Broker, daemon_factory: Any, daemon_media: Path) -> None:
    zone = _zone()
    d = daemon_factory(extra='default_camera = "clip"\n')
    d.config.write_text(d.config.read_text() + f'[attendance]\ntimezone = "{zone.key}"\nlate_after_s = 1.0\n'
                        f'[cameras]\nclip = "{daemon_media / "long.mp4"}"\n')
    d.start()
    with broker.client(d.device) as c:
        empty = Schedule.model_validate(c.request("schedule")["data"])
        assert empty.lessons == [] and empty.source == "mqtt" and empty.timezone == zone.key
        assert State.model_validate(c.json("state")).next_lesson is None

        t = Lessons(zone)
        table = [t.entry("one", 6, 16), t.entry("two", 22, 64)]
        bad = c.request("schedule_set", {"lessons": [*table, t.entry("clash", 12, 24)]}, check=False)
        assert bad["code"] == 400 and "overlaps" in bad["error"]
        unknown = c.request("schedule_add", {**t.entry("x", 100, 110), "section": "nope"}, check=False)
        assert unknown["code"] == 404 and unknown["error"].startswith("section:")
        camera = c.request("schedule_add", {**t.entry("x", 100, 110), "camera": "hall"}, check=False)
        assert camera["code"] == 404 and camera["error"].startswith("camera:")
        answer = Schedule.model_validate(c.request("schedule_set", {"lessons": table})["data"])
        assert [x.lesson_id for x in answer.lessons] == ["one", "two"]
        assert answer.next_lesson is not None and answer.next_lesson.lesson_id == "one"
        assert answer.next_lesson.start == t.at(6).astimezone(zone).isoformat(timespec="seconds")
        c.wait_for("state", lambda s: (s.get("next_lesson") or {}).get("lesson_id") == "one", timeout=10)
        c.wait_for("info", lambda i: (i.get("next_lesson") or {}).get("lesson_id") == "one", timeout=10)

        # 1. the timetable starts lesson one at its start and its session ends at the lesson's end
        started = wait_event(c, "lesson_started", lesson=t.key("one", 6))
        assert started["late_start"] is False and started["section"] == "demo"
        sid = started["session_id"]
        running = c.request("status")["data"]["session"]
        assert running["id"] == sid and running["started_by"] == "timetable"
        results = Results.model_validate(c.wait_for("results", lambda r: r["session_id"] == sid, timeout=30))
        assert results.status == "completed" and results.mode == "webcam" and results.source == "camera:clip"
        assert results.lesson == t.key("one", 6)
        assert results.lesson_start == t.at(6).astimezone(zone).isoformat(timespec="seconds")
        ended = datetime.fromisoformat(results.ended_at.replace("Z", "+00:00"))  # type: ignore[union-attr]
        assert t.at(16) <= ended <= t.at(16) + timedelta(seconds=8)
        # late counts from the lesson's start (late_after_s = 1): whoever was first seen after 1 s into it
        started_at = datetime.fromisoformat(results.started_at.replace("Z", "+00:00"))
        into = (started_at - t.at(6)).total_seconds()
        assert results.present and all(p.late == (into + p.first_seen_s > 1.0) for p in results.present)
        c.wait_for("state", lambda s: s["mode"] == "idle" and (s.get("next_lesson") or {}).get("lesson_id") == "two",
                   timeout=10)

        # 2. a manual session holds the camera at lesson two's start: the lesson waits, then starts late
        manual = c.request("start_webcam", {"section": "demo", "camera": "clip"})["data"]["session"]["id"]
        waiting = wait_event(c, "lesson_waiting", lesson=t.key("two", 22))
        assert waiting["session_id"] == manual
        assert not events(c, "lesson_started", lesson=t.key("two", 22))
        c.request("stop", {"session_id": manual})
        late = wait_event(c, "lesson_started", lesson=t.key("two", 22))
        assert late["late_start"] is True

        # 3. stopped by hand: the lesson is not started again while it lasts
        state = c.request("stop", {"session_id": late["session_id"]})["data"]
        assert state["mode"] == "idle"
        now = Schedule.model_validate(c.request("schedule")["data"])
        assert now.current is not None and now.current.lesson_id == "two"
        time.sleep(3 * 1.0 + 0.5)  # three scheduler ticks
        assert c.request("status")["data"]["mode"] == "idle"
        assert len(events(c, "lesson_started", lesson=t.key("two", 22))) == 1

        # 4. the daemon is down while lesson "missed" passes and when "three" starts: missed is reported,
        # three is started late once the daemon is back
        r = Lessons(zone)
        c.request("schedule_set", {"lessons": [r.entry("missed", 10, 12), r.entry("three", 14, 60)]})
        d.signal(signal.SIGTERM)
        assert d.wait(60) == 0
        r.sleep_until(16)
        d.start()
        missed = wait_event(c, "lesson_missed", lesson=r.key("missed", 10))
        assert missed["lesson_id"] == "missed"
        three = wait_event(c, "lesson_started", lesson=r.key("three", 14))
        assert three["late_start"] is True
        kept = Schedule.model_validate(c.request("schedule")["data"])  # the timetable survived the restart
        assert [x.lesson_id for x in kept.lessons] == ["missed", "three"]
        removed = Schedule.model_validate(c.request("schedule_remove", {"lesson_id": "missed"})["data"])
        assert [x.lesson_id for x in removed.lessons] == ["three"]
        assert c.request("schedule_remove", {"lesson_id": "missed"}, check=False)["code"] == 404
        assert Info.model_validate(c.json("info")).device_id == d.device
    assert "Traceback" not in d.log_text()


def test_timetable_from_the_config_is_read_only(broker: Broker, daemon_factory: Any, tmp_path: Path) -> None:
    """`[[timetable]]` in the config is the timetable; a lesson under way whose camera cannot open is skipped."""
    zone = _zone()
    now = datetime.now(zone)
    later = (now + timedelta(days=3)).date()
    d = daemon_factory()
    d.config.write_text(
        d.config.read_text() + f'[attendance]\ntimezone = "{zone.key}"\n'
        f'[cameras]\nbroken = "{tmp_path / "no-such-camera.mp4"}"\n'
        f'[[timetable]]\nlesson_id = "math"\nweekday = "{WEEKDAYS[later.weekday()]}"\nstart = "08:00"\n'
        f'end = "08:45"\nsection = "demo"\n'
        f'[[timetable]]\nlesson_id = "now"\nweekday = "{WEEKDAYS[now.weekday()]}"\n'
        f'start = "{(now - timedelta(seconds=30)).strftime("%H:%M:%S")}"\n'
        f'end = "{(now + timedelta(minutes=5)).strftime("%H:%M:%S")}"\nsection = "demo"\ncamera = "broken"\n')
    with broker.client(d.device) as c:  # subscribed before the daemon starts: sees its first events
        d.start()
        skipped = wait_event(c, "lesson_skipped", lesson_id="now")
        assert skipped["reason"] == "could not start: camera: no such video file: no-such-camera.mp4"
        assert str(tmp_path) not in json.dumps(skipped)  # the camera's path is not published
        schedule = Schedule.model_validate(c.request("schedule")["data"])
        assert schedule.source == "config" and sorted(x.lesson_id for x in schedule.lessons) == ["math", "now"]
        assert schedule.current is not None and schedule.current.lesson_id == "now"
        assert schedule.next_lesson is not None and schedule.next_lesson.lesson_id == "math"
        expected = datetime(later.year, later.month, later.day, 8, 0, tzinfo=zone).isoformat(timespec="seconds")
        assert schedule.next_lesson.start == expected
        assert c.request("status")["data"]["mode"] == "idle"
        refused = c.request("schedule_remove", {"lesson_id": "math"}, check=False)
        assert refused["code"] == 409 and "[[timetable]]" in refused["error"]
        strict = c.request("schedule_add", {"lesson_id": "x", "weekday": 1, "start": "8:00", "end": "09:00",
                                            "section": "demo", "extra": 1}, check=False)
        assert strict["code"] == 400
        assert all(f in strict["error"] for f in ("weekday", "start", "extra"))
