"""The record a teacher hands in (issue 20), on the real broker with the daemon as a real process: corrections and
their undo, excused and late, draft then final, the trail, the absence notice; every correction in results,
CSV, PDF and history; exactly once after a box restart and a broker restart; a burst of 10,000 corrections;
and a change committed but never handed to the broker (a crash) sent at the next start."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from attendance_daemon.attendance.history import marks, tally
from attendance_daemon.attendance.punctuality import PunctualityRule
from attendance_daemon.cli.remote_files import content_bytes
from attendance_daemon.common.timeutil import iso, parse_iso
from attendance_daemon.contract.api import Results
from attendance_daemon.store import SessionRow, Store
from tests.mqtt_fixtures import Broker, RecordingClient
from tests.test_ctl_and_auth import ctl


def _wait(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.05)


def _results_of(c: RecordingClient, sid: str, revision: int) -> list[dict[str, Any]]:
    """Every results message of this session at this revision the client has seen so far."""
    found = []
    for leaf, payload, _ in list(c.messages):
        if leaf == "results" and payload:
            r = json.loads(payload)
            if r["session_id"] == sid and r.get("revision") == revision:
                found.append(r)
    return found


def _status(results: dict[str, Any], student_id: str) -> tuple[str, bool]:
    for s in [*results["present"], *results["absent"]]:
        if s["student_id"] == student_id:
            return s["status"], s["corrected"]
    raise AssertionError(f"{student_id} not in the results")


def _events(c: RecordingClient, kind: str) -> list[dict[str, Any]]:
    return [e for leaf, p, _ in list(c.messages) if leaf == "events" and (e := json.loads(p))["type"] == kind]


def test_a_teachers_record(broker: Broker, daemon_factory: Any, ground_truth: dict[str, Any]) -> None:
    d = daemon_factory()
    # late after 2 s: students first seen later than that are late, so late -> excused can be shown
    d.config.write_text(d.config.read_text() + "[attendance]\nlate_after_s = 2\n")
    d.start()
    present, absent = ground_truth["present"], ground_truth["absent"]
    with broker.client(d.device) as c:
        sid = c.request("start_mp4", {"path": "classroom.mp4", "section": "demo"})["data"]["session"]["id"]
        refused = c.request("correct", {"session_id": sid, "student_id": absent[0], "status": "present"},
                            check=False)
        first = c.wait_for("results", lambda r: r["session_id"] == sid, timeout=120)
        assert first["record"] == "draft" and first["revision"] == 0
        if refused["status"] != "ok":  # a short clip may end before the request arrives
            assert refused["code"] == 409 and "still running" in refused["error"]
            assert refused["error"].startswith("session_id:")
        else:  # it ended first: take that correction back so the checks below start from what was seen
            c.request("undo_correction", {"session_id": sid, "student_id": absent[0]})
        base = c.request("session", {"session_id": sid})["data"]["revision"]
        late = sorted(p["student_id"] for p in first["present"] if p["late"])
        assert late, "the demo's late_after_s of 2 s makes somebody late"
        missed = absent[0]
        assert _status(first, missed) == ("absent", False)

        # 1. a student recognition missed (a scarf): corrected to present, then undone
        ans = c.request("correct", {"session_id": sid, "student_id": missed, "status": "present",
                                    "note": "sat at the back with a scarf", "client": "Ms Rivera"})["data"]
        assert ans["record"] == "draft" and ans["revision"] == base + 1
        assert ans["change"]["action"] == "correct" and ans["change"]["client"] == "Ms Rivera"
        r = c.wait_for("results", lambda r: r["session_id"] == sid and r["revision"] == base + 1, timeout=20)
        assert _status(r, missed) == ("present", True) and r["present_count"] == first["present_count"] + 1
        entry = next(p for p in r["present"] if p["student_id"] == missed)
        assert entry["recognised_status"] == "absent" and entry["seen_s"] == 0 and entry["intervals"] == []
        # v1's types for a student the camera never saw: video second 0, the session's start
        assert entry["first_seen_s"] == entry["last_seen_s"] == 0
        assert parse_iso(entry["arrived_at"]) == parse_iso(first["started_at"]).replace(microsecond=0)
        assert entry["correction"]["note"] == "sat at the back with a scarf"
        assert entry["correction"]["client"] == "Ms Rivera"
        # the live roster of the last session shows the record too
        roster = c.wait_for("attendance", lambda a: a["session_id"] == sid and a["final"] and any(
            s["student_id"] == missed and s["status"] == "present" for s in a["students"]), timeout=20)
        assert next(s for s in roster["students"] if s["student_id"] == missed)["present"] is True
        undo = c.request("undo_correction", {"session_id": sid, "student_id": missed, "client": "Ms Rivera"})["data"]
        assert undo["change"]["undoes"] == ans["change"]["id"]
        r = c.wait_for("results", lambda r: r["session_id"] == sid and r["revision"] == base + 2, timeout=20)
        assert _status(r, missed) == ("absent", False) and r["present_count"] == first["present_count"]
        again = c.request("undo_correction", {"session_id": sid, "student_id": missed}, check=False)
        assert again["code"] == 404 and again["error"].startswith("student_id:")

        # 2. an absent student excused: the section's percentages change (excused counts neither way)
        before = {s["student_id"]: s for s in c.request("section_attendance", {"section": "demo"})["data"]["students"]}
        assert before[missed]["counted"] == 1 and before[missed]["percent"] == 0.0
        c.request("correct", {"session_id": sid, "student_id": missed, "status": "excused", "note": "doctor's note"})
        after = {s["student_id"]: s for s in c.request("section_attendance", {"section": "demo"})["data"]["students"]}
        assert after[missed]["counted"] == 0 and after[missed]["percent"] is None
        hist = c.request("student_history", {"section": "demo", "student_id": missed})["data"]
        assert [(s["status"], s["corrected"]) for s in hist["sessions"]] == [("excused", True)]

        # 3. late from recognition, then excused: the late count drops, it stays out of the percentage
        tardy = late[0]
        assert after[tardy]["late"] == 1 and after[tardy]["percent"] == 100.0
        c.request("correct", {"session_id": sid, "student_id": tardy, "status": "excused"})
        now = {s["student_id"]: s for s in c.request("section_attendance", {"section": "demo"})["data"]["students"]}
        assert now[tardy]["late"] == 0 and now[tardy]["counted"] == 0
        rev = c.request("session", {"session_id": sid})["data"]["revision"]
        r = c.wait_for("results", lambda r: r["session_id"] == sid and r["revision"] == rev, timeout=20)
        assert _status(r, tardy) == ("excused", True) and r["counts"]["excused"] == 2
        assert next(a for a in r["absent"] if a["student_id"] == tardy)["recognised_status"] == "late"

        # the CSV and the PDF show the record
        report = c.request("report", {"session_id": sid, "format": "csv", "content": True})["data"]
        rows = {row["student_id"]: row for row in csv.DictReader(io.StringIO(
            content_bytes(report).decode("utf-8-sig")))}
        assert (rows[missed]["status"], rows[missed]["corrected"]) == ("excused", "yes")
        assert (rows[tardy]["status"], rows[tardy]["recognised_status"]) == ("excused", "late")
        assert rows[present[0]]["corrected"] == "no"
        pdf = c.request("report", {"session_id": sid, "format": "pdf", "content": True})["data"]
        assert content_bytes(pdf).startswith(b"%PDF")

        # bad corrections: clear errors naming the field, nothing stored
        trail_before = c.request("corrections", {"session_id": sid})["data"]
        for payload, code, field in (
                ({"session_id": sid, "student_id": "S999", "status": "present"}, 404, "student_id"),
                ({"session_id": sid, "student_id": missed, "status": "sick"}, 400, "status"),
                ({"session_id": "nope", "student_id": missed, "status": "present"}, 404, "session_id"),
                ({"session_id": sid, "student_id": missed, "status": "present", "note": "x" * 501}, 400, "note"),
                ({"session_id": sid, "status": "present"}, 400, "student_id")):
            bad = c.request("correct", payload, check=False)
            assert bad["code"] == code and field in bad["error"], bad
        assert c.request("corrections", {"session_id": sid})["data"] == trail_before

        # 4. finalised: the absence notice, corrections refused until reopened
        drafts = c.request("sessions", {"record": "draft"})["data"]
        assert sid in [s["session_id"] for s in drafts] and {s["record"] for s in drafts} == {"draft"}
        fin = c.request("finalize", {"session_id": sid, "client": "Ms Rivera"})["data"]
        assert sid not in [s["session_id"] for s in c.request("sessions", {"record": "draft"})["data"]]
        listed_final = c.request("sessions", {"record": "final"})["data"]
        assert [(s["record"], s["revision"]) for s in listed_final if s["session_id"] == sid] == [
            ("final", fin["revision"])]
        assert fin["record"] == "final" and fin["finalized_at"]
        _wait(lambda: len(_events(c, "absences")) == 1)
        [notice] = _events(c, "absences")
        assert notice["session_id"] == sid and notice["section"] == "demo"
        assert sorted(s["student_id"] for s in notice["absent"]) == sorted(set(absent) - {missed})
        assert tardy not in {s["student_id"] for s in notice["late"]}  # excused is neither absent nor late
        assert notice["absent_count"] == len(notice["absent"]) and notice["subject"].startswith("Attendance demo")
        assert "Absent: " in notice["text"]
        final = c.request("correct", {"session_id": sid, "student_id": missed, "status": "present"}, check=False)
        assert final["code"] == 409 and "final" in final["error"] and final["error"].startswith("session_id:")
        assert c.request("finalize", {"session_id": sid}, check=False)["code"] == 409
        c.request("reopen", {"session_id": sid, "note": "a parent called", "client": "Ms Rivera"})
        c.request("correct", {"session_id": sid, "student_id": missed, "status": "present"})
        trail = c.request("corrections", {"session_id": sid})["data"]
        assert [e["action"] for e in trail["corrections"]][-4:] == ["correct", "finalize", "reopen", "correct"]
        assert trail["corrections"][0]["undone_by"] == trail["corrections"][1]["id"]

        # attendancectl: a correction, the trail, finalising
        proc = ctl(broker, d.device, "correct", "--session-id", sid, "--student-id", absent[1], "--status",
                   "excused", "--note", "school trip", "--by", "Mr Okafor")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["change"]["client"] == "Mr Okafor"
        listed = json.loads(ctl(broker, d.device, "corrections", "--session-id", sid).stdout)
        assert listed["corrections"][-1]["note"] == "school trip"
        bad_cli = ctl(broker, d.device, "correct", "--session-id", sid, "--student-id", absent[1], "--status", "ill")
        assert bad_cli.returncode != 0 and "ill" in bad_cli.stderr
        assert sid in [s["session_id"] for s in json.loads(ctl(broker, d.device, "sessions", "--record",
                                                                "draft").stdout)]
        assert ctl(broker, d.device, "finalize", "--session-id", sid).returncode == 0
        _wait(lambda: len(_events(c, "absences")) == 2)
        final_rev = c.request("session", {"session_id": sid})["data"]["revision"]
        _wait(lambda: bool(_results_of(c, sid, final_rev)))

    # 5. exactly once after a box restart and a broker restart: the same record, no change sent again
    d.stop()
    d.start()
    with broker.client(d.device) as c:
        r = c.wait_for("results", lambda r: r["session_id"] == sid, timeout=30)
        assert r["revision"] == final_rev and r["record"] == "final"
        time.sleep(1.5)
        assert not _events(c, "absences")  # the notice was taken by the broker: not sent again
        kept = c.request("corrections", {"session_id": sid})["data"]["corrections"]
        assert len(kept) == len(trail["corrections"]) + 2  # the ctl's correction and finalize, nothing twice
    broker.stop()
    broker.start()
    with broker.client(d.device) as c:
        r = c.wait_for("results", lambda r: r["session_id"] == sid, timeout=60)
        assert r["revision"] == final_rev and _status(r, missed) == ("present", True)
        assert _status(r, absent[1]) == ("excused", True)


def test_a_committed_change_the_broker_never_took_is_sent_at_the_next_start(
        broker: Broker, daemon_factory: Any, ground_truth: dict[str, Any]) -> None:
    """A crash between the commit and the broker's acknowledgement: the change is in the database, the outbox
    says it was not sent; the next start sends it (once) and its absence notice. It is an earlier session's
    record, so it goes to R/record: R/results stays the last session's (Home Assistant shows that one)."""
    d = daemon_factory()
    store = Store(d.data / "attendance.sqlite3")
    sid, later, old, failed = (uuid.uuid4().hex for _ in range(4))
    far = datetime.now(UTC) + timedelta(days=1)  # not due for finalising by itself
    for session_id, name, start, status in (
            (old, "last-week", datetime.now(UTC) - timedelta(days=7), "completed"),  # 48 h passed: final by itself
            (failed, "camera-died", datetime.now(UTC) - timedelta(days=6), "failed"),  # left to the teacher
            (sid, "crashed-record", far, "completed"), (later, "the-next-lesson", far + timedelta(hours=1),
                                                        "completed")):
        store.create_session(SessionRow(id=session_id, name=name, section="demo", mode="mp4", source="x.mp4",
                                        export=False, status="running", started_at=iso(start)))
        store.update_session(session_id, status=status, ended_at=iso(start + timedelta(minutes=45)))
    store.correct(sid, ground_truth["absent"][0], "excused", "doctor's note", "Ms Rivera", None)
    store.finalize(sid, "", "Ms Rivera", None)
    assert store.outbox() == [(sid, 2, 2)]  # revision 2, the notice of the finalisation at revision 2 owed
    store.close()
    with broker.client(d.device) as c:  # listening before the daemon starts: events and records are not retained
        d.start()
        r = c.wait_for("record", lambda r: r["session_id"] == sid and r["revision"] == 2, timeout=30)
        assert r["record"] == "final" and _status(r, ground_truth["absent"][0]) == ("excused", True)
        _wait(lambda: len(_events(c, "absences")) == 2)
        assert sorted(e["session_id"] for e in _events(c, "absences")) == sorted([sid, old])
        assert c.wait_for("results", lambda r: True, timeout=10)["session_id"] == later
        assert not [m for m in _results_of(c, sid, 2)]  # never on R/results
        auto = c.request("session", {"session_id": old})["data"]
        assert (auto["record"], auto["finalized_by"]) == ("final", "auto")
        assert c.request("session", {"session_id": failed})["data"]["record"] == "draft"
    d.stop()
    store = Store(d.data / "attendance.sqlite3")
    try:
        assert store.outbox() == []  # acknowledged: nothing left to send
    finally:
        store.close()


def test_ten_thousand_corrections_in_a_burst(broker: Broker, daemon_factory: Any,
                                             ground_truth: dict[str, Any]) -> None:
    """Every request gets exactly one answer (ok, or 429 when the inbox is full); every ok one is in the trail
    exactly once, and the published record ends at the last revision."""
    d = daemon_factory()
    store = Store(d.data / "attendance.sqlite3")
    sid = uuid.uuid4().hex
    store.create_session(SessionRow(id=sid, name="burst", section="demo", mode="mp4", source="x.mp4",
                                    export=False, status="running", started_at="2026-12-07T08:00:00Z"))
    store.update_session(sid, status="completed", ended_at="2026-12-07T08:45:00Z")
    store.close()
    d.start()
    students = sorted(ground_truth["present"] + ground_truth["absent"])
    statuses = ["present", "late", "left_early", "excused", "absent"]
    received: list[dict[str, Any]] = []
    root = f"attendance/{d.device}"
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"burst-{uuid.uuid4().hex[:6]}")
    sender.max_inflight_messages_set(1000)
    sender.max_queued_messages_set(0)

    def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        received.append(json.loads(msg.payload))

    sender.on_message = on_message
    sender.connect("127.0.0.1", broker.port)
    sender.subscribe(f"{root}/response/correct", qos=1)
    sender.loop_start()
    time.sleep(0.5)
    sent = []
    for i in range(10_000):
        t = f"t{i}"
        sent.append(t)
        sender.publish(f"{root}/request/correct", json.dumps(
            {"session_id": sid, "student_id": students[i % len(students)], "status": statuses[i % 5],
             "client": "burst", "transaction": t}), qos=1)
    _wait(lambda: len(received) >= len(sent), timeout=300)
    time.sleep(1)
    sender.loop_stop()
    sender.disconnect()
    answers = {str(r["transaction"]): r for r in received}
    assert len(received) == len(answers) and set(answers) == set(sent), "every request exactly one answer"
    ok = [t for t in sent if answers[t]["status"] == "ok"]
    assert ok, "some corrections were stored"
    assert all(answers[t]["code"] == 429 for t in sent if answers[t]["status"] != "ok")
    with broker.client(d.device) as c:
        entries: list[dict[str, Any]] = []
        while True:  # the trail in pages of at most 1000
            page = c.request("corrections", {"session_id": sid, "after_id": entries[-1]["id"] if entries else 0},
                             timeout=60)["data"]
            assert len(page["corrections"]) <= 1000
            entries += page["corrections"]
            if not page["more"]:
                break
        assert len(entries) == len(ok) == page["revision"]
        assert [e["id"] for e in entries] == sorted(answers[t]["data"]["change"]["id"] for t in ok)
        r = c.wait_for("results", lambda r: r["session_id"] == sid and r["revision"] == len(ok), timeout=60)
        last = {}
        for t in ok:
            i = int(t[1:])
            last[students[i % len(students)]] = statuses[i % 5]
        assert {s: _status(r, s)[0] for s in last} == last
    listed = json.loads(ctl(broker, d.device, "corrections", "--session-id", sid).stdout)  # every page
    assert [e["id"] for e in listed["corrections"]] == [e["id"] for e in entries] and not listed["more"]
    assert d.proc is not None and d.proc.poll() is None


def test_history_rules_with_corrections() -> None:
    """Pure rules: a correction replaces recognition's mark; excused leaves the count; left_early attends."""
    rule = PunctualityRule(300, 300)
    rows = [SessionRow(id=f"s{i}", name=f"s{i}", section="x", mode="mp4", source="a", export=False,
                       status="completed", started_at=f"2026-12-0{i + 1}T08:00:00Z") for i in range(4)]
    seen = {("s0", "a"): (100.0, 1.0), ("s1", "a"): (100.0, 400.0)}
    found = marks(rows, seen, "a", "2026-01-01", 3.0, rule, {},
                  {("s1", "a"): "excused", ("s2", "a"): "left_early"})
    assert [(m.status, m.corrected) for m in found] == [("present", False), ("excused", True),
                                                        ("left_early", True), ("absent", False)]
    t = tally(found)
    assert (t.counted, t.attended, t.late, t.percent) == (3, 2, 0, 66.7)
    assert Results.model_fields["record"].default == "draft"
