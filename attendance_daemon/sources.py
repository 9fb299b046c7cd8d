"""Frame sources: a video file read at a stride (skipped frames only grabbed) and a live camera."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from .cameras import CameraChoice
from .errors import MediaError, redact_credentials

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    index: int  # source frame number, skipped frames included
    t: float  # seconds of video time
    bgr: np.ndarray


class FrameSource(Protocol):
    fps: float  # rate of the frames this source yields (analysis rate)
    total: int | None  # source frames in a file; None for a camera

    def frames(self) -> Iterator[Frame]: ...

    def position(self) -> int: ...

    def resumed(self) -> None: ...

    def close(self) -> None: ...


class VideoFileSource:
    """Decodes only every `stride`-th frame; pausing between frames keeps the exact position."""

    def __init__(self, path: Path, analysis_fps: float) -> None:
        if not path.is_file():
            raise MediaError(f"path: no such video file: {path}")
        self._cap = cv2.VideoCapture(str(path))
        if not self._cap.isOpened():
            raise MediaError(f"path: cannot open video (corrupt or unsupported): {path}")
        self.source_fps = float(self._cap.get(cv2.CAP_PROP_FPS)) or 25.0
        if not 0 < self.source_fps < 1000:
            self.source_fps = 25.0
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise MediaError(f"path: video has no readable frames (corrupt or empty): {path}")
        self._first: np.ndarray | None = first
        self.total = count if count > 0 else None
        self.stride = max(1, round(self.source_fps / analysis_fps))
        self.fps = self.source_fps / self.stride
        self.size = (first.shape[1], first.shape[0])
        self._pos = 0

    def position(self) -> int:
        return self._pos

    def frames(self) -> Iterator[Frame]:
        while True:
            if self._first is not None:
                bgr, self._first = self._first, None
            else:
                ok, bgr = self._cap.read()
                if not ok:
                    return
            index = self._pos
            self._pos += 1
            yield Frame(index, index / self.source_fps, bgr)
            for _ in range(self.stride - 1):
                if not self._cap.grab():
                    return
                self._pos += 1

    def resumed(self) -> None:
        """Nothing to do: the decoder sits on the next frame."""

    def close(self) -> None:
        self._cap.release()


def parse_camera(spec: str | int) -> int | str:
    """An index ('0'), a device path (/dev/video2) or a stream URL (rtsp://, http://)."""
    if isinstance(spec, int):
        return spec
    text = str(spec).strip()
    return int(text) if text.isdigit() else text


def camera_label(spec: str | int | CameraChoice) -> str:
    """What may be shown of a camera: its declared name, or its spec without `user:pass@`."""
    return spec.label if isinstance(spec, CameraChoice) else redact_credentials(str(spec))


class CameraSource:
    """A live camera sampled at the analysis rate; a camera that stops delivering is retried, then fails."""

    total: int | None = None

    def __init__(self, spec: str | int | CameraChoice, analysis_fps: float, retry_s: float = 5.0) -> None:
        self._spec = parse_camera(spec.spec if isinstance(spec, CameraChoice) else spec)
        self._label = camera_label(spec)  # the spec may hold credentials: never in messages or logs
        self._retry_s = retry_s
        self.fps = analysis_fps
        self._cap = self._open()
        self._pos = 0
        self._t0 = time.monotonic()
        self._paused_at: float | None = None

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(self._spec)
        if not cap.isOpened():
            raise MediaError(f"camera: cannot open camera '{self._label}'")
        return cap

    def position(self) -> int:
        return self._pos

    def pause_clock(self) -> None:
        self._paused_at = time.monotonic()

    def resumed(self) -> None:
        """Shift the clock past the pause (session time excludes it) and drop stale buffered frames."""
        if self._paused_at is not None:
            self._t0 += time.monotonic() - self._paused_at
            self._paused_at = None
        for _ in range(5):
            self._cap.grab()

    def _grab(self) -> None:
        """Takes the next frame off the camera without decoding it (most frames are never analysed)."""
        if self._cap.grab():
            return
        deadline = time.monotonic() + self._retry_s
        while time.monotonic() < deadline:
            log.warning("camera '%s' delivered no frame; reopening", self._label)
            self._cap.release()
            time.sleep(0.5)
            try:
                self._cap = self._open()
            except MediaError:
                continue
            if self._cap.grab():
                return
        raise MediaError(f"camera: camera '{self._label}' stopped delivering frames")

    def frames(self) -> Iterator[Frame]:
        """Every frame is taken off the camera (so none go stale in its buffer); only those due at the analysis
        rate are decoded: at 1080p30 MJPEG that is 5 decodes a second instead of 30."""
        period = 1.0 / self.fps
        next_t = 0.0
        while True:
            self._grab()
            self._pos += 1
            t = time.monotonic() - self._t0
            if t + 1e-3 < next_t:
                continue
            ok, bgr = self._cap.retrieve()
            if not ok:
                continue
            next_t = max(next_t + period, t)
            yield Frame(self._pos - 1, t, bgr)

    def close(self) -> None:
        self._cap.release()
