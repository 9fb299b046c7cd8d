"""The detector's sweep with the real BlazeFace model on a frame of real faces: where it looks, sweep by sweep."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from attendance_daemon.recognition.boxes import Box, iou_matrix
from attendance_daemon.recognition.detect import BlazeFaceDetector

SWEEP = 5  # analysed frames per sweep


@pytest.fixture(scope="module")
def room(people: list[Any]) -> np.ndarray:
    """Six real faces of ~70 px on a 1280x720 grey wall, two rows."""
    frame = np.full((720, 1280, 3), 120, np.uint8)
    for i, p in enumerate(people[:6]):
        img = cv2.imread(str(p.appear))
        assert img is not None, p.appear
        img = cv2.resize(img, (160, round(160 * img.shape[0] / img.shape[1])))
        x, y = 120 + (i % 3) * 400, 80 + (i // 3) * 330
        frame[y:y + img.shape[0], x:x + img.shape[1]] = img[:720 - y, :1280 - x]
    return frame


class _Counting(BlazeFaceDetector):
    """Counts model invocations (tiles looked at)."""

    def __init__(self) -> None:
        super().__init__(sweep_frames=SWEEP)
        self.looked = 0

    def _detect_square(self, tile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.looked += 1
        return super()._detect_square(tile)


def _sweep(det: _Counting, frame: np.ndarray, settled: list[Box]) -> tuple[list[Box], int]:
    """The faces found in one sweep (each once: overlapping tiles of several calls find a face again), and how
    many tiles the sweep looked at."""
    before = det.looked
    found: list[Box] = []
    for _ in range(SWEEP):
        for box in det.detect(frame, settled):
            if not _covers(found, [box]):
                found.append(box)
    return found, det.looked - before


def _covers(found: list[Box], want: list[Box]) -> bool:
    if not want:
        return True
    if not found:
        return False
    ious = iou_matrix(np.array([b.as_array() for b in want]), np.array([b.as_array() for b in found]))
    return bool((ious.max(axis=1) >= 0.5).all())


def test_identified_faces_are_looked_at_every_second_sweep_and_everything_else_every_sweep(room: np.ndarray) -> None:
    det = _Counting()
    faces, first = _sweep(det, room, [])
    assert len(faces) == 6 and first >= len(det.plan(1280, 720).tiles)  # the first sweep looks everywhere

    everyone, one_left = _Counting(), _Counting()
    _sweep(everyone, room, [])
    _sweep(one_left, room, [])
    stranger = max(faces, key=lambda b: b.x1)  # not identified yet: its tiles stay in every sweep
    settled = [b for b in faces if b is not stranger]

    quiet, cost_quiet = _sweep(everyone, room, faces)
    partly, cost_partly = _sweep(one_left, room, settled)
    assert cost_quiet < first / 2  # tiles holding only known students are skipped this sweep
    assert cost_quiet < cost_partly
    assert _covers(partly, [stranger])  # the face not yet identified is still looked for
    assert not _covers(quiet, faces)

    again, cost_again = _sweep(everyone, room, faces)
    assert _covers(again, faces)  # ... and the known ones the sweep after: within the tracker's max age
    assert cost_again > cost_quiet
