"""Frame sources: a video file read at a stride (skipped frames only grabbed) and a live camera.

Opening goes through `open_capture`: OpenCV's open can block forever (a stream that accepts and never
answers, a FIFO without a writer), so it runs on a helper thread and is given up after a time-out."""

from __future__ import annotations

import logging
import math
import os
import re
import stat
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from ..common.errors import MediaError, MediaNotFound, redact_credentials
from .cameras import CameraChoice

log = logging.getLogger(__name__)

MAX_SANE_FPS = 240.0  # above this (or 0 / NaN) the container's frame rate is taken as a lie
_STREAM = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
DEFAULT_OPEN_TIMEOUT_S = 10.0


def check_openable(path: Path, field: str, allow_devices: bool = False) -> None:
    """A regular file (or, for cameras, a character device): never a FIFO, socket or directory, on which
    OpenCV's open would block or fail obscurely."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as exc:
        raise MediaNotFound(f"{field}: no such video file: {path.name}") from exc
    if stat.S_ISREG(mode) or (allow_devices and stat.S_ISCHR(mode)):
        return
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a directory" if stat.S_ISDIR(mode) else "not a regular file"
    raise MediaError(f"{field}: '{path.name}' is {kind}; only regular video files can be read")


def open_capture(spec: int | str, timeout_s: float, field: str, label: str | None = None) -> cv2.VideoCapture:
    """An opened VideoCapture, or MediaError after `timeout_s` (the helper thread is then abandoned and
    releases whatever it opens late). FFmpeg streams also get OpenCV's own open/read time-outs. Messages
    show `label` (default: the spec without credentials)."""
    shown = label if label is not None else redact_credentials(str(spec))
    if isinstance(spec, str) and not _STREAM.match(spec):
        check_openable(Path(spec), field, allow_devices=spec.startswith("/dev/"))
    ms = int(timeout_s * 1000)
    # FFmpeg (streams, files) honours these; other backends (V4L2 for /dev/video*) may refuse unknown params
    ffmpeg_like = isinstance(spec, str) and not spec.startswith("/dev/")
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms] if ffmpeg_like else []
    lock = threading.Lock()
    box: dict[str, cv2.VideoCapture | BaseException | bool] = {}
    done = threading.Event()

    def opener() -> None:
        try:
            cap = cv2.VideoCapture(spec, cv2.CAP_ANY, params) if params else cv2.VideoCapture(spec)
        except BaseException as exc:  # noqa: BLE001 -- handed to the waiting thread, which raises it
            with lock:
                box["error"] = exc
            done.set()
            return
        with lock:
            if box.get("abandoned"):
                cap.release()  # opened after the caller gave up
                return
            box["cap"] = cap
        done.set()

    threading.Thread(target=opener, name="open-source", daemon=True).start()
    if not done.wait(timeout_s):
        with lock:
            box["abandoned"] = True
            late = box.get("cap")
        if not isinstance(late, cv2.VideoCapture):
            raise MediaError(f"{field}: '{shown}' did not open within {timeout_s:g} s")
    with lock:
        result = box.get("cap", box.get("error"))
    if isinstance(result, BaseException):
        raise MediaError(f"{field}: cannot open '{shown}': {redact_credentials(str(result))}") from result
    assert isinstance(result, cv2.VideoCapture)
    return result


def sane_fps(fps: float) -> bool:
    return not math.isnan(fps) and 0 < fps <= MAX_SANE_FPS


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

    def warnings(self) -> list[str]: ...

    def close(self) -> None: ...


class VideoFileSource:
    """Decodes only every `stride`-th frame; pausing between frames keeps the exact position.

    The skipped frames must still be decoded (an H.264 stream needs them as references): about a fifth of a
    1080p30 session's frame loop. They are grabbed on a helper thread while the frame loop works on the frame
    before them (OpenCV releases the GIL while decoding), holding no extra picture in memory. `position()` is
    the frame loop's: the frame after the one it has, whatever the helper has grabbed meanwhile.

    When the container's frame rate is absent or absurd, time comes from each frame's timestamp and frames
    are picked at the analysis rate by time. `warnings()` says when decoding ended before the container's
    frame count (a truncated file)."""

    def __init__(self, path: Path, analysis_fps: float, open_timeout_s: float = DEFAULT_OPEN_TIMEOUT_S) -> None:
        self._cap = open_capture(str(path), open_timeout_s, "path", path.name)
        if not self._cap.isOpened():
            raise MediaError(f"path: cannot open video (corrupt or unsupported): {path.name}")
        meta_fps = float(self._cap.get(cv2.CAP_PROP_FPS))
        self.timed = not sane_fps(meta_fps)  # frame timestamps, not the metadata, give the time
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise MediaError(f"path: video has no readable frames (corrupt or empty): {path.name}")
        self._first: np.ndarray | None = first
        self._first_t = self._timestamp()
        self._warnings: list[str] = []
        if self.timed:
            log.warning("%s: frame rate metadata %r is unusable; timing frames by their timestamps", path.name,
                        meta_fps)
            self._warnings.append(f"frame rate metadata ({meta_fps:g} fps) is unusable; "
                                  "times come from the frames' timestamps")
            self.source_fps = analysis_fps
            self.stride = 1
            self.fps = analysis_fps
            self.total = None  # a count derived from a lying frame rate is a lie too
        else:
            self.source_fps = meta_fps
            self.stride = max(1, round(self.source_fps / analysis_fps))
            self.fps = self.source_fps / self.stride
            self.total = count if count > 0 else None
        self.size = (first.shape[1], first.shape[0])
        self._pos = 0  # frames taken from the decoder
        self._shown = 0  # the frame after the last one handed to the frame loop
        self._exhausted = False  # the decoder ran out (not a stop or a duration)
        self._skipper: ThreadPoolExecutor | None = None

    def _timestamp(self) -> float:
        return float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0

    def position(self) -> int:
        return self._shown

    def warnings(self) -> list[str]:
        """What the caller should know about the file after reading it (e.g. it ended early)."""
        out = list(self._warnings)
        ended_early = self._exhausted and self.total and self._pos < self.total - max(2, 0.01 * self.total)
        if ended_early:
            out.append(f"decoding ended at frame {self._pos} of {self.total} the container announces "
                       "(truncated or damaged file); results cover only the decoded part")
        return out

    def frames(self) -> Iterator[Frame]:
        if self.timed:
            yield from self._timed_frames()
            self._shown = self._pos
            return
        skipping: Future[bool] | None = None
        while True:
            if skipping is not None and not skipping.result():
                self._exhausted, self._shown = True, self._pos
                return
            if self._first is not None:
                bgr, self._first = self._first, None
            else:
                ok, bgr = self._cap.read()
                if not ok:
                    self._exhausted, self._shown = True, self._pos
                    return
            index = self._pos
            self._pos += 1
            if self.stride > 1:
                if self._skipper is None:
                    self._skipper = ThreadPoolExecutor(1, thread_name_prefix="video-skip")
                skipping = self._skipper.submit(self._skip, self.stride - 1)
            self._shown = index + 1
            yield Frame(index, index / self.source_fps, bgr)

    def _skip(self, count: int) -> bool:
        """Grabs (decodes, never converts) the frames between two analysed ones; False at the end."""
        for _ in range(count):
            if not self._cap.grab():
                return False
            self._pos += 1
        return True

    def _timed_frames(self) -> Iterator[Frame]:
        """Every frame is grabbed; one is decoded whenever its timestamp reaches the next analysis time."""
        period = 1.0 / self.fps
        next_t = 0.0
        t0 = self._first_t
        while True:
            if self._first is not None:
                bgr: np.ndarray | None = self._first
                self._first, t = None, 0.0
            else:
                if not self._cap.grab():
                    self._exhausted = True
                    return
                t, bgr = max(0.0, self._timestamp() - t0), None
            index = self._pos
            self._pos += 1
            if t + 1e-3 < next_t:
                continue
            if bgr is None:
                ok, bgr = self._cap.retrieve()
                if not ok or bgr is None:
                    return
            next_t = max(next_t + period, t)
            self._shown = self._pos
            yield Frame(index, t, bgr)

    def resumed(self) -> None:
        """Nothing to do: the decoder sits on the next frame."""

    def close(self) -> None:
        if self._skipper is not None:  # the helper may be grabbing: the decoder is released after it
            self._skipper.shutdown(wait=True)
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

    def __init__(self, spec: str | int | CameraChoice, analysis_fps: float, retry_s: float = 5.0,
                 open_timeout_s: float = DEFAULT_OPEN_TIMEOUT_S) -> None:
        self._spec = parse_camera(spec.spec if isinstance(spec, CameraChoice) else spec)
        self._label = camera_label(spec)  # the spec may hold credentials: never in messages or logs
        self._retry_s = retry_s
        self._open_timeout_s = open_timeout_s
        self.fps = analysis_fps
        self._cap = self._open()
        self._pos = 0
        self._t0 = time.monotonic()
        self._paused_at: float | None = None

    def _open(self) -> cv2.VideoCapture:
        cap = open_capture(self._spec, self._open_timeout_s, "camera", self._label)
        if not cap.isOpened():
            raise MediaError(f"camera: cannot open camera '{self._label}'")
        return cap

    def position(self) -> int:
        return self._pos

    def warnings(self) -> list[str]:
        return []

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
