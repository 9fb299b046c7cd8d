"""Evidence on disk: the annotated export video and unknown-face crops."""

from __future__ import annotations

import contextlib
import functools
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..recognition.boxes import Box

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


@functools.cache
def _x264_ffmpeg() -> str | None:
    """The ffmpeg executable when it has the libx264 encoder (Debian's does), else None."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        return None
    try:
        encoders = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30,
                                  check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return exe if " libx264 " in encoders else None


AUTO = "auto"


class VideoExporter:
    """The annotated video at the analysed frames' own rate: H.264 (yuv420p, moov atom first, so it plays in a
    browser) through the ffmpeg command line when it has libx264, else mp4v through OpenCV (the codec the pip
    OpenCV wheels can write, which browsers do not play). `codec` says which: "h264" or "mp4v"."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int], ffmpeg: str | None = AUTO) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._size = size
        self._proc: subprocess.Popen[bytes] | None = None
        self._writer: cv2.VideoWriter | None = None
        exe = _x264_ffmpeg() if ffmpeg == AUTO else ffmpeg
        if exe is not None:
            self.codec = "h264"
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 -- lives as long as the exporter
            w, h = size
            self._proc = subprocess.Popen(
                [exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                 "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w}x{h}", "-r", f"{fps:.6g}", "-i", "-",
                 "-an", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-preset", "veryfast",
                 "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path)],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log,
            )
        else:
            self.codec = "mp4v"
            self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
            if not self._writer.isOpened():
                raise OSError(f"cannot open export video for writing: {path}")

    def write(self, bgr: np.ndarray) -> None:
        if (bgr.shape[1], bgr.shape[0]) != self._size:
            bgr = cv2.resize(bgr, self._size)
        if self._proc is not None:
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.write(np.ascontiguousarray(bgr, dtype=np.uint8).tobytes())
            except BrokenPipeError as exc:
                raise OSError(f"ffmpeg stopped while writing the export: {self._error()}") from exc
        elif self._writer is not None:
            self._writer.write(bgr)

    def _error(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip()[-300:] or "no message"

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        try:
            code = proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(10)
        if code != 0:
            raise OSError(f"ffmpeg could not write the export (exit {code}): {self._error()}")
        self._log.close()


def video_codec(path: str | Path | None) -> str | None:
    """The codec of a finished video file as `h264`, `mp4v` (or another lower-cased FourCC); None when there is
    no file or it cannot be read (e.g. while it is still being written)."""
    if not path or not Path(path).is_file():
        return None
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return None
        code = int(cap.get(cv2.CAP_PROP_FOURCC))
    finally:
        cap.release()
    fourcc = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)).strip("\x00 ").lower()
    if not fourcc:
        return None
    if fourcc in ("avc1", "h264", "x264"):
        return "h264"
    return "mp4v" if fourcc in ("mp4v", "fmp4") else fourcc  # OpenCV reads MPEG-4 part 2 back as FMP4


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
