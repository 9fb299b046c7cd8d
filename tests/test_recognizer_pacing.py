"""How far a file's frame loop may run ahead of the encoder (recognizer pacing), with the encoder held by hand."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent import futures
from concurrent.futures import Future
from typing import Any

import numpy as np
import pytest

from attendance_daemon.attendance.presence import AttendanceBook
from attendance_daemon.config import RecognitionConfig
from attendance_daemon.recognition.boxes import Box
from attendance_daemon.recognition.encode import Crop
from attendance_daemon.recognition.match import Matcher
from attendance_daemon.sessions import recognizer
from attendance_daemon.sessions.sources import Frame
from attendance_daemon.store import StudentRow

FACES = [Box(40.0 + 90 * i, 100.0, 100.0 + 90 * i, 160.0, 0.9) for i in range(20)]  # a room: 20 faces of 60 px
STRANGER = np.full(128, 0.5, np.float32)  # far from the one enrolled encoding (zeros): a visitor's vote


class _Room:
    name = "fixed"

    def detect(self, bgr: np.ndarray, settled: Sequence[Box] = ()) -> list[Box]:
        return list(FACES)


class _HeldEncoder:
    """Futures completed only when the test (or the frame loop's wait) says so."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Future[list[np.ndarray]], int]] = []

    def submit(self, crops: list[Crop]) -> Future[list[np.ndarray]]:
        fut: Future[list[np.ndarray]] = Future()
        self.jobs.append((fut, len(crops)))
        return fut

    def encode(self, bgr: np.ndarray, boxes: list[Box]) -> list[np.ndarray]:
        raise AssertionError("the frame loop never encodes synchronously")

    def close(self) -> None:
        """Nothing to release."""


def _run(monkeypatch: pytest.MonkeyPatch, settle_second_batch: bool) -> list[float]:
    """Frames at 5 fps for 4 s; returns the video times at which the loop waited for the encoder."""
    waits: list[float] = []
    now = [0.0]
    real_wait = futures.wait

    def wait(fs: list[Future[list[np.ndarray]]], **_: Any) -> Any:
        waits.append(now[0])
        for f in fs:
            n = next(n for job, n in enc.jobs if job is f)
            f.set_result([STRANGER] * n)
        return real_wait(fs)

    monkeypatch.setattr(futures, "wait", wait)  # the module the recognizer waits through
    enc = _HeldEncoder()
    roster = [StudentRow(1, "s", "A", "Ada", 1)]
    book = AttendanceBook(roster, 0.2, 2.0, 2, 0.6, 3.0)
    cfg = RecognitionConfig()
    rec = recognizer.Recognizer(_Room(), enc, Matcher(np.zeros((1, 128)), np.zeros(1), 1, 0.5), book, cfg)
    frame = np.zeros((300, 1900, 3), np.uint8)
    for i in range(20):
        now[0] = round(i * 0.2, 1)
        rec.process(Frame(i, now[0], frame))
        if settle_second_batch and now[0] == 0.2:
            fut, n = enc.jobs[1]
            fut.set_result([STRANGER] * n)  # the second batch came back: its faces want a second look soon
    return waits


def test_a_room_of_faces_never_encoded_lets_the_loop_run_three_seconds_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    waits = _run(monkeypatch, settle_second_batch=False)
    assert waits and waits[0] == pytest.approx(3.0)


def test_second_looks_and_a_few_newcomers_keep_the_loop_within_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    waits = _run(monkeypatch, settle_second_batch=True)
    assert waits and waits[0] == pytest.approx(1.0)
