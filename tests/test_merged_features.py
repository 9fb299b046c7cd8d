"""Where the three issue-8/9 features meet (remote operations, timetable and history, hub rosters): on a real
SQLite store and real files, no broker. Each test here failed on the merged code before its fix."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from attendance_daemon.attendance.history import COUNTED, marks, tally
from attendance_daemon.attendance.punctuality import PunctualityRule
from attendance_daemon.attendance.reports import write_report
from attendance_daemon.attendance.results import build_results
from attendance_daemon.common.errors import InvalidRequest
from attendance_daemon.common.timeutil import iso
from attendance_daemon.config import EnrollmentConfig, RosterConfig
from attendance_daemon.contract.roster_message import MAX_ROSTER_BYTES, open_roster, seal
from attendance_daemon.daemon.registry import parse
from attendance_daemon.hub.config import HubConfig, HubSection
from attendance_daemon.hub.ingest import Ingest
from attendance_daemon.hub.requests import HubContext
from attendance_daemon.hub.requests import handle as handle_hub
from attendance_daemon.hub.roster import RosterPublisher
from attendance_daemon.hub.service import REQUESTS, Hub
from attendance_daemon.hub.store import HubStore
from attendance_daemon.mqtt.link import Incoming
from attendance_daemon.privacy.erasure import forget_student
from attendance_daemon.privacy.sweep import sweep_count
from attendance_daemon.roster.photos import clear_incoming
from attendance_daemon.roster.sync import RosterSync
from attendance_daemon.store import AttendanceRow, SessionRow, Store
from attendance_daemon.store.schema import MIGRATIONS, SCHEMA_VERSION
from tests.conftest import make_config
from tests.hub_fixtures import Postgres
from tests.hub_fixtures import results_payload as _results
from tests.mqtt_fixtures import Broker


def _roster(version: int, students: list[str], section: str = "5a") -> bytes:
    body = {"section": section, "version": version, "published_at": "2026-11-26T09:00:00Z",
            "students": [{"student_id": s, "name": s.upper(), "encodings": [[0.25] * 128]} for s in students]}
    return json.dumps(seal(body, None)).encode()


def _session(section: str, started: datetime) -> SessionRow:
    return SessionRow(id=uuid.uuid4().hex, name=f"s-{uuid.uuid4().hex[:8]}", section=section, mode="webcam",
                      source="camera:0", export=False, status="completed", started_at=iso(started),
                      ended_at=iso(started + timedelta(minutes=45)), roster_total=1)


def test_a_new_hub_roster_version_keeps_each_students_enrollment_date(tmp_path: Path) -> None:
    """History counts the sessions since a student was enrolled: a roster version that still lists them must
    not make them newly enrolled (every earlier session would drop out of their percentage)."""
    store = Store(tmp_path / "a.sqlite3", allow_init=True)
    sync = RosterSync(store, ["5a"], None)
    assert sync.offer("5a", _roster(1, ["s1"])) is None
    sync.apply_staged()
    enrolled_at = "2026-09-01T08:00:00Z"  # v1 came in September (the store's clock is the wall clock)
    store._db.execute("UPDATE students SET created_at=?", (enrolled_at,))
    lesson = _session("5a", datetime(2026, 9, 7, 8, 0, tzinfo=UTC))
    store.create_session(lesson)
    store.save_attendance(lesson.id, [AttendanceRow("s1", "S1", 1.0, 900.0, 899.0, [(1.0, 900.0)])], 10)
    assert sync.offer("5a", _roster(2, ["s1", "s2"])) is None  # a classmate added at the hub, today
    sync.apply_staged()
    assert store.enrolled("5a")["s1"][1] == enrolled_at
    assert [s.encodings for s in store.students("5a")] == [1, 1]
    sessions, seen = store.section_history("5a", COUNTED)
    found = marks(sessions, seen, "s1", store.enrolled("5a")["s1"][1], 3.0, PunctualityRule(300, 300), {})
    assert (tally(found).counted, tally(found).attended) == (1, 1)
    assert sync.offer("5a", _roster(3, ["s2"])) is None  # and one dropped is gone, with their encodings
    sync.apply_staged()
    assert [s.student_id for s in store.students("5a")] == ["s2"]
    assert store._db.execute("SELECT COUNT(*) FROM encodings").fetchone()[0] == 1
    store.close()


def test_a_hub_roster_replacing_a_local_section_deletes_its_stored_photos(tmp_path: Path) -> None:
    """A section enrolled over MQTT (photos kept on the box) and later put under the hub: the hub's roster
    replaces its encodings, and their photos (biometric data) must not stay behind as orphan files."""
    cfg = make_config(tmp_path)
    photos = cfg.paths.photos
    store = Store(cfg.paths.database, allow_init=True)
    enc = store.add_encoding(store.upsert_student("5a", "s1", "Ada"), np.zeros(128), "upload")
    (photos / f"{enc}.jpg").write_bytes(b"\xff\xd8 a face")
    store.set_encoding_photo(enc, f"{enc}.jpg")
    sync = RosterSync(store, ["5a"], None, lambda ids: sweep_count(cfg, store, ids))
    assert sync.offer("5a", _roster(1, ["s1"])) is None
    assert sync.apply_staged() == ["5a v1"]
    assert not (photos / f"{enc}.jpg").exists()
    assert [p.photo for p in store.photos("5a", "s1")] == [None]
    store.close()


def test_a_roster_listing_a_student_twice_is_refused_not_half_applied(tmp_path: Path) -> None:
    body = _roster(1, ["s1", "s1"])
    with pytest.raises(ValueError, match=r"students.*s1.*more than once"):
        open_roster(body, None)
    store = Store(tmp_path / "a.sqlite3", allow_init=True)
    sync = RosterSync(store, ["5a", "5b"], None)
    reason = sync.offer("5a", body)
    assert reason is not None and "more than once" in reason
    assert sync.offer("5b", _roster(1, ["s2"], "5b")) is None
    assert sync.apply_staged() == ["5b v1"]
    store.close()


def _v2_database(path: Path) -> None:
    """A database as the release before this one left it (schema 2), with a roster, a session and a crop."""
    db = sqlite3.connect(path)
    for i, script in enumerate(MIGRATIONS[:2]):
        db.executescript(f"BEGIN; {script}; PRAGMA user_version={i + 1}; COMMIT;")
    db.execute("INSERT INTO sections VALUES ('5a', '2026-09-01T08:00:00Z')")
    db.execute("INSERT INTO students VALUES (1, '5a', 's1', 'Ada', '2026-09-01T08:00:00Z')")
    db.execute("INSERT INTO encodings VALUES (1, 1, ?, 'ada.jpg', '2026-09-01T08:00:00Z')",
               (np.full(128, 0.5, np.float32).tobytes(),))
    db.execute("INSERT INTO sessions (id, name, section, mode, source, status, started_at, ended_at, "
               "roster_total) VALUES ('x1', 'monday', '5a', 'webcam', 'camera:0', 'completed', "
               "'2026-09-07T08:00:00Z', '2026-09-07T08:45:00Z', 1)")
    db.execute("INSERT INTO attendance VALUES ('x1', 's1', 'Ada', 1.0, 2000.0, 1999.0, '[[1.0, 2000.0]]')")
    db.execute("INSERT INTO unknown_faces VALUES (1, 'x1', 7, '/data/unknowns/monday/t.jpg', 3.0, "
               "'2026-09-07T08:00:03Z')")
    db.commit()
    db.close()


def test_a_schema_2_database_is_upgraded_in_order_and_every_feature_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "attendance.sqlite3"
    _v2_database(path)
    store = Store(path)
    assert store.schema_version() == SCHEMA_VERSION
    assert store._db.execute("PRAGMA foreign_key_check").fetchall() == []
    # remote operations (3): photos, unknown faces with no vector and no assignment yet
    assert [(p.id, p.source, p.photo) for p in store.photos("5a", "s1")] == [(1, "ada.jpg", None)]
    face = store.unknown_face(1)
    assert (face.vector, face.assigned_to) == (None, None)
    # timetable and history (5): the old session counts, with no lesson
    row = store.get_session("x1")
    assert (row.lesson, row.lesson_start) == (None, None) and store.timetable() == []
    sessions, seen = store.section_history("5a", COUNTED)
    assert [s.id for s in sessions] == ["x1"] and seen[("x1", "s1")] == (1999.0, 1.0)
    # hub rosters (4): the local section becomes hub-managed; Ada keeps her enrollment date
    sync = RosterSync(store, ["5a"], None)
    assert sync.offer("5a", _roster(1, ["s1"])) is None and sync.apply_staged() == ["5a v1"]
    assert store.enrolled("5a")["s1"][1] == "2026-09-01T08:00:00Z"
    # an assignment's FK: deleting the encoding leaves the face unassigned, not a dangling id
    new_enc = store.photos("5a", "s1")[0].id
    store.mark_assigned(1, new_enc)
    assert store.unknown_face(1).assigned_to == "s1"
    erased = store.forget_student("s1", "5a", False, "forgotten-x")
    assert erased.crops == ["/data/unknowns/monday/t.jpg"] and erased.attendance_rows == 1
    assert store._db.execute("PRAGMA foreign_key_check").fetchall() == []
    store.close()


def test_the_hub_sends_a_refused_forget_again_when_the_box_is_idle(postgres: Postgres) -> None:
    """A box answers a hub forget with 409 while the student's section has a session running. Boxes come
    `online` rarely (a restart), so waiting for that would leave the student's attendance on the box for
    weeks: the hub sends it again once the box's state is idle."""
    store = HubStore(postgres.new_database())
    resent: list[str] = []
    ingest = Ingest(store, "attendance", on_online=resent.append)
    request = {"student_id": "s1", "attendance": "anonymise", "transaction": "hub-forget-0123456789abcdef"}
    store.record_forget_sent("s1", "room-a", request)
    answer = {"transaction": request["transaction"], "status": "error", "code": 409,
              "error": "student_id: 's1' is on the roster of the running session", "data": {"session_id": "x"}}
    busy = {"mode": "webcam", "busy": True, "paused": False, "session": None, "updated_at": "t"}
    assert ingest.handle("attendance/room-a/state", json.dumps(busy).encode()) == "state"
    assert ingest.handle("attendance/room-a/response/forget_student",
                         json.dumps(answer).encode()) == "forget:answered"
    assert store.pending_forgets("room-a") == [request] and resent == []
    assert ingest.handle("attendance/room-a/state", json.dumps({**busy, "paused": True}).encode()) == "state"
    assert resent == []
    assert ingest.handle("attendance/room-a/state",
                         json.dumps({**busy, "mode": "idle", "busy": False}).encode()) == "state"
    assert resent == ["room-a"]
    store.record_forget_answer("room-a", request["transaction"], {"status": "ok", "code": 200})
    assert store.pending_forgets("room-a") == []
    store.close()


def test_the_hub_answers_every_request_even_when_its_queue_is_full(tmp_path: Path, postgres: Postgres) -> None:
    """The real hub on a real broker with its request workers not started, so its queue fills for certain:
    every request beyond it gets its own 409 (with its transaction), none is dropped unanswered."""
    broker = Broker(tmp_path)
    cfg = HubConfig.model_validate({"hub": {"database": postgres.new_database(), "data_dir": str(tmp_path / "hub")},
                                    "mqtt": {"device_id": "hub", "port": broker.port}})
    hub = Hub(cfg)
    hub.client.connect("127.0.0.1", broker.port)
    hub.client.loop_start()
    try:
        assert hub.connected.wait(10)
        with broker.client("@hub") as c:
            # published after its subscriptions on the same connection: from here on, no request is missed
            c.wait_for("availability", lambda v: v == "online", timeout=30)
            for i in range(REQUESTS + 5):
                c.client.publish("attendance/@hub/request/fleet", json.dumps({"transaction": f"t{i}"}).encode(),
                                 qos=1).wait_for_publish(5)
            c.client.publish("attendance/@hub/request/fleet", b"x" * 100_000, qos=1).wait_for_publish(5)
            c.wait_for("response/fleet", lambda r: r["transaction"] is None, timeout=30)  # the last answer
            deadline = time.monotonic() + 10  # `messages` is appended just after `latest`
            while len(got := [json.loads(p) for leaf, p, _ in c.messages if leaf == "response/fleet"]) < 6 \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
        assert [(r["code"], r["transaction"]) for r in got] == [
            (409, f"t{i}") for i in range(REQUESTS, REQUESTS + 5)] + [(409, None)]
        assert hub.requests.qsize() == REQUESTS
    finally:
        hub.client.loop_stop()
        hub.client.disconnect()
        hub.store.close()
        broker.stop()


def test_a_roster_nested_too_deeply_is_refused_not_raised(tmp_path: Path) -> None:
    """json.loads raises RecursionError (not a ValueError) on '[[[[…': it reached the daemon's housekeeper
    uncaught, ended that thread, and the watchdog restart replayed the same retained roster."""
    store = Store(tmp_path / "a.sqlite3", allow_init=True)
    sync = RosterSync(store, ["5a"], None)
    reason = sync.offer("5a", b"[" * 200_000)
    assert reason is not None and "nested too deeply" in reason and sync.problems() == [reason]
    store.close()
    # the same text as a request (the box's and the hub's parser): a 400 naming the payload, not a 500
    with pytest.raises(InvalidRequest, match="payload: JSON nested too deeply"):
        parse(Incoming("attendance/x/request/status", b"[" * 200_000, False, None, None))


def test_forget_deletes_the_reports_that_list_the_student_as_absent(tmp_path: Path) -> None:
    """A student never seen in a session has no attendance row there, but its report lists them as absent,
    by name: forget must delete those reports too (`report` writes them anew without the name)."""
    cfg = make_config(tmp_path)
    store = Store(cfg.paths.database, allow_init=True)
    for sid, name in (("s1", "Ada Absent"), ("s2", "Bob Present")):
        store.add_encoding(store.upsert_student("5a", sid, name), np.zeros(128), "x.jpg")
    row = _session("5a", datetime(2026, 9, 7, 8, 0, tzinfo=UTC))
    store.create_session(row)
    store.save_attendance(row.id, [AttendanceRow("s2", "Bob Present", 1.0, 900.0, 899.0, [(1.0, 900.0)])], 10)
    report = write_report(build_results(store, store.get_session(row.id), cfg), cfg.paths.reports, "csv")
    assert "Ada Absent" in report.read_text(encoding="utf-8-sig")
    done = forget_student(cfg, store, "s1", None, remove_rows=False)
    assert (done.sections, done.sessions, done.attendance_rows) == (["5a"], [], 0)
    assert not report.exists()
    again = write_report(build_results(store, store.get_session(row.id), cfg), cfg.paths.reports, "csv")
    assert "Ada" not in again.read_text(encoding="utf-8-sig") and "Bob Present" in again.read_text("utf-8-sig")
    store.close()


def test_an_empty_roster_key_file_is_an_error_not_no_key(tmp_path: Path) -> None:
    """With `roster.key_file` set a box refuses unsigned rosters; an empty file (a failed copy) read as no key at
    all and quietly turned that check off."""
    empty = tmp_path / "roster.key"
    empty.write_bytes(b"\n")
    with pytest.raises(InvalidRequest, match=r"roster.key_file: .* is empty"):
        RosterConfig(sections=["5a"], key_file=empty).key()
    with pytest.raises(InvalidRequest, match=r"hub.roster_key_file: .* is empty"):
        HubSection(roster_key_file=empty).roster_key()
    empty.write_bytes(b"s3cret\n")
    assert RosterConfig(sections=["5a"], key_file=empty).key() == b"s3cret"


def test_concurrent_hub_publications_of_a_section_get_distinct_versions(postgres: Postgres) -> None:
    """The hub publishes a section from its request worker (forget, remove) and its enrollment worker (enroll),
    and `attendance-hub` CLI runs beside it. Two publications must never share a version: a box applies the
    first it sees and refuses the other as not newer, so e.g. a forgotten student would stay on it."""
    dsn = postgres.new_database()
    store = HubStore(dsn)
    store.add_encoding(store.upsert_student("5a", "s1", "Ada"), np.zeros(128), "ada.jpg")
    store.assign("room-1", "5a")  # one box teaches 5a: each publication is one message to it
    other = HubStore(dsn)  # another process's connection (the CLI)
    sent: list[bytes] = []
    publishers = [RosterPublisher(s, "attendance", None, lambda t, p: sent.append(p)) for s in (store, store, other)]
    errors: list[BaseException] = []

    def publish_many(p: RosterPublisher) -> None:
        try:
            for _ in range(15):
                p.publish("5a")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publish_many, args=(p,)) for p in publishers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    versions = sorted(json.loads(p)["version"] for p in sent if p)  # (b"": the old shared topic deleted)
    assert versions == list(range(1, 46))
    assert store.rosters()["5a"]["version"] == 45
    store.close()
    other.close()


def test_uploads_left_by_an_enrollment_the_daemon_died_in_are_deleted(tmp_path: Path) -> None:
    """`enroll` with images_b64 writes the photos to <data>/photos/.incoming-<id>/ while it encodes them; a
    crash then left faces on the box that no listing, forget or retention ever reaches."""
    photos = tmp_path / "photos"
    stale = photos / ".incoming-0123abcd"
    stale.mkdir(parents=True)
    (stale / "0-ada.jpg").write_bytes(b"\xff\xd8 a face")
    (photos / "7.jpg").write_bytes(b"\xff\xd8 a stored photo")
    assert clear_incoming(photos) == 1
    assert not stale.exists() and (photos / "7.jpg").exists()


def test_the_hubs_fleet_survives_a_box_publishing_a_malformed_state(tmp_path: Path, postgres: Postgres) -> None:
    store = HubStore(postgres.new_database())
    ingest = Ingest(store, "attendance")
    assert ingest.handle("attendance/room-a/state", b'{"mode": "webcam", "session": "not an object"}') == "state"
    assert ingest.handle("attendance/room-b/state", b'{"mode": "webcam", "session": {"name": "maths"}}') == "state"
    assert ingest.handle("attendance/room-b/results", b"[" * 200_000) == "ignored:not-json"  # not a failure
    ctx = HubContext(store, RosterPublisher(store, "attendance", None, lambda t, p: None), tmp_path,
                     EnrollmentConfig(), lambda *a: None)
    answer = handle_hub(ctx, "fleet", Incoming("attendance/@hub/request/fleet", b"{}", False, None, None))
    assert answer.code == 200, answer.error
    assert {d["device_id"]: d["session"] for d in answer.data["devices"]} == {"room-a": None, "room-b": "maths"}
    store.close()


def test_a_roster_the_database_could_not_apply_stays_staged_and_is_applied_later(tmp_path: Path) -> None:
    """The staged roster was taken out before it was written: a failed write (disk full, a locked file) lost it
    until the hub happened to publish again, the box silently keeping the old roster."""
    store = Store(tmp_path / "a.sqlite3", allow_init=True)
    sync = RosterSync(store, ["5a"], None)
    assert sync.offer("5a", _roster(1, ["s1"])) is None
    store._db.execute("CREATE TRIGGER full BEFORE INSERT ON students BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    with pytest.raises(sqlite3.Error, match="disk full"):
        sync.apply_staged()
    assert sync.pending() and sync.status() == {"5a": {"version": None, "hash": None, "pending": 1}}
    store._db.execute("DROP TRIGGER full")
    assert sync.apply_staged() == ["5a v1"] and not sync.pending()
    assert [s.student_id for s in store.students("5a")] == ["s1"]
    store.close()


def test_an_oversized_roster_refused_unread_is_an_info_problem(tmp_path: Path) -> None:
    """The daemon refuses a roster beyond MAX_ROSTER_BYTES on paho's thread without queueing it; that refusal was
    only a log line, so Info showed no problem while the box kept its old roster."""
    store = Store(tmp_path / "a.sqlite3", allow_init=True)
    sync = RosterSync(store, ["5a"], None)
    reason = sync.refuse("5a", f"roster message of {MAX_ROSTER_BYTES + 1} bytes; at most {MAX_ROSTER_BYTES}")
    assert sync.problems() == [reason] and reason.startswith("roster 5a: refused: roster message of")
    assert sync.offer("5a", b"") is None and sync.problems() == [reason]  # the empty wake-up changes nothing
    assert sync.offer("5a", _roster(1, ["s1"])) is None and sync.problems() == []
    store.close()


def test_a_hub_forget_in_one_section_survives_a_replay_of_that_sections_results(postgres: Postgres) -> None:
    """Boxes replay their retained results (every reconnect, the hub's own re-subscription). A forget limited to
    a section was not remembered, so the replayed payload (same session, same end) replaced the scrubbed row
    and the student's attendance was back at the hub."""
    store = HubStore(postgres.new_database())
    store.assign("room-1", "5a")
    store.assign("room-1", "6b")  # (a box's results count only for the sections it teaches)
    ingest = Ingest(store, "attendance")
    payload = json.dumps(_results("aaaaaaaa-1", ["s1", "s2"], [], "2026-11-26T09:45:00Z")).encode()
    assert ingest.handle("attendance/room-1/results", payload) == "results:inserted"
    counts = store.forget("s1", "5a", "anonymise")
    assert counts.attendance_rows == 1 and store.student_report("s1", None, None, 100) == []
    assert ingest.handle("attendance/room-1/results", payload) == "results:duplicate"  # the replay, scrubbed alike
    assert store.student_report("s1", None, None, 100) == []
    assert [r["student_id"] for r in store.student_report("s2", None, None, 100)] == ["s2"]
    other = json.dumps({**_results("bbbbbbbb-2", ["s1"], [], "2026-11-26T10:45:00Z"), "section": "6b"}).encode()
    assert ingest.handle("attendance/room-1/results", other) == "results:inserted"  # another section: kept
    assert [r["section"] for r in store.student_report("s1", None, None, 100)] == ["6b"]
    store.close()


def test_the_cli_refuses_local_roster_changes_in_hub_managed_sections(tmp_path: Path) -> None:
    """Over MQTT, enroll and remove_student in a [roster] section are 409; the shell's `attendance-daemon enroll`,
    `enroll-bulk`, `remove-student` and `remove-section` changed the same sections silently."""
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('[paths]\ndata_dir = "data"\n[roster]\nsections = ["5a"]\n')
    store = Store(tmp_path / "data" / "attendance.sqlite3", allow_init=True)
    store.add_encoding(store.upsert_student("5a", "s1", "Ada"), np.zeros(128), "hub v1")
    store.close()
    photo = tmp_path / "bulk" / "5a" / "s2__Bob"
    photo.mkdir(parents=True)
    (photo / "bob.jpg").write_bytes(b"not an image: refused before it is read")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "attendance_daemon", "--config", str(cfg), *args],
                              capture_output=True, text=True, timeout=300, check=False)

    for args in (("enroll", "--section", "5a", "--student-id", "s2", "--name", "Bob", str(photo / "bob.jpg")),
                 ("remove-student", "--section", "5a", "--student-id", "s1"), ("remove-section", "--section", "5a")):
        proc = cli(*args)
        assert proc.returncode == 1 and "managed by the hub" in proc.stderr, (args, proc.stderr)
    bulk = cli("enroll-bulk", str(tmp_path / "bulk"))
    assert bulk.returncode == 1 and "skipped 5a/s2: section: managed by the hub" in bulk.stderr, bulk.stderr
    assert cli("students", "--section", "5a").stdout == "s1\tAda\t1 encoding(s)\n"  # nothing changed


def test_removing_a_student_or_section_deletes_their_stored_photos(tmp_path: Path) -> None:
    """Photos enrolled over MQTT are kept as <data>/photos/<photo id>.jpg; `remove_student` (MQTT and CLI) and
    `remove-section` deleted the rows and left the face photos behind, listed and erasable by nothing."""
    cfg = tmp_path / "cfg.toml"
    cfg.write_text('[paths]\ndata_dir = "data"\n')
    photos = tmp_path / "data" / "photos"
    photos.mkdir(parents=True)
    store = Store(tmp_path / "data" / "attendance.sqlite3", allow_init=True)
    for section, sid in (("5a", "s1"), ("5a", "s2"), ("6b", "s3")):
        enc = store.add_encoding(store.upsert_student(section, sid, sid.upper()), np.zeros(128), "upload")
        (photos / f"{enc}.jpg").write_bytes(b"\xff\xd8 a face")
        store.set_encoding_photo(enc, f"{enc}.jpg")
    doomed = store.remove_student("5a", "s1")  # recorded with the rows; the caller sweeps
    assert [(d.root, d.path) for d in store.doomed(doomed)] == [("photos", "1.jpg")]
    wal = tmp_path / "data" / "attendance.sqlite3-wal"
    assert wal.stat().st_size == 0  # the encodings' old pages do not stay in the write-ahead log either
    (photos / "1.jpg").unlink()
    store.close()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "attendance_daemon", "--config", str(cfg), *args],
                              capture_output=True, text=True, timeout=300, check=False)

    assert cli("remove-student", "--section", "5a", "--student-id", "s2").returncode == 0
    assert not (photos / "2.jpg").exists()
    assert cli("remove-section", "--section", "6b").returncode == 0
    assert sorted(p.name for p in photos.iterdir()) == []
