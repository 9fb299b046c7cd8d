"""`attendancectl hub ...` as a user runs it, against the real hub on a real PostgreSQL and a central mosquitto
with passwords and the sample ACL (deploy/central-mosquitto.acl): every hub subcommand as the `office` user, its
files, its errors (exit 1 with the hub's code, exit 2 for usage), a box's user kept out, a hub missing or
offline."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pypdf import PdfReader

from attendance_daemon.contract.roster_message import open_roster
from tests.hub_fixtures import HubProcess, Postgres, results_payload
from tests.mqtt_fixtures import Broker, RecordingClient

REPO = Path(__file__).resolve().parent.parent
USERS = {"office": "office-pw", "attendance-hub": "hub-pw", "room-1": "room-pw"}


def _central(tmp: Path) -> Broker:
    return Broker.with_passwords(tmp / "central", USERS, REPO / "deploy" / "central-mosquitto.acl")


def _client(broker: Broker, user: str, device: str) -> RecordingClient:
    return RecordingClient("127.0.0.1", broker.port, device, username=user, password=USERS[user])


def hubctl(broker: Broker, *args: str, timeout: float = 20, user: str = "office") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from attendance_daemon.cli.ctl import main; main()",
                           "--port", str(broker.port), "--username", user, "--timeout", str(timeout), "hub", *args],
                          capture_output=True, text=True, timeout=180, check=False,
                          env={**os.environ, "ATTENDANCE_MQTT_PASSWORD": USERS[user]})


def ok(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def failed(proc: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in proc.stderr, (word, proc.stderr)


def _until(what: str, fn: Any, timeout: float = 60.0) -> Any:
    """Polls `fn` until it returns something truthy (the hub stores asynchronously); no timing is asserted."""
    deadline = time.monotonic() + timeout
    while not (value := fn()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.2)
    return value


def test_attendancectl_hub(tmp_path: Path, postgres: Postgres, sample: dict[str, Any]) -> None:
    broker = _central(tmp_path)
    hub = HubProcess(tmp_path / "hub", broker, postgres.new_database())
    with hub.config.open("a") as config:  # [mqtt] is its last table
        config.write(f'username = "attendance-hub"\npassword = "{USERS["attendance-hub"]}"\n')
    failed(hubctl(broker, "fleet"), 1, "the hub is unknown on this broker")  # no attendance-hub here yet
    photo_dir = next(Path(sample["enrollment"], "demo").iterdir())
    photo = next(photo_dir.iterdir())
    shutil.copytree(photo_dir, tmp_path / "hub" / "data" / "enrollment" / "faces")
    hub.start(wait=False)
    try:
        with _client(broker, "office", "@hub") as office:
            office.wait_for("availability", lambda v: v == "online", timeout=60)
        # a box's user may not talk to the hub (the sample ACL): it does not even see it
        failed(hubctl(broker, "fleet", user="room-1"), 1, "the hub is unknown on this broker")
        results = results_payload("bbbbbbbb-1", ["s1", "s2"], ["s3"], "2026-11-26T09:45:00Z")
        with _client(broker, "room-1", "room-1") as box:
            box.client.publish("attendance/room-1/availability", b"online", qos=1, retain=True).wait_for_publish(5)
            box.client.publish("attendance/room-1/results", json.dumps(results).encode(), qos=1,
                               retain=True).wait_for_publish(5)
            _until("stored", lambda: json.loads(hubctl(broker, "sessions").stdout or "[]"))
            # room-1 is not assigned 5a yet: its results are quarantined (kept out of reports) until released
            assert ok(hubctl(broker, "report", "--section", "5a"))["rows"] == []
            held = ok(hubctl(broker, "quarantine", "--device", "room-1"))
            assert [(q["session_id"], q["section"]) for q in held] == [("bbbbbbbb-1", "5a")]
            assert ok(hubctl(broker, "release", "room-1", "bbbbbbbb-1"))["released"] is True
            failed(hubctl(broker, "release", "room-1", "bbbbbbbb-1"), 1, "404", "session_id")
            assert ok(hubctl(broker, "assign", "room-1", "5a"))["assigned"] is True
            assert ok(hubctl(broker, "assignments")) == {"room-1": ["5a"]}
            failed(hubctl(broker, "assign", "Room 1", "5a"), 1, "400", "device_id")

            fleet = ok(hubctl(broker, "fleet"))
            assert [(d["device_id"], d["online"]) for d in fleet["devices"]] == [("room-1", True)]
            stored = ok(hubctl(broker, "sessions", "--device", "room-1", "--section", "5a"))
            assert [(s["session_id"], s["present_count"], s["total"]) for s in stored] == [("bbbbbbbb-1", 2, 3)]
            assert ok(hubctl(broker, "sessions", "--device", "room-2")) == []
            failed(hubctl(broker, "sessions", "--limit", "0"), 1, "400", "limit")

            csv_out, pdf_out = tmp_path / "5a.csv", tmp_path / "5a.pdf"
            proc = hubctl(broker, "report", "--section", "5a", "--format", "csv", "--out", str(csv_out))
            assert proc.returncode == 0 and "3 rows" in proc.stdout, proc.stderr
            lines = csv_out.read_text().splitlines()
            assert lines[0].startswith("student_id,name,present") and sorted(x[:2] for x in lines[1:]) == [
                "s1", "s2", "s3"]
            proc = hubctl(broker, "report", "--section", "5a", "--format", "pdf", "--out", str(pdf_out))
            assert proc.returncode == 0, proc.stderr
            text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf_out.read_bytes())).pages)
            assert "Attendance of section 5a" in text and "S3" in text
            student = ok(hubctl(broker, "report", "--student", "s3"))
            assert [(r["student_id"], r["present"], r["device_id"]) for r in student["rows"]] == [
                ("s3", False, "room-1")]
            assert student["summary"] == {"s3": {"sessions": 1, "present": 0, "late": 0, "excused": 0, "counted": 1,
                                                 "percent": 0.0}}
            assert hubctl(broker, "report", "--student", "s1", "--format", "csv").stdout.splitlines()[1] \
                .startswith("s1,S1,True")
            failed(hubctl(broker, "report", "--format", "csv"), 2, "--student or --section")
            failed(hubctl(broker, "report", "--section", "5a", "--format", "pdf"), 2, "--out")
            failed(hubctl(broker, "report", "--section", "5a", "--since", "yesterday"), 1, "400", "since")

            # rosters: paths on the hub (its enrollment directory), like `attendance-hub enroll`
            failed(hubctl(broker, "enroll", "--section", "7b", "--student-id", "s1", "--name", "Ann",
                          "faces/missing.jpg"), 1, "no image was accepted", "file not found")
            failed(hubctl(broker, "enroll", "--section", "7b", "--student-id", "s1", "--name", "Ann",
                          "../hub.toml"), 1, "403", "outside")
            enrolled = ok(hubctl(broker, "enroll", "--section", "7b", "--student-id", "s1", "--name", "Ann",
                                 f"faces/{photo.name}", timeout=150))
            assert enrolled["encodings_added"] == 1 and enrolled["roster"]["version"] == 1
            published = ok(hubctl(broker, "rosters"))
            assert list(published) == ["7b"] and published["7b"]["version"] == 1
            assert ok(hubctl(broker, "assign", "room-1", "7b"))["roster"] == published["7b"]
            with _client(broker, "office", "@hub") as watcher:
                watcher.wait_for("roster/room-1/7b", lambda r: r["version"] == 1)
                retained = open_roster(watcher.latest["roster/room-1/7b"], None)
            assert retained.hash == published["7b"]["hash"] and [s.name for s in retained.students] == ["Ann"]
            again = ok(hubctl(broker, "enroll", "--section", "7b", "--student-id", "s1", "--name", "Ann",
                              f"faces/{photo.name}", timeout=150))  # the same photo: nothing added, not an error
            assert again["encodings_added"] == 0 and again["skipped"] == [photo.name] and again["roster"] is None
            assert ok(hubctl(broker, "publish", "7b"))["version"] == 2
            failed(hubctl(broker, "publish", "8c"), 1, "404", "section")
            [one] = ok(hubctl(broker, "photos", "--section", "7b", "--student-id", "s1"))
            assert one["source"] == photo.name and len(one["sha256"]) == 64
            dropped = ok(hubctl(broker, "remove-photo", "--section", "7b", "--student-id", "s1", str(one["photo_id"])))
            assert dropped["removed"] is True and dropped["roster"]["version"] == 3
            assert ok(hubctl(broker, "photos", "--section", "7b", "--student-id", "s1")) == []
            failed(hubctl(broker, "remove-photo", "--section", "7b", "--student-id", "s1", str(one["photo_id"])), 1,
                   "404", "photo_id")
            removed = ok(hubctl(broker, "remove-student", "--section", "7b", "--student-id", "s1"))
            assert removed["removed"] is True and removed["roster"]["version"] == 4
            failed(hubctl(broker, "remove-student", "--section", "7b", "--student-id", "s1"), 1, "404")

            forgot = ok(hubctl(broker, "forget", "s3", "--remove-attendance"))
            assert forgot["sent_to"] == ["room-1"] and forgot["attendance_rows"] == 1
            sent = box.wait_for("request/forget_student", lambda r: r["student_id"] == "s3", timeout=30)
            assert sent["attendance"] == "remove" and "section" not in sent
            assert ok(hubctl(broker, "report", "--student", "s3"))["rows"] == []
        hub.stop()
        failed(hubctl(broker, "rosters"), 1, "the hub is offline")  # its clean stop (or will) says so at once
    finally:
        hub.stop()
        broker.stop()
