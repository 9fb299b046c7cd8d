"""Remote operations against the real broker and the daemon as a real process: enroll photos sent in the
request, run a real session, fetch its report, crops and frame, assign the unknown visitor to a student,
manage photos, then forget students and show that nothing of them is left on the box."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from attendance_daemon.cli.remote_files import content_bytes, upload_images
from tests.mqtt_fixtures import Broker, DaemonProcess, RecordingClient
from tests.test_ctl_and_auth import ctl


def _daemon(tmp_path: Path, broker: Broker, media: Path, sample: dict[str, Any], db: Path) -> DaemonProcess:
    """Its own copy of the enrollment directory (forget_student deletes the student's folder there), 30 days
    of retention, and an expired report and crop from an earlier session to be cleaned at start-up."""
    enrollment = tmp_path / "enrollment"
    shutil.copytree(sample["enrollment"], enrollment)
    d = DaemonProcess(tmp_path / "d", broker, media, enrollment, db, extra="[retention]\ndays = 30\n")
    long_ago = time.time() - 31 * 86400
    for old in (d.data / "reports" / "expired.csv", d.data / "unknowns" / "expired" / "track-00001.jpg"):
        old.parent.mkdir(parents=True)
        old.write_bytes(b"old evidence")
        os.utime(old, (long_ago, long_ago))
    return d.start()


def _wait(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.2)


def _every_file(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _tiny_png(width: int, height: int) -> str:
    buf = io.BytesIO()
    Image.new("L", (width, height)).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_remote_enroll_fetch_assign_and_forget(tmp_path: Path, broker: Broker, daemon_media: Path,
                                               sample: dict[str, Any], enrolled_db: Path, people: list[Any],
                                               ground_truth: dict[str, Any], request: pytest.FixtureRequest) -> None:
    d = _daemon(tmp_path, broker, daemon_media, sample, enrolled_db)
    request.addfinalizer(d.stop)  # also when an assertion fails half way (stop is idempotent)
    by_id = {p.student_id: p for p in people}
    ada = by_id["S001"]  # present in the classroom video (enrolled from obama.jpg, appears as obama2)
    assert ada.student_id in ground_truth["present"]
    _wait(lambda: "retention (30 days): deleted 1 reports, 1 unknowns" in d.log_text())
    assert not (d.data / "reports" / "expired.csv").exists()
    assert not (d.data / "unknowns" / "expired").exists()
    with broker.client(d.device) as c:
        # ---- remote enrollment: a second photo of a present student, sent in the request (attendancectl)
        proc = ctl(broker, d.device, "enroll", "--section", "demo", "--student-id", ada.student_id,
                   "--name", ada.name, "--image", str(ada.appear))
        assert proc.returncode == 0, proc.stderr
        enrolled = json.loads(proc.stdout)
        assert enrolled["encodings_added"] == 1 and enrolled["rejected"] == [] and len(enrolled["photo_ids"]) == 1
        uploaded_sha = hashlib.sha256(ada.appear.read_bytes()).hexdigest()
        listed = c.request("student_photos", {"section": "demo", "student_id": ada.student_id})["data"]
        assert [(p["source"], p["stored"]) for p in listed] == [("photo" + ada.enroll.suffix, False),
                                                               (upload_images([ada.appear])[0]["name"], True)]
        photo = c.request("student_photo", {"section": "demo", "student_id": ada.student_id,
                                            "photo_id": enrolled["photo_ids"][0]})["data"]
        assert hashlib.sha256(content_bytes(photo)).hexdigest() == uploaded_sha

        # the same one-face rules and limits as for files on the box
        group = people[3].enroll.parent.parent / "group.jpg"
        many = c.request("enroll", {"section": "demo", "student_id": "X1", "name": "Group",
                                    "images_b64": upload_images([group])})["data"]
        assert many["encodings_added"] == 0 and many["photo_ids"] == []
        assert many["rejected"] == [{"image": "0-group.jpg",
                                     "reason": "6 faces found; an enrollment image must show exactly one"}]
        for payload, error in (
            ({"images_b64": [{"name": "a", "data": "not base64!"}]}, "images_b64[0].data: not valid base64"),
            ({"images_b64": [{"name": "a", "data": _tiny_png(7000, 6000)}]}, "images_b64[0].data: image is 7000x6000"),
            ({"images_b64": [{"name": "a", "data": base64.b64encode(b"GIF89a....").decode()}]},
             "images_b64[0].data: not a JPEG or PNG image"),
            ({"images_b64": [{"name": "../a", "data": "AA=="}]}, "images_b64.0.name:"),
            ({"images": ["x.jpg"], "images_b64": [{"name": "a", "data": "AA=="}]}, "images: give exactly one of"),
            ({"images_b64": [{"name": f"i{i}", "data": "AA=="} for i in range(21)]}, "images_b64: 21 images"),
        ):
            bad = c.request("enroll", {"section": "demo", "student_id": "X1", "name": "X", **payload}, check=False)
            assert bad["code"] == 400 and bad["error"].startswith(error), bad
        assert not any(s["student_id"] == "X1" for s in c.request("students", {"section": "demo"})["data"])
        # refused before parsing, so its transaction cannot be echoed: wait on the response topic itself
        c.client.publish(c.topics.request("enroll"), b'{"pad": "' + b"x" * (32 * 1024 * 1024) + b'"}', qos=1)
        huge = c.wait_for("response/enroll", lambda r: r["code"] == 413)
        assert huge["error"] == "payload: 33554443 bytes; at most 33554432" and huge["transaction"] is None

        # ---- a real session: the unknown visitor's event names a fetchable face id
        sid = c.request("start_mp4", {"path": "classroom.mp4", "section": "demo", "session_name": "remote",
                                      "export": True})["data"]["session"]["id"]
        results = c.wait_for("results", lambda r: r["session_id"] == sid, timeout=120)
        assert ada.student_id in [p["student_id"] for p in results["present"]]
        events = [json.loads(p) for leaf, p, _ in c.messages if leaf == "events"]
        unknown_events = [e for e in events if e["type"] == "unknown_face"]
        assert len(unknown_events) == ground_truth["unknowns"] == 1
        faces = json.loads(ctl(broker, d.device, "unknown-faces", sid).stdout)
        assert [f["face_id"] for f in faces] == [unknown_events[0]["face_id"]]
        assert faces[0]["assigned_to"] is None and faces[0]["dismissed"] is False
        face_id = faces[0]["face_id"]
        # dismissed ("nobody of ours") and taken back: the flag is stored, the crop stays
        assert c.request("dismiss_unknown", {"face_id": face_id})["data"] == {"face_id": face_id, "dismissed": True}
        assert c.request("unknown_faces", {"session_id": sid})["data"][0]["dismissed"] is True
        c.request("dismiss_unknown", {"face_id": face_id, "dismissed": False})
        assert c.request("unknown_faces", {"session_id": sid})["data"][0]["dismissed"] is False
        assert c.request("dismiss_unknown", {"face_id": 999999}, check=False)["code"] == 404
        out = tmp_path / "face.jpg"
        proc = ctl(broker, d.device, "fetch-face", str(face_id), "--out", str(out))
        assert proc.returncode == 0, proc.stderr
        assert out.read_bytes()[:2] == b"\xff\xd8"
        crop_sha = hashlib.sha256(out.read_bytes()).hexdigest()
        frame = c.request("snapshot", {"session_id": sid})["data"]
        assert frame["content_type"] == "image/jpeg" and content_bytes(frame)[:2] == b"\xff\xd8"
        assert ctl(broker, d.device, "fetch-snapshot", sid, "--out", str(tmp_path / "f.jpg")).returncode == 0
        assert (tmp_path / "f.jpg").read_bytes() == content_bytes(frame)
        assert c.request("unknown_face_image", {"face_id": 10**9}, check=False)["code"] == 404

        # ---- reports fetched over MQTT: the PDF with attendancectl, the CSV as text
        pdf = tmp_path / "report.pdf"
        proc = ctl(broker, d.device, "report", sid, "--format", "pdf", "--out", str(pdf))
        assert proc.returncode == 0, proc.stderr
        assert pdf.read_bytes()[:5] == b"%PDF-" and "sha256 verified" in proc.stdout
        csv = c.request("report", {"session_id": sid, "content": True})["data"]
        assert csv["encoding"] == "utf-8" and ada.name in csv["content"] and "path" in csv
        assert set(c.request("report", {"session_id": sid})["data"]) == {"path"}  # v1 answer unchanged

        # ---- "that was the visitor": the unknown face becomes a new student's enrollment
        nameless = c.request("assign_unknown", {"face_id": face_id, "section": "demo", "student_id": "V100"},
                             check=False)
        assert nameless["code"] == 400 and nameless["error"].startswith("name: required")
        proc = ctl(broker, d.device, "assign-unknown", str(face_id), "--section", "demo", "--student-id", "V100",
                   "--name", "Vera Visitor")
        assert proc.returncode == 0, proc.stderr
        assigned = json.loads(proc.stdout)
        assert assigned["face_id"] == face_id and assigned["student_id"] == "V100"
        assert c.request("unknown_faces", {"session_id": sid})["data"][0]["assigned_to"] == "V100"
        again = c.request("assign_unknown", {"face_id": face_id, "section": "demo", "student_id": "V100"},
                          check=False)
        assert again["code"] == 409
        v_photos = c.request("student_photos", {"section": "demo", "student_id": "V100"})["data"]
        assert [p["stored"] for p in v_photos] == [True]

        # ---- a student's photos are removed one by one (with their encodings)
        extra = c.request("enroll", {"section": "demo", "student_id": "V100", "name": "Vera Visitor",
                                     "images_b64": upload_images([by_id["S003"].enroll])})["data"]
        assert extra["encodings_added"] == 1
        removed = json.loads(ctl(broker, d.device, "remove-photo", str(extra["photo_ids"][0]), "--section", "demo",
                                 "--student-id", "V100").stdout)
        assert removed == {"photo_id": extra["photo_ids"][0], "removed": True}
        assert len(json.loads(ctl(broker, d.device, "photos", "--section", "demo", "--student-id", "V100").stdout)) == 1
        assert not (d.data / "photos" / f"{extra['photo_ids'][0]}.png").exists()

        # ---- a running session's roster student is refused; its session cannot be deleted
        running = c.request("start_mp4", {"path": "long.mp4", "section": "demo", "session_name": "busy"})["data"]
        busy_id = running["session"]["id"]
        refused = c.request("forget_student", {"student_id": ada.student_id}, check=False)
        assert refused["code"] == 409 and refused["data"] == {"session_id": busy_id}
        assert c.request("delete_session", {"session_id": busy_id}, check=False)["code"] == 409
        c.request("stop", {"session_id": busy_id})
        deleted = json.loads(ctl(broker, d.device, "delete-session", busy_id).stdout)
        assert deleted["session_id"] == busy_id and deleted["deleted"] is True
        assert [s["session_id"] for s in c.request("sessions")["data"]] == [sid]
        assert c.request("session", {"session_id": busy_id}, check=False)["code"] == 404
        assert c.wait_for("results", lambda r: r["session_id"] == sid)["session_id"] == sid

        # ---- forget: the visitor (crop, photo, encoding) and the student (anonymised attendance)
        proc = ctl(broker, d.device, "forget", "V100", "--remove-attendance")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == {"student_id": "V100", "sections": ["demo"], "encodings_removed": 1,
                                           "photos_removed": 1, "crops_removed": 1, "attendance": "removed",
                                           "attendance_rows": 0}
        before = c.request("session", {"session_id": sid})["data"]
        c.request("report", {"session_id": sid})  # that forget deleted the section's reports (they list V100)
        held = [p.name for p, raw in _every_file(d.data).items() if ada.name.encode() in raw]
        assert "attendance.sqlite3" in held and "remote.csv" in held  # so the search below can fail
        forgot = c.request("forget_student", {"student_id": ada.student_id})["data"]
        assert forgot == {"student_id": ada.student_id, "sections": ["demo"], "encodings_removed": 2,
                          "photos_removed": 2, "crops_removed": 0, "attendance": "anonymised", "attendance_rows": 1}
        again = c.request("forget_student", {"student_id": ada.student_id})["data"]  # idempotent
        assert again["encodings_removed"] == again["attendance_rows"] == again["photos_removed"] == 0
        assert again["sections"] == []
        after = c.request("session", {"session_id": sid})["data"]
        assert after["present_count"] == before["present_count"]  # counts keep their meaning
        stand_in = [p for p in after["present"] if p["student_id"].startswith("forgotten-")]
        assert len(stand_in) == 1 and stand_in[0]["name"] == stand_in[0]["student_id"]
        assert after["export_path"] is None  # the export showed their face and name
        assert ada.name not in json.dumps(c.wait_for("results", lambda r: ada.name not in json.dumps(r)))
        assert c.request("snapshot", {"session_id": sid}, check=False)["code"] == 404
        info = c.wait_for("info", lambda i: i["sections"] == [{"section": "demo", "students": 7}])
        assert info["sections"] == [{"section": "demo", "students": 7}]
        _assert_no_trace(c, d, [ada.student_id, ada.name, "V100", "Vera Visitor"], {crop_sha, uploaded_sha})
        assert not any(p.name.startswith(f"{ada.student_id}__") for p in (tmp_path / "enrollment" / "demo").iterdir())
    d.stop()
    _assert_no_trace(None, d, [ada.student_id, ada.name, "V100", "Vera Visitor"], {crop_sha, uploaded_sha})


def _assert_no_trace(c: RecordingClient | None, d: DaemonProcess, words: list[str], hashes: set[str]) -> None:
    """No file under the data directory (the SQLite file and its WAL byte for byte included) holds the
    words, and no file is one of the erased images."""
    files = _every_file(d.data)
    assert any(p.name == "attendance.sqlite3" for p in files)
    for path, raw in files.items():
        for word in words:
            assert word.encode() not in raw, f"{word!r} is still in {path.relative_to(d.data)}"
        assert hashlib.sha256(raw).hexdigest() not in hashes, f"{path.relative_to(d.data)} is an erased image"
    db = sqlite3.connect(d.data / "attendance.sqlite3")
    dump = "\n".join(db.iterdump())
    db.close()
    assert not [w for w in words if w in dump]
