"""The record at the hub (issue 20): corrections arrive as revised Results and are stored once, in order of
(ended_at, revision); the cross-room reports show the effective status (excused counts neither way); the
`export` request answers Moodle's mark-sessions CSVs, a flat CSV or JSON from the stored payloads.

Real parts: the session's PostgreSQL (a database per test). The store and the request handlers are fed directly
for the ordering, report and export cases; one test runs the hub as a process on a real mosquitto, replays the
payloads as a box restart and a broker restart do, and exports with `attendancectl hub export`."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest
from pypdf import PdfReader

from attendance_daemon.config import EnrollmentConfig
from attendance_daemon.contract.api import AttendanceStatus, Results
from attendance_daemon.hub import record_requests
from attendance_daemon.hub.ingest import Ingest
from attendance_daemon.hub.migrations import MIGRATIONS
from attendance_daemon.hub.requests import HubContext, handle, report_data
from attendance_daemon.hub.store import HubStore
from attendance_daemon.mqtt.link import Incoming
from tests.hub_fixtures import HubProcess, Postgres, results_payload
from tests.mqtt_fixtures import Broker

ROSTER = ("s1", "s2", "s3", "s4")
ATTENDED = ("present", "late", "left_early")
TOPIC = "attendance/room-1/results"


def box_results(session_id: str, seen: dict[str, str], corrections: dict[str, str] | None = None, *,
                revision: int = 0, record: str = "draft", started: str = "2026-11-26T09:00:00Z",
                ended: str = "2026-11-26T09:45:00Z", name: str | None = None) -> dict[str, Any]:
    """Results as a box with the record publishes them: `seen` is what recognition saw of ROSTER (the others
    absent), `corrections` the teacher's statuses in force. A student corrected to attended whom the camera never
    saw is at video second 0 (the session's start), seen 0 s."""
    present: list[dict[str, Any]] = []
    absent: list[dict[str, Any]] = []
    for n, sid in enumerate(ROSTER):
        recognised = seen.get(sid, "absent")
        status = (corrections or {}).get(sid, recognised)
        corrected = status != recognised
        student = {"student_id": sid, "name": sid.upper(), "status": status, "recognised_status": recognised,
                   "corrected": corrected,
                   "correction": {"id": n + 1, "status": status, "note": "note", "client": "teacher",
                                  "mqtt_user": None, "at": "2026-11-26T10:00:00Z"} if corrected else None}
        if status not in ATTENDED:
            absent.append(student)
        elif recognised == "absent":
            present.append({**student, "first_seen_s": 0.0, "last_seen_s": 0.0, "seen_s": 0.0,  # v1's types
                            "arrived_at": started.replace("Z", "+00:00"), "left_at": started.replace("Z", "+00:00"),
                            "late": status == "late", "left_early": status == "left_early", "intervals": []})
        else:
            present.append({**student, "first_seen_s": 5.0, "last_seen_s": 2000.0, "seen_s": 1995.0,
                            "arrived_at": "2026-11-26T09:00:05+00:00", "left_at": "2026-11-26T09:33:20+00:00",
                            "late": status == "late", "left_early": status == "left_early", "intervals": []})
    payload = results_payload(session_id, [], [], ended)
    counts = {s: 0 for s in (*ATTENDED, "excused", "absent")}
    for s in present + absent:
        counts[s["status"]] += 1
    payload.update(name=name or f"maths-{session_id[:4]}", started_at=started, present=present, absent=absent,
                   present_count=len(present), total=len(ROSTER), record=record, revision=revision, counts=counts,
                   finalized_at="2026-11-27T08:00:00Z" if record == "final" else None,
                   finalized_by="teacher" if record == "final" else None)
    Results.model_validate(payload)  # what a box sends: the contract's own model
    return payload


def _bytes(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def _store(postgres: Postgres) -> HubStore:
    store = HubStore(postgres.new_database())
    store.assign("room-1", "5a")
    return store


def _statuses(store: HubStore, session_id: str) -> dict[str, tuple[str, str, bool, str | None]]:
    with store._read() as db:
        rows = db.execute("SELECT student_id, status, recognised_status, corrected, arrived_at FROM attendance "
                          "WHERE session_id = %s", (session_id,)).fetchall()
    return {r["student_id"]: (r["status"], r["recognised_status"], r["corrected"], r["arrived_at"]) for r in rows}


def _ctx(store: HubStore, acronyms: dict[str, str] | None = None) -> HubContext:
    ctx = HubContext(store, cast(Any, None), Path("/nonexistent"), EnrollmentConfig(), lambda *_: None)
    if acronyms is not None:
        ctx.moodle_acronyms = cast(dict[AttendanceStatus, str], acronyms)
    return ctx


def _request(ctx: HubContext, command: str, body: dict[str, Any]) -> dict[str, Any]:
    return handle(ctx, command, Incoming(f"attendance/@hub/request/{command}", json.dumps(body).encode(), False,
                                         None, None)).model_dump()


def _moodle(zip_bytes: bytes) -> dict[str, list[list[str]]]:
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as z:
        return {name: list(csv.reader(io.StringIO(z.read(name).decode()))) for name in z.namelist()}


def test_migration_gives_stored_rows_their_status(postgres: Postgres) -> None:
    """A hub database of schema 4 (rows without the record): statuses follow from the stored facts (late wins
    over left early), sessions are final at revision 0; a payload that carries the record gives its own."""
    dsn = postgres.new_database()
    old = results_payload("old-1", ["s1", "s2", "s3"], ["s4"], "2026-11-20T09:45:00Z")
    old["present"][1].update(late=True, left_early=True)
    old["present"][2]["left_early"] = True
    new = box_results("new-1", {"s1": "present"}, {"s2": "excused"}, revision=3, started="2026-11-27T09:00:00Z")
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute(b"CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (4)")
        for migration in MIGRATIONS[:4]:
            db.execute(migration.encode())
        db.execute(b"INSERT INTO assignments VALUES ('room-1', '5a')")
        for p in (old, new):
            db.execute(b"INSERT INTO sessions (device_id, session_id, name, section, status, started_at, ended_at, "
                       b"present_count, total, payload, digest) VALUES ('room-1', %s, 'n', '5a', 'completed', "
                       b"%s, %s, 1, 4, %s, 'x')", (p["session_id"], p["started_at"], p["ended_at"], json.dumps(p)))
            for s in p["present"]:
                db.execute(b"INSERT INTO attendance VALUES ('room-1', %s, %s, %s, true, 1, %s, %s, NULL, NULL)",
                           (p["session_id"], s["student_id"], s["name"], s["late"], s["left_early"]))
            for s in p["absent"]:
                db.execute(b"INSERT INTO attendance VALUES ('room-1', %s, %s, %s, false, NULL, NULL, NULL, NULL, "
                           b"NULL)", (p["session_id"], s["student_id"], s["name"]))
    store = HubStore(dsn)  # migrates
    assert store.schema_version() == len(MIGRATIONS)
    assert _statuses(store, "old-1") == {"s1": ("present", "present", False, None), "s2": ("late", "late", False, None),
                                         "s3": ("left_early", "left_early", False, None),
                                         "s4": ("absent", "absent", False, None)}
    assert _statuses(store, "new-1")["s2"] == ("excused", "absent", True, None)
    assert [(s["session_id"], s["record"], s["revision"]) for s in store.session_rows()] == [
        ("old-1", "final", 0), ("new-1", "draft", 3)]
    store.close()


def test_corrections_are_stored_once_in_revision_order(postgres: Postgres) -> None:
    """The payloads a box sends for one session: recognition's, two corrections, the final record; then what a
    box restart (its retained newest results, its outbox's unacknowledged ones) and a broker restart (the
    bridge's queue) send again, in any order. Each correction is stored once, an older revision never
    replaces a newer one, and the rows follow the newest."""
    store = _store(postgres)
    ingest = Ingest(store, "attendance")
    seen = {"s1": "present", "s2": "late"}
    r0 = box_results("aaaa-1", seen)
    r1 = box_results("aaaa-1", seen, {"s3": "excused"}, revision=1)
    r2 = box_results("aaaa-1", seen, {"s3": "excused", "s4": "present"}, revision=2)
    assert [ingest.handle(TOPIC, _bytes(p)) for p in (r0, r1, r2)] == [
        "results:inserted", "results:revised", "results:revised"]
    # box restart: its retained results (r2) and the outbox's r1 again; broker restart: the bridge's queue again
    assert [ingest.handle(TOPIC, _bytes(p)) for p in (r2, r1, r2, r0, r1, r2)] == [
        "results:duplicate", "results:stale", "results:duplicate", "results:stale", "results:stale",
        "results:duplicate"]
    expected = {"s1": ("present", "present", False, "2026-11-26T09:00:05+00:00"),
                "s2": ("late", "late", False, "2026-11-26T09:00:05+00:00"),
                "s3": ("excused", "absent", True, None), "s4": ("present", "absent", True, None)}
    assert _statuses(store, "aaaa-1") == expected
    [row] = store.session_rows()
    assert (row["revision"], row["revisions"], row["deliveries"], row["record"]) == (2, 2, 9, "draft")
    # the record made final: a newer revision; its replays and the drafts after it change nothing
    r3 = {**r2, "record": "final", "revision": 3, "finalized_at": "2026-11-27T08:00:00Z", "finalized_by": "t"}
    assert [ingest.handle(TOPIC, _bytes(p)) for p in (r3, r2, r3)] == [
        "results:revised", "results:stale", "results:duplicate"]
    [row] = store.session_rows()
    assert (row["revision"], row["record"]) == (3, "final") and _statuses(store, "aaaa-1") == expected
    # a changed payload of the same revision is still a revision (a box re-publishing after recovery), a later
    # end wins over a higher revision, as before the record
    later = {**r3, "ended_at": "2026-11-26T09:46:00Z", "revision": 0}
    assert ingest.handle(TOPIC, _bytes(later)) == "results:revised"
    assert ingest.handle(TOPIC, _bytes({**r3, "revision": 9})) == "results:stale"
    # a box without the record: statuses follow from its facts (late wins over left early), the session is final
    old = results_payload("bbbb-1", ["s1", "s2"], ["s3"], "2026-11-26T10:45:00Z")
    old["present"][0].update(late=True, left_early=True)
    assert ingest.handle(TOPIC, _bytes(old)) == "results:inserted"
    assert {k: v[:3] for k, v in _statuses(store, "bbbb-1").items()} == {
        "s1": ("late", "late", False), "s2": ("present", "present", False), "s3": ("absent", "absent", False)}
    assert [r["record"] for r in store.session_rows(session_id="bbbb-1")] == ["final"]
    store.close()


def test_reports_show_the_record_and_excused_counts_neither_way(postgres: Postgres) -> None:
    store = _store(postgres)
    ingest = Ingest(store, "attendance")
    for p in (box_results("aaaa-1", {"s1": "present", "s2": "late"}, {"s3": "excused", "s4": "present"}),
              box_results("bbbb-1", {"s1": "late", "s2": "left_early"}, started="2026-11-27T09:00:00Z",
                          ended="2026-11-27T09:45:00Z")):
        assert ingest.handle(TOPIC, _bytes(p)) == "results:inserted"
    rows = store.section_report("5a", None, None, 100)
    data = report_data(rows, "json")
    assert data["summary"] == {
        "s1": {"sessions": 2, "present": 2, "late": 1, "excused": 0, "counted": 2, "percent": 100.0},
        "s2": {"sessions": 2, "present": 2, "late": 1, "excused": 0, "counted": 2, "percent": 100.0},
        "s3": {"sessions": 2, "present": 0, "late": 0, "excused": 1, "counted": 1, "percent": 0.0},
        "s4": {"sessions": 2, "present": 1, "late": 0, "excused": 0, "counted": 2, "percent": 50.0}}
    first = {r["student_id"]: r for r in data["rows"] if r["session"] == "maths-aaaa"}
    assert {k: (r["attendance_status"], r["recognised_status"], r["corrected"]) for k, r in first.items()} == {
        "s1": ("present", "present", False), "s2": ("late", "late", False), "s3": ("excused", "absent", True),
        "s4": ("present", "absent", True)}
    assert first["s4"]["arrived_at"] is None and first["s3"]["status"] == "completed"  # the session's status
    text = report_data(rows, "csv")["csv"]
    header, *lines = list(csv.reader(io.StringIO(text)))
    assert header[:3] == ["student_id", "name", "present"] and header[-4:] == [
        "attendance_status", "recognised_status", "corrected", "record"]
    assert lines[2][:3] == ["s3", "S3", "False"] and lines[2][-4:] == ["excused", "absent", "True", "draft"]
    pdf = base64.b64decode(report_data(rows, "pdf", "Attendance of section 5a")["pdf"])
    shown = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "excused (corrected; seen: absent)" in shown and "left early" in shown
    assert "s3 0/1 0%" in shown and "s4 1/2 50%" in shown
    student = report_data(store.student_report("s3", None, None, 100), "json")
    assert student["summary"]["s3"]["percent"] == 0.0
    store.close()


def test_export_answers_the_record_as_files(postgres: Postgres, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(postgres)
    ingest = Ingest(store, "attendance")
    final = box_results("aaaa-1", {"s1": "present", "s2": "late", "s4": "left_early"}, {"s3": "excused"},
                        revision=2, record="final", name="maths")
    same_name = box_results("cccc-1", {"s1": "present"}, record="final", name="maths", started="2026-11-26T11:00:00Z")
    draft = box_results("bbbb-1", {"s1": "present"}, started="2026-11-27T09:00:00Z", ended="2026-11-27T09:45:00Z")
    for p in (final, same_name, draft):
        ingest.handle(TOPIC, _bytes(p))
    ingest.handle("attendance/room-9/results", _bytes({**final, "device_id": "room-9"}))  # quarantined: left out
    ctx = _ctx(store)
    window = {"section": "5a", "since": "2026-11-01", "until": "2026-12-01"}
    answer = _request(ctx, "export", {**window, "format": "moodle"})
    assert answer["code"] == 200, answer
    data = answer["data"]
    content = base64.b64decode(data["content"])
    assert (data["bytes"], data["sha256"]) == (len(content), hashlib.sha256(content).hexdigest())
    assert (data["name"], data["content_type"], data["sessions"], data["rows"], data["skipped"]) == (
        "5a_2026-11-01_2026-12-01_moodle.zip", "application/zip", 2, 8, [])
    files = _moodle(content)  # one CSV per session, the draft not among them; one name per session
    assert sorted(files) == ["2026-11-26_maths.csv", "2026-11-26_maths_cccc-1.csv"]
    assert files["2026-11-26_maths.csv"] == [["idnumber", "status"], ["s1", "P"], ["s2", "L"], ["s4", "P"],
                                             ["s3", "E"]]
    with_drafts = _request(ctx, "export", {**window, "format": "json", "include_drafts": True})["data"]
    rows = json.loads(base64.b64decode(with_drafts["content"]))
    assert with_drafts["sessions"] == 3 and {r["session_id"] for r in rows} == {"aaaa-1", "bbbb-1", "cccc-1"}
    s3 = next(r for r in rows if r["session_id"] == "aaaa-1" and r["student_id"] == "s3")
    assert (s3["status"], s3["recognised_status"], s3["corrected"], s3["record"]) == (
        "excused", "absent", True, "final")
    flat = _request(ctx, "export", {**window, "device_id": "room-1"})["data"]  # csv by default
    table = list(csv.reader(io.StringIO(base64.b64decode(flat["content"]).decode("utf-8-sig"))))
    assert flat["content_type"] == "text/csv" and table[0][:8] == [
        "section", "session", "session_id", "date", "started_at", "student_id", "name", "status"]
    assert len(table) == 1 + 8
    # the school's own acronyms; an empty window is an empty file, not an error
    own = _ctx(store, {**cast(dict[str, str], ctx.moodle_acronyms), "excused": "EX"})
    renamed = _request(own, "export", {**window, "format": "moodle"})
    assert ["s3", "EX"] in _moodle(base64.b64decode(renamed["data"]["content"]))["2026-11-26_maths.csv"]
    empty = _request(ctx, "export", {**window, "since": "2025-01-01", "until": "2025-02-01"})["data"]
    assert (empty["sessions"], empty["rows"]) == (0, 0)
    # validated in one place: 400 naming the field; bounded: 413 saying what to do
    for body, field in (({**window, "format": "xlsx"}, "format"), ({**window, "until": "2026-10-01"}, "until"),
                        ({**window, "since": "yesterday"}, "since"), ({**window, "device_id": "Room 1"}, "device_id"),
                        ({**window, "include_drafts": "yes"}, "include_drafts"), ({"section": "5a"}, "since"),
                        ({**window, "limit": 5}, "limit")):
        bad = _request(ctx, "export", body)
        assert bad["code"] == 400 and field in bad["error"], (body, bad)
    monkeypatch.setattr(record_requests, "MAX_EXPORT_SESSIONS", 1)
    over = _request(ctx, "export", window)
    assert over["code"] == 413 and "2 sessions" in over["error"] and "shorter window" in over["error"]
    monkeypatch.setattr(record_requests, "MAX_EXPORT_SESSIONS", 10)
    monkeypatch.setattr(record_requests, "MAX_EXPORT_BYTES", 100)
    over = _request(ctx, "export", window)
    assert over["code"] == 413 and "shorter window" in over["error"]
    store.close()


def _until(what: str, fn: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := fn()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.1)
    return value


def hubctl(broker: Broker, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from attendance_daemon.cli.ctl import main; main()", "--port",
                           str(broker.port), "hub", *args], capture_output=True, text=True, timeout=60, check=False)


def test_hub_process_stores_replayed_corrections_once_and_exports_them(tmp_path: Path, postgres: Postgres) -> None:
    """End to end on a real mosquitto with the hub as a process: a box's payloads, then a broker restart and a
    box restart sending them again (its retained newest results, an older correction from its outbox); the
    report shows each correction once, and `attendancectl hub export` writes the final record as Moodle reads it
    (the hub's own acronyms from its config)."""
    # persistent, as docs/fleet.md asks of the central broker (`user root`: as root, mosquitto would otherwise
    # drop to its own user, which cannot write the test's directory)
    central = Broker(tmp_path, extra=f"user root\npersistence true\npersistence_location {tmp_path}/\n"
                                     "autosave_interval 1\n")
    dsn = postgres.new_database()
    hub = HubProcess(tmp_path / "hub", central, dsn, extra='moodle_acronyms = { excused = "EX" }\n').start()
    seen = {"s1": "present", "s2": "late"}
    r0, r1 = box_results("aaaa-1", seen), box_results("aaaa-1", seen, {"s3": "excused"}, revision=1)
    r2 = box_results("aaaa-1", seen, {"s3": "excused", "s4": "present"}, revision=2, record="final")
    draft = box_results("bbbb-1", {"s1": "present"}, started="2026-11-27T09:00:00Z", ended="2026-11-27T09:45:00Z")

    def stored() -> dict[str, tuple[int, int, int]]:
        """session -> (revision, revisions stored, deliveries)"""
        with psycopg.connect(dsn) as db:
            rows = db.execute(b"SELECT session_id, revision, revisions, deliveries FROM sessions").fetchall()
        return {r[0]: r[1:] for r in rows}

    def publish(*payloads: dict[str, Any]) -> None:
        with central.client("room-1") as box:
            for p in payloads:
                box.client.publish(TOPIC, _bytes(p), qos=1, retain=p is r2).wait_for_publish(5)

    try:
        with central.client("@hub") as office:
            assert office.request("assign", {"device_id": "room-1", "section": "5a"})["data"]["assigned"] is True
        publish(r0, r1, r2, draft)
        _until("stored", lambda: stored() == {"aaaa-1": (2, 2, 3), "bbbb-1": (0, 0, 1)})
        central.stop()  # the broker restarts (persistent: the retained r2 and the hub's session are kept); the
        central.start()  # hub's intake subscribes again on reconnecting, so the retained r2 comes once more
        publish(r2, r1, r2)  # the box restarts: its retained newest results, its outbox's older correction
        _until("replays counted", lambda: stored()["aaaa-1"][2] >= 6)
        assert stored()["aaaa-1"][:2] == (2, 2) and stored()["bbbb-1"] == (0, 0, 1)
        with central.client("@hub") as office:
            report = office.request("section_report", {"section": "5a"})["data"]
        aaaa = [(r["student_id"], r["attendance_status"], r["corrected"]) for r in report["rows"]
                if r["session"] == "maths-aaaa"]
        assert aaaa == [("s1", "present", False), ("s2", "late", False), ("s3", "excused", True),
                        ("s4", "present", True)]
        assert report["summary"]["s3"] == {"sessions": 2, "present": 0, "late": 0, "excused": 1, "counted": 1,
                                           "percent": 0.0}
        out = tmp_path / "5a.zip"
        proc = hubctl(central, "export", "--section", "5a", "--since", "2026-11-01", "--until", "2026-12-01",
                      "--format", "moodle", "-o", str(out))
        assert proc.returncode == 0 and "1 sessions, 4 rows" in proc.stdout, proc.stderr
        assert _moodle(out.read_bytes()) == {"2026-11-26_maths-aaaa.csv": [
            ["idnumber", "status"], ["s1", "P"], ["s2", "L"], ["s4", "P"], ["s3", "EX"]]}
        proc = hubctl(central, "export", "--section", "5a", "--since", "2026-11-01", "--until", "2026-12-01",
                      "--include-drafts", "-o", str(tmp_path / "5a.csv"))
        assert proc.returncode == 0 and "2 sessions, 8 rows" in proc.stdout, proc.stderr
        proc = hubctl(central, "export", "--section", "5a", "--since", "2026-12-01", "--until", "2026-11-01",
                      "-o", str(tmp_path / "x.csv"))
        assert proc.returncode == 1 and "400: until" in proc.stderr and not (tmp_path / "x.csv").exists()
    finally:
        hub.stop()
        central.stop()


def test_forget_clears_the_note_of_a_correction(postgres: Postgres) -> None:
    """A teacher's note may say why a student was away: anonymising the student empties it in the stored record
    and in a later re-send of it."""
    store = _store(postgres)
    ingest = Ingest(store, "attendance")
    corrected = box_results("cccc-1", {"s1": "present"}, {"s3": "excused"}, revision=1)
    assert ingest.handle(TOPIC, _bytes(corrected)) == "results:inserted"
    store.forget("s3", None, "anonymise")

    def s3_entries() -> list[dict[str, Any]]:
        with store._read() as db:
            [row] = db.execute("SELECT payload FROM sessions WHERE session_id = 'cccc-1'").fetchall()
        return [a for a in row["payload"]["absent"] if a["corrected"]]

    [entry] = s3_entries()
    assert entry["student_id"] != "s3" and entry["correction"]["note"] == ""
    ingest.handle(TOPIC, _bytes(corrected))  # the box re-sends it before it got the forget
    [entry] = s3_entries()
    assert entry["student_id"] != "s3" and entry["correction"]["note"] == ""
    store.close()


def test_an_earlier_sessions_record_on_its_own_topic_is_stored(postgres: Postgres) -> None:
    """A correction of a box's earlier session comes on R/record (R/results stays the last session's): the hub
    subscribes to it and stores it as it stores results."""
    store = _store(postgres)
    ingest = Ingest(store, "attendance")
    assert "attendance/+/record" in ingest.subscriptions()
    assert ingest.handle(TOPIC, _bytes(box_results("dddd-1", {"s1": "present"}))) == "results:inserted"
    corrected = box_results("dddd-1", {"s1": "present"}, {"s2": "excused"}, revision=1)
    assert ingest.handle("attendance/room-1/record", _bytes(corrected)) == "results:revised"
    assert _statuses(store, "dddd-1")["s2"][:3] == ("excused", "absent", True)
    store.close()


def test_forget_deletes_the_absence_notices_that_name_the_student(postgres: Postgres) -> None:
    """An `absences` notice lists the student (and names them in its subject and text): forgetting them deletes
    it, and the same notice re-sent by the box afterwards is not stored again; a notice naming others stays."""
    store = _store(postgres)
    ingest = Ingest(store, "attendance")

    def notice(absent: list[str], at: str) -> dict[str, Any]:
        return {"type": "absences", "at": at, "device_id": "room-1", "section": "5a", "session_id": "eeee-1",
                "session": "maths", "date": "2026-11-26", "finalized_at": at,
                "absent": [{"student_id": s, "name": s.upper(), "status": "absent", "arrived_at": None}
                           for s in absent], "late": [], "absent_count": len(absent), "late_count": 0,
                "subject": "Attendance 5a", "text": "Absent: " + ", ".join(s.upper() for s in absent)}

    naming, other = notice(["s3", "s4"], "2026-11-27T08:00:00Z"), notice(["s4"], "2026-11-27T08:01:00Z")
    events = "attendance/room-1/events"
    assert [ingest.handle(events, _bytes(n)) for n in (naming, other)] == ["event:stored", "event:stored"]
    store.forget("s3", None, "anonymise")
    with store._read() as db:
        kept = [r["payload"]["absent"] for r in db.execute("SELECT payload FROM events").fetchall()]
    assert kept == [other["absent"]]
    assert ingest.handle(events, _bytes(naming)) == "event:duplicate"  # sent before the forget: not stored again
    store.close()
