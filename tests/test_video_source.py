"""The video file source on a real H.264 file: skipped frames grabbed beside the frame loop, positions that are
the frame loop's, and closing while the helper grabs."""

from __future__ import annotations

import threading
from pathlib import Path

from attendance_daemon.sessions.sources import VideoFileSource


def test_every_analysed_frame_in_order_and_the_position_is_the_frame_loops(daemon_media: Path) -> None:
    src = VideoFileSource(daemon_media / "classroom.mp4", analysis_fps=5.0)
    assert src.stride > 1 and src.total
    frames = src.frames()
    first = next(frames)
    assert first.index == 0 and src.position() == 1  # whatever the helper has grabbed meanwhile
    indices = [first.index] + [f.index for f in frames]
    assert indices == list(range(0, src.total, src.stride))
    assert src.position() == src.total  # the end: every frame of the file, the skipped ones too
    assert src.warnings() == []
    src.close()


def test_closing_mid_file_waits_for_the_helper(daemon_media: Path) -> None:
    src = VideoFileSource(daemon_media / "long.mp4", analysis_fps=5.0)
    frames = src.frames()
    for _ in range(3):
        next(frames)
    src.close()  # the helper was grabbing the next frames: released after it, no crash
    assert not any(t.name.startswith("video-skip") for t in threading.enumerate())

