"""The fleet's trust model with real parts (issue 19 items 3 and 5): a central mosquitto with passwords and the
sample ACL (deploy/central-mosquitto.acl), attendance-hub on PostgreSQL signing with an Ed25519 key, and two
daemons, each on its own mosquitto bridged with the rendered bridge: room-1 trusts the hub's key, room-2 still
checks only the shared HMAC secret (a box not yet moved to keys: the upgrade path).

One hub, broker and pair of daemons for the module (`fleet`); each test uses its own sections."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from PIL import Image

from attendance_daemon.contract.roster_message import MAX_ROSTER_ENCODINGS, open_roster, seal
from attendance_daemon.contract.roster_signing import RosterSigner, trusted_keys
from attendance_daemon.hub.migrations import MIGRATIONS
from attendance_daemon.hub.store import HubStore
from attendance_daemon.mqtt.bridge import BridgeSpec, box_roster_topic, render
from tests.hub_fixtures import HubProcess, Postgres, results_payload
from tests.mqtt_fixtures import Broker, DaemonProcess, RecordingClient

REPO = Path(__file__).resolve().parent.parent
USERS = {"attendance-hub": "hub-pw", "office": "office-pw", "room-1": "pw-1", "room-2": "pw-2"}
SECRET = b"the fleet's one shared secret"


def _until(what: str, fn: Any, timeout: float = 90.0) -> Any:
    """Polls `fn` until it returns something truthy; no timing is asserted."""
    deadline = time.monotonic() + timeout
    while not (value := fn()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.2)
    return value


@dataclass
class Fleet:
    tmp: Path
    central: Broker
    hub: HubProcess
    dsn: str
    keys: dict[str, RosterSigner]
    boxes: dict[str, DaemonProcess]
    brokers: dict[str, Broker]
    photo: Path  # one enrollment photo (one face), inside the hub's enrollment directory as `faces/<name>`

    def office(self) -> RecordingClient:
        return RecordingClient("127.0.0.1", self.central.port, "@hub", username="office", password=USERS["office"])

    def box(self, device: str) -> RecordingClient:
        return self.brokers[device].client(device)

    def set_hub_key(self, key: str, legacy: bool) -> None:
        """Restarts the hub signing with another key (a rotation), with or without the legacy topics."""
        text = self.hub.config.read_text().split("[mqtt]", 1)
        head = "\n".join(line for line in text[0].splitlines()
                         if not line.startswith(("roster_signing_key_file", "legacy_roster_topics")))
        self.hub.config.write_text(f'{head}\nroster_signing_key_file = "{self.tmp / key}.pem"\n'
                                   f"legacy_roster_topics = {str(legacy).lower()}\n[mqtt]{text[1]}")
        self.hub.stop()
        self.hub.start(wait=False)
        with self.office() as office:
            office.wait_for("availability", lambda v: v == "online")


def _daemon(tmp: Path, device: str, central: Broker, media: Path, sample: dict[str, Any], db: Path,
            roster: str) -> tuple[Broker, DaemonProcess]:
    work = tmp / device
    work.mkdir()
    broker = Broker(work, extra=render(BridgeSpec(device, f"127.0.0.1:{central.port}", username=device,
                                                  password=USERS[device], restart_timeout=(1, 2))))
    enrollment = work / "enrollment"
    shutil.copytree(sample["enrollment"], enrollment)
    return broker, DaemonProcess(work / "daemon", broker, media, enrollment, db, f"[roster]\n{roster}", device=device)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, postgres: Postgres, sample: dict[str, Any],
          enrolled_db: Path) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("fleet")
    keys = {name: RosterSigner.generate() for name in ("k1", "k2", "thief")}
    for name, signer in keys.items():
        (tmp / f"{name}.pem").write_bytes(signer.pem())
    (tmp / "secret").write_bytes(SECRET)
    central = Broker.with_passwords(tmp / "central", USERS, REPO / "deploy" / "central-mosquitto.acl")
    dsn = postgres.new_database()
    hub = HubProcess(tmp / "hub", central, dsn, extra=f'roster_signing_key_file = "{tmp / "k1.pem"}"\n'
                                                      f'roster_key_file = "{tmp / "secret"}"\n')
    with hub.config.open("a") as config:  # [mqtt] is its last table
        config.write(f'username = "attendance-hub"\npassword = "{USERS["attendance-hub"]}"\n')
    photo_dir = next(Path(sample["enrollment"], "demo").iterdir())
    shutil.copytree(photo_dir, tmp / "hub" / "data" / "enrollment" / "faces")
    photo = next((tmp / "hub" / "data" / "enrollment" / "faces").iterdir())
    brokers, boxes = {}, {}
    media = Path(sample["root"]) / "media"  # (no session runs here)
    trusting = f'sections = ["5a", "7a"]\ntrusted_keys = ["{keys["k1"].public_text()}"]\n'
    brokers["room-1"], boxes["room-1"] = _daemon(tmp, "room-1", central, media, sample, enrolled_db, trusting)
    brokers["room-2"], boxes["room-2"] = _daemon(tmp, "room-2", central, media, sample, enrolled_db,
                                                 f'sections = ["5a", "5b"]\nkey_file = "{tmp / "secret"}"\n')
    f = Fleet(tmp, central, hub, dsn, keys, boxes, brokers, photo)
    try:
        hub.start(wait=False)
        for box in boxes.values():
            box.start(wait=False)
        with f.office() as office:
            office.wait_for("availability", lambda v: v == "online")
        for device in boxes:
            with f.box(device) as c:
                c.wait_for("availability", lambda v: v == "online", timeout=120)
        yield f
    finally:
        for box in boxes.values():
            box.stop()
        hub.stop()
        for b in brokers.values():
            b.stop()
        central.stop()


def _variants(photo: Path, folder: Path, n: int, start: int = 0) -> list[Path]:
    """`n` distinct files of the same face (cropped a pixel more each): distinct photos, one face each."""
    folder.mkdir(parents=True, exist_ok=True)
    with Image.open(photo) as im:
        rgb = im.convert("RGB")
        rgb.thumbnail((480, 480))  # small: quick to encode, the face still found
        out = []
        for i in range(start, start + n):
            path = folder / f"p{i:02d}.png"
            rgb.crop((i, i, rgb.width - i, rgb.height - i)).save(path)
            out.append(path)
    return out


def _rows(dsn: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as db:
        return db.execute(sql, args).fetchall()


def test_cap_and_idempotent_enrollment_every_published_roster_applies(fleet: Fleet) -> None:
    """enroll-bulk run twice adds each photo once; the 21st encoding of a student is refused at the hub with the
    reason; a section already over the cap (an older hub's data) is not published but explained, and one photo
    removed makes it publishable; the box applies every roster the hub published."""
    bulk = fleet.tmp / "bulk"
    student = bulk / "7a" / "s1__Ann"
    _variants(fleet.photo, student, 1)
    first = fleet.hub.cli("enroll-bulk", str(bulk))
    assert first.returncode == 0, first.stderr
    assert "7a/s1 (Ann): 1 encoding(s)" in first.stdout and json.loads(
        first.stdout.split("roster 7a: ", 1)[1])["version"] == 1
    again = fleet.hub.cli("enroll-bulk", str(bulk))  # the same folder again: nothing new, no new version
    assert again.returncode == 0, again.stderr
    assert "7a/s1 (Ann): 0 encoding(s), 1 already enrolled" in again.stdout and "roster 7a" not in again.stdout
    _variants(fleet.photo, student, MAX_ROSTER_ENCODINGS, start=1)  # 20 more photos: one too many
    more = fleet.hub.cli("enroll-bulk", str(bulk))
    assert more.returncode == 0, more.stderr
    assert f"7a/s1 (Ann): {MAX_ROSTER_ENCODINGS - 1} encoding(s), 1 already enrolled" in more.stdout
    assert f"rejected p{MAX_ROSTER_ENCODINGS:02d}.png: the student has {MAX_ROSTER_ENCODINGS} encodings: at most " \
           f"{MAX_ROSTER_ENCODINGS} per student" in more.stderr
    with fleet.office() as office:
        assert office.request("rosters")["data"]["7a"]["version"] == 2
        photos = office.request("student_photos", {"section": "7a", "student_id": "s1"})["data"]
        assert len(photos) == MAX_ROSTER_ENCODINGS and all(len(p["sha256"]) == 64 for p in photos)
        # the 21st over MQTT too: rejected with the reason, nothing published; a photo it has is only skipped
        extra = _variants(fleet.photo, fleet.tmp / "hub" / "data" / "enrollment" / "extra", 1, start=30)[0]
        shutil.copy(student / "p00.png", extra.parent / "p00.png")
        over = office.request("enroll", {"section": "7a", "student_id": "s1", "name": "Ann",
                                         "images": ["extra/p30.png", "extra/p00.png"]}, timeout=120)["data"]
        assert over["encodings_added"] == 0 and over["roster"] is None and over["skipped"] == ["p00.png"]
        assert [r["image"] for r in over["rejected"]] == ["p30.png"]
        assert f"at most {MAX_ROSTER_ENCODINGS} per student" in over["rejected"][0]["reason"]
        # a hub database from before the cap: 21 encodings. Not published (a box would refuse it), but why
        with psycopg.connect(fleet.dsn) as db:
            db.execute("INSERT INTO roster_encodings (student, vector, source) SELECT student, vector, "
                       "'old-hub.jpg' FROM roster_encodings ORDER BY id LIMIT 1")
        refused = office.request("publish_roster", {"section": "7a"}, check=False)
        assert refused["code"] == 409, refused
        assert "'s1' has 21" in refused["error"] and f"at most {MAX_ROSTER_ENCODINGS} per student" in refused["error"]
        assert office.request("rosters")["data"]["7a"]["version"] == 2  # no version used up
        old = [p for p in office.request("student_photos", {"section": "7a", "student_id": "s1"})["data"]
               if p["source"] == "old-hub.jpg"]
        assert old[0]["sha256"] is None
        removed = office.request("remove_photo", {"section": "7a", "student_id": "s1",
                                                  "photo_id": old[0]["photo_id"]})["data"]
        assert removed["roster"]["version"] == 3 and removed["roster_error"] is None
        gone = office.request("remove_photo", {"section": "7a", "student_id": "s1",
                                               "photo_id": old[0]["photo_id"]}, check=False)
        assert gone["code"] == 404 and "photo_id" in gone["error"]
        # assigned now: room-1 gets version 3 at once, on its own topic, and applies it
        assigned = office.request("assign", {"device_id": "room-1", "section": "7a"})["data"]
        assert assigned == {"device_id": "room-1", "section": "7a", "assigned": True,
                            "roster": office.request("rosters")["data"]["7a"]}
        message = office.wait_for("roster/room-1/7a", lambda r: r["version"] == 3)
        roster = open_roster(json.dumps(message).encode(), None, trusted_keys([fleet.keys["k1"].public_text()]))
        assert [len(s.encodings) for s in roster.students] == [MAX_ROSTER_ENCODINGS]
    with fleet.box("room-1") as box:
        box.wait_for("info", lambda i: i["rosters"].get("7a", {}).get("version") == 3)
        assert box.request("students", {"section": "7a"})["data"] == [
            {"student_id": "s1", "name": "Ann", "encodings": MAX_ROSTER_ENCODINGS}]


class _Watcher:
    """A raw MQTT client logged in as a box's user on the central broker: what may it read?"""

    def __init__(self, port: int, user: str, topics: list[str]) -> None:
        self.got: dict[str, bytes] = {}
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.username_pw_set(user, USERS[user])
        self.client.on_connect = lambda c, *a: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = lambda c, u, m: self.got.__setitem__(m.topic, bytes(m.payload))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_signed_rosters_per_room_refusals_rotation_and_quarantine(fleet: Fleet) -> None:
    k1, k2, thief = fleet.keys["k1"], fleet.keys["k2"], fleet.keys["thief"]
    with fleet.office() as office:
        for section, sid in (("5a", "a1"), ("5b", "b1")):
            done = office.request("enroll", {"section": section, "student_id": sid, "name": sid.upper(),
                                             "images": [f"faces/{fleet.photo.name}"]}, timeout=120)["data"]
            assert done["roster"]["version"] == 1
        for device, section in (("room-1", "5a"), ("room-2", "5a"), ("room-2", "5b")):
            office.request("assign", {"device_id": device, "section": section})
        assigned = office.request("assignments")["data"]  # (the test above assigns room-1 7a too)
        assert "5a" in assigned["room-1"] and assigned["room-2"] == ["5a", "5b"]
        bad = office.request("assign", {"device_id": "Room 1", "section": "5a"}, check=False)
        assert bad["code"] == 400 and "device_id" in bad["error"]
        # each box applies its sections: room-1 by the hub's signature, room-2 by the shared secret
        with fleet.box("room-1") as one, fleet.box("room-2") as two:
            one.wait_for("info", lambda i: i["rosters"].get("5a", {}).get("version") == 1)
            two.wait_for("info", lambda i: {s: r.get("version") for s, r in i["rosters"].items()} == {"5a": 1, "5b": 1})
            assert "5b" not in one.json("info")["rosters"]

            # forged on room-1's own broker: the shared secret (any box has it) and a key room-1 does not trust
            topic = box_roster_topic("attendance", "room-1", "5a")
            body = {"section": "5a", "version": 2, "published_at": "2026-11-26T09:00:00Z",
                    "students": [{"student_id": "a1", "name": "Mallory", "encodings": [[0.5] * 128]}]}
            borrowed = {**seal(body, SECRET, thief), "key_id": k1.key_id}  # the hub's id, the thief's signature
            borrowed["hash"] = seal({k: v for k, v in borrowed.items() if k not in ("hash", "hmac", "signature")},
                                    None)["hash"]
            for forged, why in ((seal(body, SECRET), "signature missing"),
                                (seal(body, SECRET, thief), f"key_id '{thief.key_id}' is not one of this box's"),
                                (borrowed, f"signature does not verify with key '{k1.key_id}'")):
                one.client.publish(topic, json.dumps(forged).encode(), qos=1, retain=True).wait_for_publish(5)

                def said(info: dict[str, Any], why: str = why) -> bool:
                    return any(why in p for p in info["problems"])

                one.wait_for("info", said)
            assert one.json("info")["rosters"]["5a"]["version"] == 1
            assert [s["name"] for s in one.request("students", {"section": "5a"})["data"]] == ["A1"]

        # rotation done in the wrong order (room-1 does not trust k2 yet), with the legacy topic on: room-2
        # applies version 2, room-1 refuses it, and the hub's fleet shows which box refused and why
        fleet.set_hub_key("k2", legacy=True)
        assert office.request("publish_roster", {"section": "5a"})["data"]["version"] == 2

        def status(device: str, section: str) -> dict[str, Any]:
            devices = {d["device_id"]: d for d in office.request("fleet")["data"]["devices"]}
            found: dict[str, Any] = devices.get(device, {}).get("roster_status", {}).get(section, {})
            return found

        def refusal() -> dict[str, Any] | None:
            s = status("room-1", "5a")  # (until the box says why: its earlier refusal, the forgery, may show first)
            return s if s.get("state") == "refused" and k2.key_id in (s.get("reason") or "") else None

        refused = _until("room-1's refusal at the hub", refusal)
        assert refused["published"] == 2 and refused["applied"] == 1
        assert f"key_id '{k2.key_id}' is not one of this box's roster.trusted_keys" in refused["reason"]
        assert _until("room-2 applied v2", lambda: status("room-2", "5a").get("state") == "applied")
        legacy = office.wait_for("roster/5a", lambda r: r["version"] == 2)
        assert set(legacy) == {"section", "version", "published_at", "students", "hash", "hmac"}
        assert open_roster(json.dumps(legacy).encode(), SECRET).version == 2  # what a box not yet upgraded takes

        # a box's user reads only its own rosters on the central broker: not another room's, not the legacy topic
        watcher = _Watcher(fleet.central.port, "room-1", ["attendance/@hub/roster/#", "attendance/@hub/#"])
        try:
            own = box_roster_topic("attendance", "room-1", "5a")
            _until("room-1's own roster", lambda: own in watcher.got)
            time.sleep(1)  # retained messages come in one burst on subscribing: any other would be here by now
            assert own in watcher.got and all(t.startswith("attendance/@hub/roster/room-1/") for t in watcher.got), \
                sorted(watcher.got)
            assert "roster/room-2/5b" in office.latest and "roster/5a" in office.latest  # they do exist
        finally:
            watcher.close()

        # the box trusts the next key too (restarted with it): the retained version 2 applies
        room1 = fleet.boxes["room-1"]
        room1.stop()
        room1.config.write_text(room1.config.read_text().replace(
            f'trusted_keys = ["{k1.public_text()}"]', f'trusted_keys = ["{k1.public_text()}", "{k2.public_text()}"]'))
        room1.start(wait=False)
        assert _until("room-1 applied v2", lambda: status("room-1", "5a").get("state") == "applied", timeout=120)
        # legacy topics off again: the next publication deletes the old shared topic's retained roster
        fleet.set_hub_key("k2", legacy=False)
        office.latest.pop("roster/5a")
        office.request("publish_roster", {"section": "5a"})
        office.wait_for("roster/room-2/5a", lambda r: r["version"] == 3)
        assert "roster/5a" not in office.latest or office.latest["roster/5a"] == b""
        fleet_now = {d["device_id"]: d for d in office.request("fleet")["data"]["devices"]}
        assert fleet_now["room-2"]["sections"] == ["5a", "5b"]

        # results: a box counts only for the sections it teaches; others are quarantined, listed, never reported
        with RecordingClient("127.0.0.1", fleet.central.port, "room-2", username="room-2",
                             password=USERS["room-2"]) as room2:
            for session_id, section in (("cccccccc-1", "5a"), ("cccccccc-2", "9z")):
                results = {**results_payload(session_id, ["a1"], [], "2026-11-26T09:45:00Z"), "section": section,
                           "device_id": "room-2"}
                room2.client.publish("attendance/room-2/results", json.dumps(results).encode(), qos=1,
                                     retain=True).wait_for_publish(5)
                _until(f"{session_id} stored", lambda sid=session_id: _rows(
                    fleet.dsn, "SELECT 1 FROM sessions WHERE session_id = %s", sid))
        stored = {s["session_id"]: s["quarantined"]
                  for s in office.request("sessions", {"device_id": "room-2"})["data"]}
        assert stored == {"cccccccc-1": False, "cccccccc-2": True}
        assert office.request("section_report", {"section": "9z"})["data"]["rows"] == []
        assert [r["session"] for r in office.request("student_report", {"student_id": "a1"})["data"]["rows"]] == [
            "s-cccccc"]
        held = office.request("quarantine", {"device_id": "room-2"})["data"]
        assert [(q["session_id"], q["section"]) for q in held] == [("cccccccc-2", "9z")]
        assert {d["device_id"]: d["quarantined"] for d in office.request("fleet")["data"]["devices"]} == {
            "room-1": 0, "room-2": 1}
        assert office.request("release_session", {"device_id": "room-2", "session_id": "cccccccc-2"})["data"][
            "released"] is True
        assert len(office.request("section_report", {"section": "9z"})["data"]["rows"]) == 1
        assert office.request("release_session", {"device_id": "room-2", "session_id": "cccccccc-2"},
                              check=False)["code"] == 404
        # unassigned: the box's retained roster is withdrawn
        assert office.request("unassign", {"device_id": "room-2", "section": "5b"})["data"]["unassigned"] is True
        _until("room-2's 5b withdrawn", lambda: office.latest.get("roster/room-2/5b") == b"")


def test_upgrade_assigns_what_was_accepted_and_quarantines_the_rest(postgres: Postgres) -> None:
    """A hub database of schema 2 (before assignments): the migration assigns each box the sections it has
    results for, so nothing stored moves out of the reports; a new section from the same box is quarantined."""
    dsn = postgres.new_database()
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (2)")
        for migration in MIGRATIONS[:2]:
            db.execute(migration.encode())
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("INSERT INTO sessions (device_id, session_id, name, section, status, started_at, present_count, "
                   "total, payload, digest) VALUES ('room-9', 'dddddddd-1', 'old', '5a', 'completed', now(), 1, 1, "
                   "'{}', 'x')")
        db.execute("INSERT INTO attendance (device_id, session_id, student_id, name, present) VALUES "
                   "('room-9', 'dddddddd-1', 's1', 'S1', true)")
    store = HubStore(dsn)
    try:
        assert store.schema_version() == len(MIGRATIONS)
        assert store.assignments() == {"room-9": ["5a"]}
        assert len(store.section_report("5a", None, None, 10)) == 1
        results = {**results_payload("dddddddd-2", ["s1"], [], "2026-11-26T09:45:00Z"), "section": "6b",
                   "device_id": "room-9"}
        assert store.store_results("room-9", results) == "inserted"
        assert store.section_report("6b", None, None, 10) == []
        assert [q["session_id"] for q in store.quarantined()] == ["dddddddd-2"]
        # a revision that moves it into an assigned section decides again
        assert store.store_results("room-9", {**results, "section": "5a", "ended_at": "2026-11-26T09:50:00Z"}) \
            == "revised"
        assert store.quarantined() == [] and len(store.section_report("5a", None, None, 10)) == 2
    finally:
        store.close()
