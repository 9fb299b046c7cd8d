"""Decoding a file on its own thread, a couple of frames ahead of the frame loop.

A 1080p30 H.264 file read at 5 analysed frames a second still decodes all 30 (the skipped ones are needed as
references): about a fifth of the frame loop's time. OpenCV releases the GIL while it decodes, so a reader
thread overlaps that with detection. The frame loop still sees every frame in order, a paused session holds
the reader (its queue is full), and the position reported is the frame loop's, not the reader's."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from .sources import Frame, FrameSource

_AHEAD = 2  # decoded frames waiting (6 MB each at 1080p)
_END = object()


class ReadAhead:
    """Wraps a file source; `frames()` may be called once."""

    def __init__(self, inner: FrameSource) -> None:
        self._inner = inner
        self.fps = inner.fps
        self.total = inner.total
        self._queue: queue.Queue[object] = queue.Queue(_AHEAD)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pos = inner.position()

    def frames(self) -> Iterator[Frame]:
        self._thread = threading.Thread(target=self._read, name="video-reader", daemon=True)
        self._thread.start()
        while True:
            item = self._queue.get()
            if item is _END:
                self._pos = self._inner.position()
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, Frame)
            self._pos = item.index + 1
            yield item

    def _read(self) -> None:
        try:
            for frame in self._inner.frames():
                if not self._put(frame):
                    return
            self._put(_END)
        except Exception as exc:  # noqa: BLE001 -- not swallowed: re-raised in the frame loop, which fails the session
            self._put(exc)

    def _put(self, item: object) -> bool:
        """False once the session closes the source (nobody will take the item)."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def position(self) -> int:
        return self._pos

    def resumed(self) -> None:
        self._inner.resumed()

    def warnings(self) -> list[str]:
        return self._inner.warnings()

    def close(self) -> None:
        """Stops the reader before the decoder is released under it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._inner.close()
