"""What a video file is, as the decoder sees it: frames, fps, size and duration, after decoding one frame (a file
whose header parses but whose frames do not decode is no video for a session)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2


@dataclass(frozen=True)
class VideoFacts:
    frames: int
    fps: float
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return round(self.frames / self.fps, 3)


def probe_video(path: Path) -> VideoFacts | str:
    """The facts, or why the decoder cannot use the file."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return "not a video the decoder can open"
        frames, fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), float(cap.get(cv2.CAP_PROP_FPS))
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        ok, frame = cap.read()
        if not ok or frame is None:
            return "the decoder opened the file but could not decode a frame"
        if frames <= 0 or not fps > 0 or width <= 0 or height <= 0:
            return f"the video reports no usable frame count, rate or size ({frames} frames, {fps} fps)"
        return VideoFacts(frames, fps, width, height)
    finally:
        cap.release()
