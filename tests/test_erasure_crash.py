"""Erasure that finishes: the daemon as a real process, killed (SIGKILL) by the test-only crash point of the
deletion sweep (privacy/sweep.py) after the commit and before each file deletion of `forget_student`,
`delete_session`, `remove_student` and a hub roster's apply; restarted; then every byte and every file name of the
data and enrollment directories is searched for what was erased.

One box is built once for the module (a real session on the classroom video with an export, a kept frame, a
report and an unknown visitor assigned to a student; students with photos sent over MQTT) and restored at the same
paths before every crash (the database names its files by absolute path)."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from attendance_daemon.cli.remote_files import upload_images
from attendance_daemon.contract.roster_message import seal
from attendance_daemon.mqtt.bridge import box_roster_topic
from attendance_daemon.privacy.sweep import KILL_ENV
from tests.mqtt_fixtures import Broker, DaemonProcess, RecordingClient

DEVICE = "crash-box"
LEAN = "[recognition]\nencoder_process = false\n"  # the erasures encode nothing: a faster start
REMOVED = ("REMOVE77", "Rita Removedottir")  # remove_student's, two photos sent over MQTT
DROPPED = ("HUBGONE1", "Hana Hubgone")  # enrolled locally, then left out of the hub's first roster of "rsec"
KEPT = ("HUBSTAY1", "Hugo Hubstay")


@dataclass
class Box:
    broker: Broker
    work: Path  # the daemon's directory: data/ and enrollment/ are restored here before every run
    media: Path
    snapshot: Path
    session_id: str
    session_name: str
    events: list[dict[str, Any]]
    s001: Any  # the sample's person S001: present in the video, given a second photo and the visitor's crop
    files: dict[str, set[Path]] = field(default_factory=dict)  # what each erasure must delete, in the snapshot

    def daemon(self, extra: str = "") -> DaemonProcess:
        return DaemonProcess(self.work, self.broker, self.media, self.work / "enrollment", None, extra=LEAN + extra,
                             device=DEVICE)

    def restore(self) -> None:
        for name in ("data", "enrollment"):
            shutil.rmtree(self.work / name, ignore_errors=True)
            shutil.copytree(self.snapshot / name, self.work / name, symlinks=True)

    def hashes(self, kind: str) -> set[str]:
        return {hashlib.sha256((self.snapshot / p).read_bytes()).hexdigest() for p in self.files[kind]}


def _unique_copies(folder: Path, images: list[Path]) -> list[Path]:
    """The photos as PNG files: bytes found nowhere else (the sample's enrollment folders hold the JPEGs), so a
    file with one of their hashes left on the box can only be an erased photo."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, image in enumerate(images):
        out.append(folder / f"upload{i}.png")
        Image.open(image).convert("RGB").save(out[-1], "PNG")
    return out


def _photo_files(data: Path, ids: list[int]) -> set[Path]:
    return {p.relative_to(data.parent) for i in ids for p in (data / "photos").glob(f"{i}.*")}


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory, daemon_media: Path, sample: dict[str, Any], enrolled_db: Path,
        people: list[Any]) -> Iterator[Box]:
    root = tmp_path_factory.mktemp("crash")
    broker = Broker(root)
    work = root / "box"
    shutil.copytree(sample["enrollment"], work / "enrollment")
    d = DaemonProcess(work, broker, daemon_media, work / "enrollment", enrolled_db, device=DEVICE).start()
    s001 = next(p for p in people if p.student_id == "S001")
    others = [p for p in people if p.student_id != "S001"]
    upload = _unique_copies(root / "uploads", [s001.appear, others[0].enroll, others[0].appear, others[1].enroll,
                                               others[1].appear])
    try:
        with broker.client(DEVICE) as c:
            first = c.request("enroll", {"section": "demo", "student_id": s001.student_id, "name": s001.name,
                                         "images_b64": upload_images(upload[:1])}, timeout=120)["data"]
            sid = c.request("start_mp4", {"path": "classroom.mp4", "section": "demo", "session_name": "crashsess",
                                          "export": True})["data"]["session"]["id"]
            c.wait_for("results", lambda r: r["session_id"] == sid and r["status"] == "completed", timeout=180)
            c.wait_for("events", lambda e: e["type"] == "session_finished" and e["session_id"] == sid)
            events = [json.loads(p) for leaf, p, _ in c.messages if leaf == "events"]
            face = c.request("unknown_faces", {"session_id": sid})["data"][0]["face_id"]
            assigned = c.request("assign_unknown", {"face_id": face, "section": "demo",
                                                    "student_id": s001.student_id}, timeout=120)["data"]
            c.request("report", {"session_id": sid})  # reports/crashsess.csv, which names every student
            removed = c.request("enroll", {"section": "demo", "student_id": REMOVED[0], "name": REMOVED[1],
                                           "images_b64": upload_images(upload[1:3])},
                                timeout=120)["data"]
            dropped = c.request("enroll", {"section": "rsec", "student_id": DROPPED[0], "name": DROPPED[1],
                                           "images_b64": upload_images(upload[3:5])},
                                timeout=120)["data"]
            assert len(removed["photo_ids"]) == len(dropped["photo_ids"]) == 2
    finally:
        d.stop()
    data = work / "data"
    db = sqlite3.connect(data / "attendance.sqlite3")
    crop, export = db.execute("SELECT u.crop_path, s.export_path FROM unknown_faces u JOIN sessions s ON "
                              "s.id = u.session_id").fetchone()
    db.close()
    session = {Path(crop).relative_to(work), Path(export).relative_to(work), Path("data/reports/crashsess.csv"),
               Path(f"data/frames/{sid}.jpg")}
    folder = {p.relative_to(work) for p in (work / "enrollment" / "demo").glob("S001__*/*")}
    files = {
        "forget": _photo_files(data, [*first["photo_ids"], assigned["photo_id"]]) | session | folder,
        "delete_session": session,
        "crop": {Path(crop).relative_to(work)},
        "remove_student": _photo_files(data, removed["photo_ids"]),
        "roster": _photo_files(data, dropped["photo_ids"]),
    }
    assert all(all((work / p).is_file() for p in paths) for paths in files.values()), files
    assert len(files["forget"]) == 7 and len(files["remove_student"]) == len(files["roster"]) == 2
    snapshot = root / "snapshot"
    for name in ("data", "enrollment"):
        shutil.copytree(work / name, snapshot / name, symlinks=True)
    yield Box(broker, work, daemon_media, snapshot, sid, "crashsess", events, s001, files)
    broker.stop()


def _every_file(*roots: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for r in roots for p in r.rglob("*") if p.is_file()}


def _assert_gone(box: Box, words: list[str], hashes: set[str], paths: set[Path]) -> None:
    """No file of the data directory holds the words in its bytes, none of it or the enrollment directory in its
    path (the other students' photos there are the school's files: one's EXIF caption names a forgotten
    student), no file is one of the erased files' contents, and none of the erased paths exists."""
    files = _every_file(box.work / "data", box.work / "enrollment")
    assert any(p.name == "attendance.sqlite3" for p in files)
    for path, raw in files.items():
        shown = str(path.relative_to(box.work))
        for word in words:
            assert shown.startswith("enrollment/") or word.encode() not in raw, f"{word!r} is still in {shown}"
            assert word not in shown, f"{word!r} is still in the name {shown}"
        assert hashlib.sha256(raw).hexdigest() not in hashes, f"{shown} is an erased file"
    assert not [p for p in paths if (box.work / p).exists()]
    db = sqlite3.connect(box.work / "data" / "attendance.sqlite3")
    try:
        dump = "\n".join(db.iterdump())
        assert db.execute("SELECT count(*) FROM doomed_files").fetchone()[0] == 0
    finally:
        db.close()
    assert not [w for w in words if w in dump]


def _request(c: RecordingClient, command: str, payload: dict[str, Any]) -> None:
    """Sent without waiting: the daemon dies before it can answer."""
    body = {**payload, "transaction": uuid.uuid4().hex}
    c.client.publish(c.topics.request(command), json.dumps(body), qos=1).wait_for_publish(5)


def _killed(box: Box, d: DaemonProcess) -> None:
    """The daemon killed itself at its crash point (SIGKILL), and the broker has its will: so the next `online`
    is the next process's."""
    assert d.proc is not None
    assert d.proc.wait(90) == -signal.SIGKILL, f"exit {d.proc.returncode}, not the crash point's SIGKILL"
    with box.broker.client(DEVICE) as w:
        w.wait_for("availability", lambda v: v == "offline", timeout=30)


def _doomed_records(box: Box) -> int:
    db = sqlite3.connect(box.work / "data" / "attendance.sqlite3")
    try:
        return int(db.execute("SELECT count(*) FROM doomed_files").fetchone()[0])
    finally:
        db.close()


def _crash_at_every_deletion(box: Box, kind: str, command: str | None, payload: dict[str, Any],
                             extra: str = "") -> DaemonProcess:
    """The erasure, then a crash at every one of its file deletions, each followed by a restart.

    The first daemon gets the erasure (a request, or a roster it applies by itself) and is killed right after the
    commit, before the first deletion: every file is still there, recorded as doomed. Each restart is killed just
    before its second deletion, so its start-up sweep deletes exactly one more file and dies. The states the box
    crashes in are those of a crash before each deletion of the erasure itself (the sweep deletes in the same
    order and drops the records only at the end), at one process start per deletion. The last restart deletes
    the last file and lives; it is returned running, the erasure finished."""
    files = box.files[kind]
    n = len(files)

    def left() -> set[Path]:
        return {p for p in files if (box.work / p).exists()}

    box.restore()
    d = box.daemon(extra)
    # a roster is applied by itself (2 s after the start): its crash may come before `online` is seen
    d.start(wait=command is not None, env_extra={KILL_ENV: "0"})
    if command:
        with box.broker.client(DEVICE) as c:
            _request(c, command, payload)
    _killed(box, d)
    assert left() == files and _doomed_records(box) > 0  # committed and recorded, nothing deleted yet
    for j in range(1, n + 1):
        d.start(wait=False, env_extra={KILL_ENV: "1"})  # the start-up sweep dies before its second deletion
        if j < n:
            _killed(box, d)
            assert len(left()) == n - j, f"{kind}: {sorted(map(str, left()))} left after restart {j}"
    with box.broker.client(DEVICE) as c:
        c.wait_for("availability", lambda v: v == "online", timeout=60)
    assert not left() and _doomed_records(box) == 0
    return d


def test_forget_killed_at_every_deletion_leaves_nothing_of_the_student(box: Box) -> None:
    s001 = box.s001
    d = _crash_at_every_deletion(box, "forget", "forget_student", {"student_id": s001.student_id})
    try:
        with box.broker.client(DEVICE) as c:  # the retry finds nothing left: an honest zero
            again = c.request("forget_student", {"student_id": s001.student_id})["data"]
            assert again["photos_removed"] == again["crops_removed"] == again["encodings_removed"] == 0
            assert s001.student_id not in [s["student_id"] for s in c.request("students", {"section": "demo"})["data"]]
    finally:
        d.stop()
    _assert_gone(box, [s001.student_id, s001.name, s001.name.replace(" ", "_")], box.hashes("forget"),
                 box.files["forget"])


def test_delete_session_killed_at_every_deletion_leaves_nothing_of_it(box: Box) -> None:
    d = _crash_at_every_deletion(box, "delete_session", "delete_session", {"session_id": box.session_id})
    try:
        with box.broker.client(DEVICE) as c:
            assert c.request("session", {"session_id": box.session_id}, check=False)["code"] == 404
    finally:
        d.stop()
    # (the crop's bytes stay as S001's photo: assign_unknown copied it there)
    _assert_gone(box, [box.session_id, box.session_name],
                 box.hashes("delete_session") - box.hashes("crop"), box.files["delete_session"])


def test_remove_student_killed_at_every_deletion_leaves_none_of_their_photos(box: Box) -> None:
    d = _crash_at_every_deletion(box, "remove_student", "remove_student", {"section": "demo", "student_id": REMOVED[0]})
    d.stop()
    _assert_gone(box, list(REMOVED), box.hashes("remove_student"), box.files["remove_student"])


def test_roster_apply_killed_at_every_deletion_leaves_none_of_the_dropped_student(box: Box) -> None:
    """The section is put under the hub; its first roster leaves out a student enrolled locally with photos."""
    body = {"section": "rsec", "version": 1, "published_at": "2026-12-01T08:00:00Z",
            "students": [{"student_id": KEPT[0], "name": KEPT[1], "encodings": [[0.25] * 128]}]}
    with box.broker.client(DEVICE) as c:
        c.client.publish(box_roster_topic("attendance", DEVICE, "rsec"), json.dumps(seal(body, None)).encode(), qos=1,
                         retain=True).wait_for_publish(5)
    d = _crash_at_every_deletion(box, "roster", None, {}, extra='[roster]\nsections = ["rsec"]\n')
    d.stop()
    _assert_gone(box, list(DROPPED), box.hashes("roster"), box.files["roster"])
    db = sqlite3.connect(box.work / "data" / "attendance.sqlite3")
    try:
        assert db.execute("SELECT student_id FROM students WHERE section='rsec'").fetchall() == [(KEPT[0],)]
    finally:
        db.close()


def test_no_event_of_a_session_carries_a_path_of_the_box(box: Box) -> None:
    """Events reach the central broker through the bridge: the unknown visitor's `crop_path` is its place in the
    data directory, and no field of any event is an absolute path."""
    kinds = {e["type"] for e in box.events}
    assert {"session_started", "student_present", "unknown_face", "session_finished"} <= kinds
    for event in box.events:
        for key, value in event.items():
            text = json.dumps(value)
            assert not (isinstance(value, str) and value.startswith("/")), f"{event['type']}.{key}: {value}"
            assert str(box.work) not in text, f"{event['type']}.{key} names a path of the box: {value}"
    crop = next(e["crop_path"] for e in box.events if e["type"] == "unknown_face")
    assert crop.startswith(f"unknowns/{box.session_name}/") and crop.endswith(".jpg")
