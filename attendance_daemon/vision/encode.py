"""dlib 128-d face encodings through face_recognition (models from face_recognition_models).

dlib holds the GIL for the whole ~75 ms of an encoding, which would stall the MQTT threads of the daemon;
ProcessEncoder therefore runs the encodings in a child process and sends it only the face crops."""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

import numpy as np

from .boxes import Box

log = logging.getLogger(__name__)

Crop = tuple[np.ndarray, tuple[int, int, int, int]]  # RGB crop, face location (css order) inside it


class FaceEncoder(Protocol):
    def encode(self, rgb: np.ndarray, boxes: list[Box]) -> list[np.ndarray]: ...

    def close(self) -> None: ...


def crops_for(rgb: np.ndarray, boxes: list[Box], margin: float = 0.6) -> list[Crop]:
    """Each face with enough context for dlib's landmarks and aligned chip; coordinates made crop-relative."""
    h, w = rgb.shape[:2]
    out = []
    for b in boxes:
        mx, my = b.width * margin, b.height * margin
        x1, y1 = max(0, int(b.x1 - mx)), max(0, int(b.y1 - my))
        x2, y2 = min(w, int(b.x2 + mx) + 1), min(h, int(b.y2 + my) + 1)
        top, right, bottom, left = b.css()
        out.append((np.ascontiguousarray(rgb[y1:y2, x1:x2]), (top - y1, right - x1, bottom - y1, left - x1)))
    return out


_face_encodings: Any = None


def _load() -> None:
    global _face_encodings  # noqa: PLW0603 -- one model instance per (child) process
    import face_recognition

    _face_encodings = face_recognition.face_encodings


def encode_crops(crops: list[Crop], num_jitters: int = 1) -> list[np.ndarray]:
    """Runs where the models are loaded (this process or the encoder child)."""
    if _face_encodings is None:
        _load()
    return [
        np.asarray(_face_encodings(img, known_face_locations=[loc], num_jitters=num_jitters)[0], dtype=np.float32)
        for img, loc in crops
    ]


class Encoder:
    """In-process encodings: for the CLI and enrollment, where nothing else needs the GIL."""

    def __init__(self, num_jitters: int = 1) -> None:
        _load()
        self._num_jitters = num_jitters

    def encode(self, rgb: np.ndarray, boxes: list[Box]) -> list[np.ndarray]:
        return encode_crops(crops_for(rgb, boxes), self._num_jitters) if boxes else []

    def close(self) -> None:
        """Nothing to release."""


class ProcessEncoder:
    """Encodings in one spawned child (spawn, not fork: the daemon has threads). Restarted once if it dies."""

    def __init__(self, num_jitters: int = 1) -> None:
        self._num_jitters = num_jitters
        self._pool = self._start()

    @staticmethod
    def _start() -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_load)
        pool.submit(encode_crops, []).result()  # models loaded before the daemon reports ready
        return pool

    def encode(self, rgb: np.ndarray, boxes: list[Box]) -> list[np.ndarray]:
        if not boxes:
            return []
        crops = crops_for(rgb, boxes)
        try:
            return self._pool.submit(encode_crops, crops, self._num_jitters).result()
        except BrokenProcessPool:
            log.error("encoder process died; restarting it")
            self._pool = self._start()
            return self._pool.submit(encode_crops, crops, self._num_jitters).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
