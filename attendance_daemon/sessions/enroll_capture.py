"""Enrollment from the box's camera: read the camera for a few seconds while the student turns their head and keep
the frames the selection rules accept (roster/capture.py). Runs on its own thread while the daemon holds the
global lock for it (state: `webcam`, `purpose` `enrollment`); stop and pause reach it through its control."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ..recognition.boxes import Box
from ..roster.capture import CaptureRules, Selection, offer
from .cameras import CameraChoice
from .runner import SessionControl
from .sources import CameraSource

ANALYSIS_FPS = 4.0  # frames looked at per second: a head turn of a few seconds gives a dozen candidates


def capture(camera: CameraChoice, detect: Callable[[np.ndarray], list[Box]], rules: CaptureRules, seconds: float,
            control: SessionControl, beat: Callable[[], None], open_timeout_s: float, retry_s: float) -> Selection:
    source = CameraSource(camera, ANALYSIS_FPS, retry_s=retry_s, open_timeout_s=open_timeout_s)
    selection = Selection()
    deadline = time.monotonic() + seconds
    try:
        for frame in source.frames():
            beat()
            while control.paused and not control.stopped:
                control.wait_running(0.5)
                beat()
            if control.stopped or time.monotonic() >= deadline:
                break
            offer(selection, rules, frame.bgr, detect(frame.bgr))
            if len(selection.kept) >= rules.max_photos:
                break
    finally:
        source.close()
    return selection
