"""Box messages received and not yet stored: one FIFO per box, served round robin (a box that floods waits for
its own turn, never another box's), bounded in payload bytes in total and per box, checked before queueing.

A message stays here, unacknowledged on MQTT, until the ingest worker has committed it (or refused it for
good); only then are its bytes given back."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from .ingest import MAX_BOX_MESSAGE

INBOX_BYTES = 64 * 1024 * 1024  # all boxes' messages waiting or being stored; beyond: MQTT waits (backpressure)
BOX_BYTES = 2 * MAX_BOX_MESSAGE  # one box's share; beyond it, while the database works, its messages are refused

Admission = str  # "queued", "busy" (over the box's share: refused) or "stopping"


@dataclass(frozen=True)
class Item:
    topic: str
    payload: bytes
    device: str
    mid: int  # the MQTT packet id, acknowledged once the message is committed
    qos: int
    generation: int  # the MQTT connection it came on: an ack is only ever sent on that connection


class Inbox:
    def __init__(self, total_bytes: int = INBOX_BYTES, box_bytes: int = BOX_BYTES) -> None:
        assert box_bytes >= MAX_BOX_MESSAGE and total_bytes >= box_bytes
        self.total_bytes, self.box_bytes = total_bytes, box_bytes
        self._cond = threading.Condition()
        self._boxes: OrderedDict[str, deque[Item]] = OrderedDict()  # boxes with messages waiting, in turn order
        self._held: dict[str, int] = {}  # bytes per box, waiting or being stored
        self._bytes = 0
        self._count = 0
        self.waited_s = 0.0  # time MQTT's thread spent waiting for room (backpressure)

    def put(self, item: Item, flooding_refused: Callable[[], bool], stopping: Callable[[], bool]) -> Admission:
        """Queues the message once there is room. A box over its share is refused at once while
        `flooding_refused()` (the database works, so the box sends faster than its turn comes); otherwise, and
        when the total is full, the caller waits (MQTT's thread: the broker keeps the rest)."""
        size = len(item.payload)
        with self._cond:
            started = None
            while True:
                held = self._held.get(item.device, 0)
                box_full = held > 0 and held + size > self.box_bytes
                total_full = self._bytes > 0 and self._bytes + size > self.total_bytes
                if box_full and flooding_refused():
                    return "busy"
                if not box_full and not total_full:
                    break
                if stopping():
                    return "stopping"
                if started is None:
                    started = time.monotonic()
                self._cond.wait(0.5)
            if started is not None:
                self.waited_s += time.monotonic() - started
            self._boxes.setdefault(item.device, deque()).append(item)
            self._held[item.device] = self._held.get(item.device, 0) + size
            self._bytes += size
            self._count += 1
            self._cond.notify_all()
            return "queued"

    def take(self, timeout: float) -> Item | None:
        """The next box's oldest message (round robin over the boxes with messages waiting); None on timeout."""
        with self._cond:
            if not self._boxes and not self._cond.wait_for(lambda: bool(self._boxes), timeout):
                return None
            device, waiting = next(iter(self._boxes.items()))
            item = waiting.popleft()
            if waiting:
                self._boxes.move_to_end(device)
            else:
                del self._boxes[device]
            return item

    def done(self, item: Item) -> None:
        """The message was stored or refused for good: its bytes are free again."""
        with self._cond:
            self._release(item)
            self._cond.notify_all()

    def _release(self, item: Item) -> None:
        size = len(item.payload)
        left = self._held.get(item.device, 0) - size
        if left > 0:
            self._held[item.device] = left
        else:
            self._held.pop(item.device, None)
        self._bytes -= size
        self._count -= 1

    def drop_before(self, generation: int) -> int:
        """Drops the waiting messages of earlier MQTT connections (the broker sends them again: they were
        never acknowledged); returns how many."""
        dropped = 0
        with self._cond:
            for device in list(self._boxes):
                waiting = self._boxes[device]
                keep = deque(i for i in waiting if i.generation >= generation)
                for old in (i for i in waiting if i.generation < generation):
                    self._release(old)
                    dropped += 1
                if keep:
                    self._boxes[device] = keep
                else:
                    del self._boxes[device]
            self._cond.notify_all()
        return dropped

    def figures(self) -> dict[str, int]:
        """Messages and bytes held (waiting or being stored), and the boxes with messages waiting."""
        with self._cond:
            return {"messages": self._count, "bytes": self._bytes, "boxes": len(self._boxes)}
