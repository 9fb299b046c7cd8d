"""Attendance over time: the rules (history.py) with plain rows, and the commands and the `attendance_low` alert on
the real daemon (earlier sessions written into its real SQLite file, one real session over MQTT)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from attendance_daemon.attendance.history import Tally, fell_below, marks, tally
from attendance_daemon.attendance.punctuality import PunctualityRule
from attendance_daemon.common.timeutil import iso
from attendance_daemon.contract.history_api import SectionAttendance, StudentHistory
from attendance_daemon.store import AttendanceRow, SessionRow, Store
from tests.mqtt_fixtures import Broker
from tests.test_ctl_and_auth import ctl


def _session(started: datetime, status: str = "completed", lesson_start: datetime | None = None) -> SessionRow:
    return SessionRow(id=uuid.uuid4().hex, name=f"s-{uuid.uuid4().hex[:8]}", section="demo", mode="webcam",
                      source="camera:clip", export=False, status=status, started_at=iso(started),
                      ended_at=iso(started + timedelta(minutes=45)), roster_total=8,
                      lesson="l@x" if lesson_start else None,
                      lesson_start=iso(lesson_start) if lesson_start else None)


def test_marks_percentages_and_one_alert_per_fall() -> None:
    t0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    before_enrollment = _session(t0 - timedelta(days=7))
    present, failed, late, absent = (_session(t0), _session(t0 + timedelta(days=1), "failed"),
                                     _session(t0 + timedelta(days=2)), _session(t0 + timedelta(days=3)))
    seen = {(before_enrollment.id, "a"): (100.0, 1.0), (present.id, "a"): (100.0, 2.0),
            (failed.id, "a"): (100.0, 2.0), (late.id, "a"): (50.0, 30.0), (absent.id, "a"): (1.0, 5.0)}
    rule = PunctualityRule(late_after_s=300, left_early_before_s=300)
    found = marks([before_enrollment, present, failed, late, absent], seen, "a", iso(t0 - timedelta(days=1)),
                  3.0, rule, {late.id: 600.0})  # the late one started 10 min into its lesson
    assert [(m.session.id, m.status) for m in found] == [(present.id, "present"), (late.id, "late"),
                                                         (absent.id, "absent")]
    t = tally(found)
    assert (t.counted, t.attended, t.late, t.percent) == (3, 2, 1, 66.7)
    # one lesson resumed after a restart: two sessions, one mark (the best status, the seconds of both)
    first = _session(t0, "interrupted", lesson_start=t0)
    resumed = _session(t0 + timedelta(minutes=20), lesson_start=t0)
    seen = {(first.id, "a"): (2.0, 1.0), (resumed.id, "a"): (600.0, 5.0)}
    [mark] = marks([first, resumed], seen, "a", iso(t0), 3.0, rule, {resumed.id: 1200.0})
    assert (mark.session.id, mark.status, mark.seen_s) == (first.id, "late", 602.0)
    assert Tally(0, 0, 0).percent is None
    assert fell_below(Tally(2, 2, 0), Tally(3, 2, 0), 70, 3)  # reaches the minimum below the threshold
    assert not fell_below(Tally(3, 2, 0), Tally(4, 2, 0), 70, 3)  # was below already: no second alert
    assert not fell_below(Tally(1, 0, 0), Tally(2, 0, 0), 70, 3)  # too few sessions to judge
    assert fell_below(Tally(4, 3, 0), Tally(5, 3, 0), 70, 3)  # 75 % -> 60 %
    assert not fell_below(Tally(4, 3, 0), Tally(5, 4, 0), 70, 3)


def _seed(database: Any, roster: list[str]) -> list[SessionRow]:
    """Two earlier sessions in which the whole roster was present (the second one a lesson they were all late
    for: it started ten minutes into the lesson)."""
    store = Store(database)
    now = datetime.now(UTC).replace(microsecond=0)  # not before the roster's enrollment
    rows = [_session(now), _session(now + timedelta(seconds=1), "stopped", lesson_start=now - timedelta(minutes=10))]
    for row in rows:
        store.create_session(row)
        store.save_attendance(row.id, [AttendanceRow(s, s, 1.0, 40.0, 39.0, [(1.0, 40.0)]) for s in roster], 100)
    store.close()
    return rows


def test_history_commands_and_low_attendance_alert(broker: Broker, daemon_factory: Any,
                                                   ground_truth: dict[str, Any], tmp_path: Path) -> None:
    d = daemon_factory()
    d.config.write_text(d.config.read_text() + "[attendance]\nalert_below_percent = 70\nalert_min_sessions = 3\n")
    roster = sorted(ground_truth["present"] + ground_truth["absent"])
    seeded = _seed(d.data / "attendance.sqlite3", roster)
    time.sleep(2.1)  # the real session starts in a later second than the seeded ones
    d.start()
    with broker.client(d.device) as c:
        sid = c.request("start_mp4", {"path": "classroom.mp4", "section": "demo"})["data"]["session"]["id"]
        c.wait_for("results", lambda r: r["session_id"] == sid, timeout=120)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            alerts = [json.loads(p) for leaf, p, _ in list(c.messages) if leaf == "events"
                      and json.loads(p)["type"] == "attendance_low"]
            if len(alerts) >= len(ground_truth["absent"]):
                break
            time.sleep(0.1)
        assert sorted(a["student_id"] for a in alerts) == ground_truth["absent"]  # only those who fell below
        assert all(a["percent"] == 66.7 and a["counted"] == 3 and a["session_id"] == sid for a in alerts)

        gone = ground_truth["absent"][0]
        history = StudentHistory.model_validate(
            c.request("student_history", {"section": "demo", "student_id": gone})["data"])
        assert [s.session_id for s in history.sessions] == [sid, seeded[1].id, seeded[0].id]  # newest first
        assert [s.status for s in history.sessions] == ["absent", "late", "present"]
        assert (history.counted, history.attended, history.late, history.percent) == (3, 2, 1, 66.7)
        one = c.request("student_history", {"section": "demo", "student_id": gone, "limit": 1})["data"]
        assert len(one["sessions"]) == 1 and one["counted"] == 3  # the percentage covers all, not the page
        since = c.request("student_history", {"section": "demo", "student_id": gone,
                                              "since": seeded[1].started_at})["data"]
        assert since["counted"] == 2 and since["percent"] == 50.0

        summary = SectionAttendance.model_validate(c.request("section_attendance", {"section": "demo"})["data"])
        assert summary.sessions == 3 and summary.alert_below_percent == 70
        by_id = {s.student_id: s for s in summary.students}
        assert sorted(by_id) == roster
        assert all(by_id[s].percent == 100.0 for s in ground_truth["present"])
        assert all(by_id[s].percent == 66.7 for s in ground_truth["absent"])

        # the same through attendancectl
        proc = ctl(broker, d.device, "history", "--section", "demo", "--student-id", gone, "--limit", "2")
        assert proc.returncode == 0, proc.stderr
        cli = json.loads(proc.stdout)
        assert cli["percent"] == 66.7 and [s["status"] for s in cli["sessions"]] == ["absent", "late"]
        cli = json.loads(ctl(broker, d.device, "attendance", "--section", "demo").stdout)
        assert {s["student_id"]: s["percent"] for s in cli["students"]}[gone] == 66.7
        table = tmp_path / "timetable.toml"
        table.write_text('[[timetable]]\nlesson_id = "math"\nweekday = "sun"\nstart = "03:00"\nend = "03:45"\n'
                         'section = "demo"\nname = "Maths"\n')
        proc = ctl(broker, d.device, "schedule-set", str(table))
        assert proc.returncode == 0, proc.stderr
        cli = json.loads(proc.stdout)
        assert [(x["lesson_id"], x["name"]) for x in cli["lessons"]] == [("math", "Maths")]
        cli = json.loads(ctl(broker, d.device, "schedule-add", "bio", "--weekday", "sun", "--start", "04:00",
                             "--end", "04:30:30", "--section", "demo").stdout)
        assert [x["lesson_id"] for x in cli["lessons"]] == ["math", "bio"]
        clash = ctl(broker, d.device, "schedule-add", "x", "--weekday", "sun", "--start", "04:10", "--end", "05:00",
                    "--section", "demo")
        assert clash.returncode == 1 and "400: start: lesson 'x'" in clash.stderr and "overlaps" in clash.stderr
        assert json.loads(ctl(broker, d.device, "schedule-remove", "math").stdout)["lessons"][0]["lesson_id"] == "bio"
        assert json.loads(ctl(broker, d.device, "schedule").stdout)["next_lesson"]["lesson_id"] == "bio"

        assert c.request("student_history", {"section": "demo", "student_id": "nobody"}, check=False)["code"] == 404
        assert c.request("section_attendance", {"section": "nope"}, check=False)["code"] == 404
        bad = c.request("student_history", {"section": "demo", "student_id": gone, "limit": "5"}, check=False)
        assert bad["code"] == 400 and "limit" in bad["error"]
