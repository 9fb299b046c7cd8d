"""The reader thread in front of a file source: order, position, errors and closing while it waits."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

from attendance_daemon.readahead import ReadAhead
from attendance_daemon.sources import Frame


class _Numbers:
    """A source of `count` tiny frames at a stride of 3 that may fail after `fail_at` frames."""

    fps = 5.0
    total: int | None = 30

    def __init__(self, count: int = 10, fail_at: int | None = None) -> None:
        self._count, self._fail_at = count, fail_at
        self._pos = 0
        self.closed = threading.Event()

    def frames(self) -> Iterator[Frame]:
        for i in range(self._count):
            if i == self._fail_at:
                raise OSError("disk read error")
            self._pos = 3 * i + 1
            yield Frame(3 * i, 3 * i / 15, np.zeros((2, 2, 3), np.uint8))
            self._pos = 3 * i + 3

    def position(self) -> int:
        return self._pos

    def resumed(self) -> None:
        """Nothing to do."""

    def warnings(self) -> list[str]:
        return []

    def close(self) -> None:
        self.closed.set()


def test_frames_in_order_and_the_position_is_the_frame_loops() -> None:
    src = ReadAhead(_Numbers())
    frames = src.frames()
    first = next(frames)
    assert first.index == 0 and src.position() == 1  # the reader is ahead; the position is not
    rest = list(frames)
    assert [f.index for f in rest] == list(range(3, 30, 3))
    assert src.position() == 30  # the end: every source frame, the skipped ones too
    src.close()


def test_a_read_error_reaches_the_frame_loop() -> None:
    src = ReadAhead(_Numbers(fail_at=4))
    frames = src.frames()
    assert [next(frames).index for _ in range(4)] == [0, 3, 6, 9]
    with pytest.raises(OSError, match="disk read error"):
        next(frames)
    src.close()


def test_closing_stops_a_reader_waiting_on_a_full_queue() -> None:
    inner = _Numbers(count=1000)
    src = ReadAhead(inner)
    next(src.frames())  # the reader fills its queue and waits
    src.close()
    assert inner.closed.is_set()
    assert not any(t.name == "video-reader" for t in threading.enumerate())
