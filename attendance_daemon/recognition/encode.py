"""dlib 128-d face encodings (dlib's ResNet with its 5-point face alignment; models from face_recognition_models).

Only the two models an encoding needs are loaded (28 MB on disk), not the four that `import face_recognition`
loads (150 MB in every process). dlib holds the GIL for the whole ~75 ms of an encoding, which would stall the
MQTT threads of the daemon; ProcessEncoder therefore runs the encodings in a child process and sends it only
the face crops. Both encoders hand back futures, so a frame loop can go on while its faces are encoded."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .boxes import Box

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Crop:
    """A face with context, RGB, and its location inside the crop (top, right, bottom, left)."""

    rgb: np.ndarray
    face: tuple[int, int, int, int]
    earlier: tuple[Crop, ...] = ()  # earlier views of the same still face, fused with this one before encoding

    def face_box(self) -> Box:
        top, right, bottom, left = self.face
        return Box(float(left), float(top), float(right), float(bottom))


class FaceEncoder(Protocol):
    def submit(self, crops: list[Crop]) -> Future[list[np.ndarray]]:
        """Encodings of the crops, in order; the future may already be done."""
        ...

    def encode(self, bgr: np.ndarray, boxes: list[Box]) -> list[np.ndarray]:
        """Encodings of the boxes of a BGR frame, waiting for them."""
        ...

    def close(self) -> None: ...


def crops_for(bgr: np.ndarray, boxes: list[Box], margin: float = 0.6) -> list[Crop]:
    """Each face with enough context for dlib's landmarks and aligned chip, converted to RGB (only the crop)."""
    import cv2  # here, not at the top: the encoder child never needs OpenCV (16 MB less resident)

    h, w = bgr.shape[:2]
    out = []
    for b in boxes:
        mx, my = b.width * margin, b.height * margin
        x1, y1 = max(0, int(b.x1 - mx)), max(0, int(b.y1 - my))
        x2, y2 = min(w, int(b.x2 + mx) + 1), min(h, int(b.y2 + my) + 1)
        top, right, bottom, left = b.css()
        rgb = cv2.cvtColor(np.ascontiguousarray(bgr[y1:y2, x1:x2]), cv2.COLOR_BGR2RGB)
        out.append(Crop(rgb, (top - y1, right - x1, bottom - y1, left - x1)))
    return out


_models: tuple[Any, Any] | None = None


def _load() -> tuple[Any, Any]:
    """The 5-point shape predictor and the ResNet, once per process (this one or the encoder child)."""
    global _models  # noqa: PLW0603 -- one model instance per process
    if _models is None:
        import dlib
        import face_recognition_models as frm

        _models = (dlib.shape_predictor(frm.pose_predictor_five_point_model_location()),
                   dlib.face_recognition_model_v1(frm.face_recognition_model_location()))
    return _models


def encode_crops(crops: list[Crop], num_jitters: int = 1) -> list[np.ndarray]:
    """Runs where the models are loaded (this process or the encoder child)."""
    import dlib

    predictor, resnet = _load()
    out = []
    for c in crops:
        if c.earlier:
            out.append(np.asarray(resnet.compute_face_descriptor(fused_chip(c), num_jitters), dtype=np.float32))
            continue
        top, right, bottom, left = c.face
        shape = predictor(c.rgb, dlib.rectangle(left, top, right, bottom))
        out.append(np.asarray(resnet.compute_face_descriptor(c.rgb, shape, num_jitters), dtype=np.float32))
    return out


def fused_chip(crop: Crop) -> np.ndarray:
    """The mean of the aligned 150 px chips (dlib's own alignment, as its ResNet expects) of a crop and its
    earlier views: sensor noise, fresh in every frame, falls by the square root of the views; the face does not."""
    import dlib

    predictor, _ = _load()
    total = np.zeros((150, 150, 3), np.float32)
    views = (*crop.earlier, crop)
    for v in views:
        top, right, bottom, left = v.face
        shape = predictor(v.rgb, dlib.rectangle(left, top, right, bottom))
        total += dlib.get_face_chip(v.rgb, shape, 150, 0.25)
    return np.clip(total / len(views) + 0.5, 0, 255).astype(np.uint8)


class Encoder:
    """In-process encodings: for the CLI and enrollment, where nothing else needs the GIL."""

    def __init__(self, num_jitters: int = 1) -> None:
        _load()
        self._num_jitters = num_jitters

    def submit(self, crops: list[Crop]) -> Future[list[np.ndarray]]:
        done: Future[list[np.ndarray]] = Future()
        done.set_result(encode_crops(crops, self._num_jitters) if crops else [])
        return done

    def encode(self, bgr: np.ndarray, boxes: list[Box]) -> list[np.ndarray]:
        return self.submit(crops_for(bgr, boxes)).result()

    def close(self) -> None:
        """Nothing to release."""


def _warm() -> None:
    """Initialiser of the encoder child: models loaded, and an exit when the daemon dies (a kill -9 of the daemon
    outside systemd's cgroup would otherwise leave the child running forever)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    _load()


class ProcessEncoder:
    """Encodings in one spawned child (spawn, not fork: the daemon has threads). Restarted if it dies."""

    def __init__(self, num_jitters: int = 1) -> None:
        self._num_jitters = num_jitters
        self._pool = self._start()

    @staticmethod
    def _start() -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_warm)
        pool.submit(encode_crops, []).result()  # models loaded before the daemon reports ready
        return pool

    def submit(self, crops: list[Crop]) -> Future[list[np.ndarray]]:
        try:
            return self._pool.submit(encode_crops, crops, self._num_jitters)
        except BrokenProcessPool:
            log.error("encoder process died; restarting it")
            self._pool = self._start()
            return self._pool.submit(encode_crops, crops, self._num_jitters)

    def encode(self, bgr: np.ndarray, boxes: list[Box]) -> list[np.ndarray]:
        if not boxes:
            return []
        crops = crops_for(bgr, boxes)
        try:
            return self.submit(crops).result()
        except BrokenProcessPool:
            return self.submit(crops).result()  # submit restarts the broken pool

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
