"""Which camera frames make good enrollment photos: exactly one face, large and sharp enough, and a pose that
differs from the photos already kept (a student turning their head gives several views, not twenty copies of
one). Pure: frames and face boxes in, decisions out; the camera loop is sessions/enroll_capture.py.

The pose is read from dlib's 5-point landmarks (the model the encoder aligns with): the nose tip's offset from
the eyes' midpoint, in units of the eye distance, left-right (yaw) and up-down (pitch)."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..recognition.boxes import Box

DROP_REASONS = ("no_face", "several_faces", "too_small", "blurred", "same_pose", "no_landmarks")


@dataclass(frozen=True)
class CaptureRules:
    max_photos: int = 20
    min_face_px: int = 60  # the face box's shorter side
    min_sharpness: float = 15.0  # variance of the Laplacian of the face, resized to 128 px
    min_pose_step: float = 0.06  # pose distance (eye-distance units) to every kept photo


@dataclass
class Selection:
    kept: list[tuple[np.ndarray, Box]] = field(default_factory=list)  # (frame, face box)
    poses: list[tuple[float, float]] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))
    frames: int = 0


def sharpness(bgr: np.ndarray, box: Box) -> float:
    x0, y0, x1, y1 = (round(v) for v in (box.x1, box.y1, box.x2, box.y2))
    face = bgr[max(0, y0):max(0, y1), max(0, x0):max(0, x1)]
    if face.size == 0:
        return 0.0
    gray = cv2.cvtColor(cv2.resize(face, (128, 128), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def pose_of(points: dict[str, list[tuple[int, int]]]) -> tuple[float, float] | None:
    """(yaw, pitch) proxies from face_recognition's `small` landmarks (two points per eye, the nose tip)."""
    try:
        left = np.mean(np.array(points["left_eye"], float), axis=0)
        right = np.mean(np.array(points["right_eye"], float), axis=0)
        nose = np.array(points["nose_tip"][0], float)
    except (KeyError, IndexError, ValueError):
        return None
    axis = right - left
    span = float(np.linalg.norm(axis))
    if span < 1.0:
        return None
    unit = axis / span
    offset = nose - (left + right) / 2
    return float(offset @ unit / span), float((offset @ np.array([-unit[1], unit[0]])) / span)


_HOG: list[object] = []  # dlib's frontal face detector, made on first use
_MAX_SIDE = 640  # frames are searched at this size: an enrolling student is close to the camera


def detect_faces(bgr: np.ndarray) -> list[Box]:
    """Faces with dlib's HOG on a frame scaled to at most 640 px (as enrollment photos are searched)."""
    import dlib

    if not _HOG:
        _HOG.append(dlib.get_frontal_face_detector())
    scale = min(1.0, _MAX_SIDE / max(bgr.shape[:2]))
    small = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else bgr
    found = _HOG[0](cv2.cvtColor(small, cv2.COLOR_BGR2RGB), 1)  # type: ignore[operator]
    return [Box(r.left() / scale, r.top() / scale, r.right() / scale, r.bottom() / scale).clipped(*bgr.shape[1::-1])
            for r in found]


def photo_jpeg(bgr: np.ndarray, box: Box, margin: float = 0.8) -> bytes:
    """The face with `margin` of its size around it, as a JPEG (what the student's photo shows)."""
    w, h = box.width, box.height
    x0, y0 = max(0, int(box.x1 - margin * w)), max(0, int(box.y1 - margin * h))
    x1, y1 = min(bgr.shape[1], int(box.x2 + margin * w)), min(bgr.shape[0], int(box.y2 + margin * h))
    ok, data = cv2.imencode(".jpg", bgr[y0:y1, x0:x1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise ValueError("could not encode the photo as JPEG")
    return bytes(data)


def landmarks(bgr: np.ndarray, box: Box) -> dict[str, list[tuple[int, int]]] | None:
    import face_recognition  # dlib's 5-point model, loaded on first use (enrollment only)

    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    found = face_recognition.face_landmarks(rgb, [box.css()], model="small")
    return found[0] if found else None


def offer(sel: Selection, rules: CaptureRules, bgr: np.ndarray, boxes: list[Box]) -> str | None:
    """Keeps the frame (None) or says why not (one of DROP_REASONS)."""
    sel.frames += 1
    reason = _reason(sel, rules, bgr, boxes)
    if reason is not None:
        sel.dropped[reason] += 1
    return reason


def _reason(sel: Selection, rules: CaptureRules, bgr: np.ndarray, boxes: list[Box]) -> str | None:
    if not boxes:
        return "no_face"
    if len(boxes) > 1:
        return "several_faces"
    box = boxes[0]
    if min(box.width, box.height) < rules.min_face_px:
        return "too_small"
    if sharpness(bgr, box) < rules.min_sharpness:
        return "blurred"
    points = landmarks(bgr, box)
    pose = pose_of(points) if points else None
    if pose is None:
        return "no_landmarks"
    if any(np.hypot(pose[0] - p[0], pose[1] - p[1]) < rules.min_pose_step for p in sel.poses):
        return "same_pose"
    sel.kept.append((bgr.copy(), box))
    sel.poses.append(pose)
    return None
