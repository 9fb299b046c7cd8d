"""Enrollment from the box's camera (`enroll_capture`): the selection rules on rendered frames, then the daemon as a
real process reading rendered camera streams with zero, one and two faces, holding the global lock meanwhile.

The "head turn" is rendered from three real photos of one person (face_recognition's obama, obama2, obama3)
under changing perspective: flat photos have no 3-D pose of their own, so the distinct views come from the
distinct photos; repeated views must be dropped as `same_pose`."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from attendance_daemon.mqtt.client import ApiError
from attendance_daemon.roster.capture import CaptureRules, Selection, detect_faces, offer
from tests.mqtt_fixtures import Broker

BACKGROUND = (90, 110, 120)
FACES = Path(__file__).resolve().parent.parent / ".cache" / "faces"


def _placed(img: np.ndarray, t: float, side: int = 300) -> np.ndarray:
    """The photo scaled to `side` px and turned a little (a perspective warp that changes over time)."""
    s = side / max(img.shape[:2])
    img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    turn = math.radians(30) * math.sin(2 * math.pi * t / 4.0)
    cw, k = w * math.cos(turn), 0.3 * math.sin(turn) * h / 2
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    dst = np.array([[(w - cw) / 2, max(k, 0)], [(w + cw) / 2, max(-k, 0)], [(w + cw) / 2, h - max(-k, 0)],
                    [(w - cw) / 2, h - max(k, 0)]], np.float32)
    return cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (w, h), borderValue=BACKGROUND)


def frame(t: float, photos: list[np.ndarray], side: int = 300) -> np.ndarray:
    bg = np.full((720, 1280, 3), BACKGROUND, np.uint8)
    for k, photo in enumerate(photos):
        face = _placed(photo, t, side)
        x0, y0 = 250 + k * 500, 180
        bg[y0:y0 + face.shape[0], x0:x0 + face.shape[1]] = face
    return bg


def write_clip(path: Path, photos_at: Any, seconds: float = 6.0, fps: int = 10) -> Path:
    out = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (1280, 720))
    for i in range(int(seconds * fps)):
        out.write(frame(i / fps, photos_at(i)))
    out.release()
    return path


@pytest.fixture(scope="module")
def photos(people: list[Any]) -> dict[str, Any]:
    obama = [cv2.imread(str(FACES / n)) for n in ("obama.jpg", "obama2.jpg", "obama3.jpg")]
    biden = cv2.imread(str({p.key: p for p in people}["biden"].appear))
    assert all(x is not None for x in obama) and biden is not None
    return {"obama": obama, "biden": biden}


def test_selection_keeps_distinct_sharp_single_faces(photos: dict[str, Any]) -> None:
    rules = CaptureRules(max_photos=20)
    sel = Selection()
    for i in range(24):  # the same three photos over and over, turning
        f = frame(i / 4.0, [photos["obama"][i % 3]])
        offer(sel, rules, f, detect_faces(f))
    assert 2 <= len(sel.kept) <= 12 and sel.dropped["same_pose"] >= 8
    poses = np.array(sel.poses)
    gaps = np.linalg.norm(poses[:, None] - poses[None, :], axis=2) + np.eye(len(poses))
    assert gaps.min() >= rules.min_pose_step  # every kept view differs from every other
    one = frame(0.0, [photos["obama"][0]])
    for reason, image in (("no_face", np.full((720, 1280, 3), BACKGROUND, np.uint8)),
                          ("several_faces", frame(0.0, [photos["obama"][0], photos["biden"]])),
                          ("blurred", cv2.GaussianBlur(one, (0, 0), 4.0))):
        fresh = Selection()
        assert offer(fresh, rules, image, detect_faces(image)) == reason, reason
        assert fresh.kept == [] and fresh.dropped[reason] == 1
    fresh = Selection()  # this face box is 72 px: below a 100 px minimum
    assert offer(fresh, CaptureRules(min_face_px=100), one, detect_faces(one)) == "too_small"


@pytest.fixture(scope="module")
def cameras(tmp_path_factory: pytest.TempPathFactory, photos: dict[str, Any]) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cameras")
    return {"none": write_clip(root / "none.mp4", lambda i: []),
            "one": write_clip(root / "one.mp4", lambda i: [photos["obama"][(i // 5) % 3]]),
            "two": write_clip(root / "two.mp4", lambda i: [photos["obama"][0], photos["biden"]])}


def test_enroll_capture_from_rendered_cameras(daemon_factory: Any, broker: Broker,
                                              cameras: dict[str, Path]) -> None:
    d = daemon_factory(extra="[cameras]\n" + "".join(f'{k} = "{v}"\n' for k, v in cameras.items())).start()
    answers: dict[str, dict[str, Any]] = {}

    def enroll(camera: str, student: str) -> None:
        with broker.client(d.device) as c:
            answers[camera] = c.request("enroll_capture", {"section": "cam", "student_id": student, "name": student,
                                                           "seconds": 5, "camera": camera, "client": "desk"},
                                        timeout=60)["data"]

    with broker.client(d.device) as c:
        worker = threading.Thread(target=enroll, args=("one", "s-one"))
        worker.start()
        # while it captures: the state says so, other requests are answered, a start is refused (409)
        state = c.wait_for("state", lambda s: s["session"] is not None, timeout=20)
        assert state["mode"] == "webcam" and state["session"]["purpose"] == "enrollment"
        assert state["session"]["started_by"] == "desk" and state["session"]["source"] == "camera:one"
        t0 = time.monotonic()
        assert c.request("status")["data"]["session"]["purpose"] == "enrollment"
        assert time.monotonic() - t0 < 1.0
        with pytest.raises(ApiError) as busy:
            c.request("start_mp4", {"path": "classroom.mp4", "section": "demo"})
        assert busy.value.response["code"] == 409
        worker.join(60)
        one = answers["one"]
        # how many distinct views are kept depends on how many frames a loaded machine looks at (the selection
        # itself is held to several views by the test above); at least one, each stored, the rest accounted for
        assert one["encodings_added"] >= 1 and one["kept"] == one["encodings_added"] + len(one["rejected"])
        assert one["kept"] + sum(one["dropped"].values()) == one["frames"]
        assert len(one["photo_ids"]) == one["encodings_added"] and one["frames"] >= 4  # ~4 a second, fewer under load
        assert c.wait_for("state", lambda s: s["mode"] == "idle", timeout=10)["session"] is None
        students = c.request("students", {"section": "cam"})["data"]
        assert students == [{"student_id": "s-one", "name": "s-one", "encodings": one["encodings_added"]}]
        photos_listed = c.request("student_photos", {"section": "cam", "student_id": "s-one"})["data"]
        assert {p["photo_id"] for p in photos_listed} == set(one["photo_ids"])
        assert all(p["stored"] for p in photos_listed)
    for camera, student in (("none", "s-none"), ("two", "s-two")):
        enroll(camera, student)
    assert answers["none"]["encodings_added"] == 0 and answers["none"]["dropped"]["no_face"] >= 4
    assert answers["two"]["encodings_added"] == 0 and answers["two"]["dropped"]["several_faces"] >= 4
    with broker.client(d.device) as c:
        assert [s["student_id"] for s in c.request("students", {"section": "cam"})["data"]] == ["s-one"]
        refused = c.request("enroll_capture", {"section": "cam", "student_id": "x", "name": "x", "camera": "nope"},
                            check=False)
        assert refused["code"] == 404 and "camera" in refused["error"]
        assert c.request("status")["data"]["mode"] == "idle"
