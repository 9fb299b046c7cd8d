"""Box messages received and not yet stored: one FIFO per box, served in turn by bytes (deficit round robin: each
turn gives a box QUANTUM bytes, so a box sending 4 MiB messages gets one stored per many small ones of the
others, and a box that floods waits for its own turns, never another box's), bounded in payload bytes in total
and per box, checked before queueing.

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
QUANTUM = 64 * 1024  # bytes a box may have stored per turn

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
        if total_bytes < box_bytes:
            raise ValueError(f"inbox: total_bytes {total_bytes} is below one box's share {box_bytes}")
        self.total_bytes, self.box_bytes = total_bytes, box_bytes
        self._cond = threading.Condition()
        self._boxes: OrderedDict[str, deque[Item]] = OrderedDict()  # boxes with messages waiting, in turn order
        self._credit: dict[str, int] = {}  # bytes each waiting box may still have stored (its deficit)
        self._turn: str | None = None  # the box whose turn it is (the first in _boxes)
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
            started = time.monotonic()
            try:
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
                    self._cond.wait(0.5)
            finally:
                self.waited_s += time.monotonic() - started
            self._boxes.setdefault(item.device, deque()).append(item)
            self._held[item.device] = self._held.get(item.device, 0) + size
            self._bytes += size
            self._count += 1
            self._cond.notify_all()
            return "queued"

    def take(self, timeout: float) -> Item | None:
        """The oldest message of the box whose turn it is; None on timeout."""
        with self._cond:
            if not self._boxes and not self._cond.wait_for(lambda: bool(self._boxes), timeout):
                return None
            while True:
                device, waiting = next(iter(self._boxes.items()))
                if self._turn != device:  # a new turn: more credit
                    self._turn = device
                    self._credit[device] = self._credit.get(device, 0) + QUANTUM
                size = len(waiting[0].payload)
                if size <= self._credit[device]:
                    self._credit[device] -= size
                    item = waiting.popleft()
                    if not waiting:  # no credit is saved up while a box has nothing waiting
                        del self._boxes[device]
                        del self._credit[device]
                        self._turn = None
                    return item
                self._boxes.move_to_end(device)  # its turn is over; its credit stays for the next
                self._turn = None

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
                    self._credit.pop(device, None)
                    if self._turn == device:
                        self._turn = None
            self._cond.notify_all()
        return dropped

    def figures(self) -> dict[str, int]:
        """Messages and bytes held (waiting or being stored), and the boxes with messages waiting."""
        with self._cond:
            return {"messages": self._count, "bytes": self._bytes, "boxes": len(self._boxes)}
