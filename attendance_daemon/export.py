"""Evidence on disk: the annotated export video and unknown-face crops."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .vision.boxes import Box

GREEN, RED, GREY = (60, 200, 60), (40, 40, 230), (180, 180, 180)


@dataclass(frozen=True)
class Label:
    box: Box
    text: str
    kind: str  # "known", "unknown" or "pending"


def annotate(bgr: np.ndarray, labels: list[Label]) -> np.ndarray:
    """A copy of the frame with a box and name per face (green known, red unknown, grey undecided)."""
    out = bgr.copy()
    for lb in labels:
        color = {"known": GREEN, "unknown": RED}.get(lb.kind, GREY)
        x1, y1, x2, y2 = (round(v) for v in (lb.box.x1, lb.box.y1, lb.box.x2, lb.box.y2))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, 2)
        (tw, th), _ = cv2.getTextSize(lb.text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        ty = max(th + 4, y1)
        cv2.rectangle(out, (x1, ty - th - 4), (x1 + tw + 4, ty), color, -1)
        cv2.putText(out, lb.text, (x1 + 2, ty - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


class VideoExporter:
    """mp4v writer (the codec the pip OpenCV wheels can write) at the analysed frames' own rate."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
        if not self._writer.isOpened():
            raise OSError(f"cannot open export video for writing: {path}")
        self._size = size

    def write(self, bgr: np.ndarray) -> None:
        if (bgr.shape[1], bgr.shape[0]) != self._size:
            bgr = cv2.resize(bgr, self._size)
        self._writer.write(bgr)

    def close(self) -> None:
        self._writer.release()


def save_crop(bgr: np.ndarray, box: Box, path: Path, margin: float = 0.25) -> None:
    """A face crop with some context around the box, as JPEG."""
    h, w = bgr.shape[:2]
    mx, my = box.width * margin, box.height * margin
    x1, y1 = int(max(0, box.x1 - mx)), int(max(0, box.y1 - my))
    x2, y2 = int(min(w, box.x2 + mx)), int(min(h, box.y2 + my))
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), bgr[y1:y2, x1:x2]):
        raise OSError(f"cannot write face crop: {path}")


def jpeg(bgr: np.ndarray, max_width: int = 640, quality: int = 75) -> bytes:
    """A small JPEG for the retained snapshot topic."""
    if bgr.shape[1] > max_width:
        scale = max_width / bgr.shape[1]
        bgr = cv2.resize(bgr, (max_width, int(bgr.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError("JPEG encoding failed")
    return bytes(buf.tobytes())
