"""forget_student at the hub finishes: attendance-hub as a real process on a real PostgreSQL, a central mosquitto
with passwords and the shipped ACL (deploy/central-mosquitto.acl), a box's user publishing as a box's bridge does.
The student's events go, the retained results and live roster the box left on the central broker are replaced,
nothing in the hub's tables names them, and a new student given the same id later keeps their attendance."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

from attendance_daemon.common.timeutil import iso, utcnow
from attendance_daemon.hub.migrations import MIGRATIONS
from attendance_daemon.hub.store import HubStore, student_digest
from tests.hub_fixtures import HubProcess, Postgres, results_payload
from tests.mqtt_fixtures import Broker, RecordingClient

REPO = Path(__file__).resolve().parent.parent
USERS = {"office": "office-pw", "attendance-hub": "hub-pw", "room-1": "room-pw"}


def _client(broker: Broker, user: str, device: str) -> RecordingClient:
    return RecordingClient("127.0.0.1", broker.port, device, username=user, password=USERS[user])


def _rows(dsn: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as db:
        return db.execute(sql.encode(), args).fetchall()


def _until(what: str, fn: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := fn()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f}s"
        time.sleep(0.2)
    return value


def _tables_text(dsn: str) -> str:
    """Every row of every table of the hub, as text (JSON payloads included)."""
    tables = [r[0] for r in _rows(dsn, "SELECT table_name FROM information_schema.tables "
                                       "WHERE table_schema = 'public'")]
    assert {"sessions", "attendance", "events", "forget_deliveries"} <= set(tables)
    return "\n".join(json.dumps(_rows(dsn, f"SELECT * FROM {t}"), default=str) for t in tables)


def _retained(broker: Broker) -> dict[str, bytes]:
    """What the central broker retains under the box, as a dashboard connecting now gets it."""
    with _client(broker, "office", "room-1") as c:
        c.wait_for("availability", lambda v: True, timeout=10)
        time.sleep(1.0)  # every retained message of the box arrives right after the subscription
        return dict(c.latest)


def test_hub_forget_removes_events_replaces_retained_and_a_reused_id_is_a_new_person(
        tmp_path: Path, postgres: Postgres) -> None:
    central = Broker.with_passwords(tmp_path / "central", USERS, REPO / "deploy" / "central-mosquitto.acl")
    dsn = postgres.new_database()
    hub = HubProcess(tmp_path / "hub", central, dsn)
    with hub.config.open("a") as config:  # [mqtt] is its last table
        config.write(f'username = "attendance-hub"\npassword = "{USERS["attendance-hub"]}"\n')
    hub.start(wait=False)
    old = results_payload("aaaaaaaa-1", ["s1", "s2"], ["s3"], "2026-11-26T09:45:00Z")
    roster = {"device_id": "room-1", "session_id": "aaaaaaaa-1", "final": True,
              "students": [{"student_id": s, "name": s.upper(), "present": True} for s in ("s1", "s2")]}
    try:
        with _client(central, "office", "@hub") as office, _client(central, "room-1", "room-1") as box:
            office.wait_for("availability", lambda v: v == "online", timeout=60)
            office.request("assign", {"device_id": "room-1", "section": "5a"})  # room-1 teaches 5a: not quarantined
            pub = box.client.publish
            pub("attendance/room-1/availability", b"online", qos=1, retain=True).wait_for_publish(5)
            pub("attendance/room-1/results", json.dumps(old).encode(), qos=1, retain=True).wait_for_publish(5)
            pub("attendance/room-1/attendance", json.dumps(roster).encode(), qos=1, retain=True).wait_for_publish(5)
            for event in ({"type": "student_present", "session_id": "aaaaaaaa-1", "student_id": "s1", "name": "S1",
                           "at_s": 1.0},
                          {"type": "attendance_low", "section": "5a", "student_id": "s1", "name": "S1", "percent": 10},
                          {"type": "student_present", "session_id": "aaaaaaaa-1", "student_id": "s2", "name": "S2",
                           "at_s": 2.0}):
                event |= {"at": "2026-11-26T09:01:00Z", "device_id": "room-1"}
                pub("attendance/room-1/events", json.dumps(event).encode(), qos=1).wait_for_publish(5)
            _until("stored", lambda: _rows(dsn, "SELECT 1 FROM sessions") and
                   _rows(dsn, "SELECT count(*) FROM events")[0][0] == 3)
            before = _retained(central)
            assert b'"s1"' in before["results"] and b'"S1"' in before["attendance"]  # so the checks below can fail
            assert '"s1"' in _tables_text(dsn) and '"S1"' in _tables_text(dsn)

            done = office.request("forget_student", {"student_id": "s1"}, timeout=60)["data"]
            assert done["events_removed"] == 2 and done["retained_replaced"] == ["room-1"]
            assert done["sessions"] == 1 and done["attendance_rows"] == 1 and done["sent_to"] == ["room-1"]
            request = box.wait_for("request/forget_student", lambda r: r["student_id"] == "s1", timeout=30)
            after = _until("retained results replaced", lambda: (r := _retained(central)).get("results", b"")
                           and b'"s1"' not in r["results"] and r)
            assert "attendance" not in after  # the live roster, which the hub does not hold, is cleared
            scrubbed = json.loads(after["results"])
            assert scrubbed["session_id"] == "aaaaaaaa-1" and scrubbed["present_count"] == 2
            assert "S1" not in after["results"].decode()
            # the box answers; its answer is kept without the student's id
            answer = {"transaction": request["transaction"], "status": "ok", "code": 200,
                      "data": {"student_id": "s1", "sections": ["5a"]}, "error": None}
            pub("attendance/room-1/response/forget_student", json.dumps(answer).encode(), qos=1).wait_for_publish(5)
            _until("answered", lambda: _rows(dsn, "SELECT 1 FROM forget_deliveries WHERE answered_at IS NOT NULL"))
            # a late re-send of the old event and of the old results: kept out, scrubbed
            late = {"type": "student_present", "session_id": "aaaaaaaa-1", "student_id": "s1", "name": "S1",
                    "at_s": 1.5, "at": "2026-11-26T09:02:00Z", "device_id": "room-1"}
            pub("attendance/room-1/events", json.dumps(late).encode(), qos=1).wait_for_publish(5)
            pub("attendance/room-1/results", json.dumps(old).encode(), qos=1).wait_for_publish(5)
            _until("replay counted", lambda: _rows(dsn, "SELECT 1 FROM sessions WHERE deliveries >= 3"))
            text = _tables_text(dsn)
            assert '"s1"' not in text and '"S1"' not in text, "the hub still names s1"

            # a new pupil is given the id s1: their attendance is theirs, not the forgotten one's alias
            start = utcnow()  # after the forget
            new = results_payload("cccccccc-2", ["s1", "s2"], [], iso(start + timedelta(minutes=45)))
            new |= {"started_at": iso(start)}
            new["present"][0]["name"] = "Sam Newcomer"
            pub("attendance/room-1/results", json.dumps(new).encode(), qos=1, retain=True).wait_for_publish(5)
            event = {"type": "student_present", "session_id": "cccccccc-2", "student_id": "s1",
                     "name": "Sam Newcomer", "at_s": 1.0, "at": iso(utcnow()), "device_id": "room-1"}
            pub("attendance/room-1/events", json.dumps(event).encode(), qos=1).wait_for_publish(5)
            _until("new session stored", lambda: _rows(dsn, "SELECT 1 FROM sessions WHERE session_id = 'cccccccc-2'"))
            report = office.request("student_report", {"student_id": "s1"})["data"]
            assert [(r["session"], r["name"], r["present"]) for r in report["rows"]] == [
                (new["name"], "Sam Newcomer", True)]
            _until("their event stored", lambda: _rows(
                dsn, "SELECT 1 FROM events WHERE payload->>'name' = 'Sam Newcomer'"))
            assert _rows(dsn, "SELECT count(*) FROM events WHERE payload->>'student_id' = 's1'") == [(1,)]
    finally:
        hub.stop()
        central.stop()


def test_schema_3_keeps_the_forgets_of_schema_2_with_their_time(postgres: Postgres) -> None:
    """A hub upgraded from schema 2: its forgets (every section, and one section) become rows of `forgets`, and a
    replay of a session that started before them is still scrubbed, one that started after is not."""
    dsn = postgres.new_database()
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute(b"CREATE TABLE schema_version (version INTEGER NOT NULL)")
        db.execute(b"INSERT INTO schema_version VALUES (2)")
        for script in MIGRATIONS[:2]:
            db.execute(script.encode())
        db.execute(b"INSERT INTO forgotten (digest, mode, alias, at) VALUES (%s, 'anonymise', 'forgotten-aaaa', "
                   b"'2026-11-27T00:00:00Z')", (student_digest("s1"),))
        db.execute(b"INSERT INTO forgotten_in (digest, section, mode, alias, at) VALUES (%s, '5a', 'remove', NULL, "
                   b"'2026-11-27T00:00:00Z')", (student_digest("s2"),))
    store = HubStore(dsn)
    try:
        assert store.schema_version() == len(MIGRATIONS)
        assert _rows(dsn, "SELECT section, mode, alias LIKE 'forgotten-%%' FROM forgets ORDER BY section") == [
            ("5a", "remove", True), (None, "anonymise", True)]
        assert store.store_results("room-1", results_payload("aaaaaaaa-1", ["s1", "s2"], ["s3"],
                                                             "2026-11-26T09:45:00Z")) == "inserted"
        later = results_payload("bbbbbbbb-2", ["s1", "s2"], ["s3"], "2026-12-01T09:45:00Z")
        later["started_at"] = "2026-12-01T09:00:00Z"
        assert store.store_results("room-1", later) == "inserted"
        rows = _rows(dsn, "SELECT session_id, student_id FROM attendance ORDER BY session_id, student_id")
        assert rows == [("aaaaaaaa-1", "forgotten-aaaa"), ("aaaaaaaa-1", "s3"),
                        ("bbbbbbbb-2", "s1"), ("bbbbbbbb-2", "s2"), ("bbbbbbbb-2", "s3")]
    finally:
        store.close()
