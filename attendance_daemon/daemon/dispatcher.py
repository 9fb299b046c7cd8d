"""The threads that answer requests: the dispatcher answers them in order, and hands those that take seconds to
the worker of their lane (registry.Lane): starts (opening a camera can take the open time-out) and slow requests
(enrollment at seconds per photo, downloads), so status, pause and stop are answered meanwhile.
Every request gets exactly one answer, also when a worker's queue is full or the daemon is stopping.

Requests reach them through the RequestInbox, bounded in payload bytes from arrival until answered, and checked
before queueing: a request over MAX_REQUEST_BYTES is answered 413 at once, one that would take the waiting bytes
over REQUEST_QUEUE_BYTES 429 at once (paho's thread never parses a large payload); both are counted for Info."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from ..common.errors import AttendanceError, Conflict, PayloadTooLarge, TooManyRequests
from ..contract import api
from ..mqtt.link import Incoming, MqttLink
from . import (
    handlers,  # noqa: F401  (imported for its effect: every command registers)
    registry,
)
from .publisher import encode
from .services import Services

log = logging.getLogger(__name__)

# A request may legitimately block the dispatcher for a while (opening an RTSP camera can take 30 s,
# enrolling many photos several seconds); only beyond this is it taken as hung and the watchdog starved.
DISPATCHER_STALL_S = 120.0
# Requests waiting in a lane beyond these are refused with 409 at once (a start then carries the state).
LANE_QUEUES = {"starts": 64, "slow": 8}
# Payload bytes of the requests received and not yet answered (both workers): one request of the largest size, so
# a flood of large requests holds at most one at a time (each is read, parsed and decoded: several times its size).
REQUEST_QUEUE_BYTES = registry.MAX_REQUEST_BYTES
REFUSAL_PARSE_BYTES = 64 * 1024  # a request refused on arrival has its transaction echoed only from this small
# Reading a message costs paho ~3 times its size, parsing one ~3 times too: after queueing a request this large,
# paho's thread waits (up to LARGE_WAIT_S) until it is answered before it reads the next message, so two large
# ones are never in memory at once (the broker keeps the rest; a request that takes longer, e.g. enrolling 20
# photos, lets reading go on, and large ones arriving meanwhile are 429).
LARGE_REQUEST_BYTES = 8 * 1024 * 1024
# 20 s: on a loaded box answering a 30 MiB request can take over 10 s; still well inside the broker's keepalive
# grace (1.5 x mqtt.keepalive, 30 s by default) during which paho's thread sends no ping
LARGE_WAIT_S = 20.0


class RequestInbox:
    """The requests from paho's thread to the dispatcher, bounded in bytes before queueing; `refused` counts the
    requests answered at once (`too_large`: 413, `busy`: 429) since the daemon started."""

    def __init__(self, max_bytes: int = REQUEST_QUEUE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.queue: queue.Queue[Incoming | None] = queue.Queue()
        self._lock = threading.Condition()
        self._bytes = 0
        self.refused = {"too_large": 0, "busy": 0}
        self.changed = threading.Event()  # a refusal since Info was last published
        self.answer: Callable[[Incoming, api.Response], None] | None = None  # set by the Dispatcher
        self.name_of: Callable[[Incoming], str] = lambda incoming: "?"

    def offer(self, incoming: Incoming) -> None:
        """paho's thread: queues the request, or answers it at once."""
        size = len(incoming.payload)
        error: AttendanceError | None = None
        with self._lock:
            if size > registry.MAX_REQUEST_BYTES:
                error, reason = PayloadTooLarge(f"payload: {size} bytes; at most {registry.MAX_REQUEST_BYTES}"), \
                    "too_large"
            elif self._bytes > 0 and self._bytes + size > self.max_bytes:
                error, reason = TooManyRequests(
                    f"busy: {self._bytes} bytes of requests are waiting (at most {self.max_bytes}); retry later"), \
                    "busy"
            else:
                self._bytes += size
            if error is not None:
                self.refused[reason] += 1
        if error is None or self.answer is None:
            self.queue.put(incoming)
            if size >= LARGE_REQUEST_BYTES:
                with self._lock:
                    self._lock.wait_for(lambda: self._bytes < size, LARGE_WAIT_S)
            return
        log.warning("request on %.120s refused on arrival: %s", incoming.topic, error.message)
        self.changed.set()
        self.answer(incoming, registry.refuse(self.name_of(incoming), incoming, error, REFUSAL_PARSE_BYTES))

    def done(self, incoming: Incoming) -> None:
        """The request was answered: its bytes are free again."""
        with self._lock:
            self._bytes = max(0, self._bytes - len(incoming.payload))
            self._lock.notify_all()

    def held_bytes(self) -> int:
        with self._lock:
            return self._bytes

    def refusals(self) -> dict[str, int]:
        with self._lock:
            return dict(self.refused)


class _Answering:
    def __init__(self, services: Services, link: MqttLink, inbox: RequestInbox | None = None) -> None:
        self.services, self.link = services, link
        self.inbox = inbox or RequestInbox()

    def name_of(self, incoming: Incoming) -> str:
        return self.link.topics.command_of(incoming.topic) or "?"

    def answer(self, incoming: Incoming, response: api.Response) -> None:
        self.link.respond(self.name_of(incoming), encode(response), incoming)
        if incoming.retain:  # refused; delete it so it is not replayed at every reconnect
            self.link.clear_retained(incoming.topic)

    def handle(self, incoming: Incoming) -> None:
        self.answer(incoming, registry.handle(self.services, self.name_of(incoming), incoming))


class LaneWorker(_Answering):
    """One lane's requests one at a time, in a thread of their own."""

    def __init__(self, services: Services, link: MqttLink, lane: str, inbox: RequestInbox | None = None) -> None:
        super().__init__(services, link, inbox)
        self.lane, self.size = lane, LANE_QUEUES[lane]
        self.queue: queue.Queue[Incoming | None] = queue.Queue(self.size)
        self.thread = threading.Thread(target=self._run, name=f"lane-{lane}", daemon=True)

    def offer(self, incoming: Incoming) -> None:
        try:
            self.queue.put_nowait(incoming)
        except queue.Full:
            data: dict[str, object] | None = None
            if self.lane == "starts":  # as the state machine's own 409: what holds the box
                data = {"state": self.services.sessions.state().model_dump(mode="json")}
            self.answer(incoming, registry.refuse(self.name_of(incoming), incoming, Conflict(
                f"busy: {self.size} {self.lane} requests are already waiting; retry later", data)))
            self.inbox.done(incoming)

    def _run(self) -> None:
        while True:
            incoming = self.queue.get()
            if incoming is None:
                return
            try:
                self.handle(incoming)
            except Exception:  # handle() never raises; answering can: one request must not end the worker
                log.exception("could not answer %s", incoming.topic)
            finally:
                self.inbox.done(incoming)
                del incoming  # a large payload is not kept while the worker waits for the next

    def drain(self) -> None:
        """Waiting requests are answered 409 (stopping); the running one may finish (60 s)."""
        while True:
            try:
                waiting = self.queue.get_nowait()
            except queue.Empty:
                break
            if waiting is not None:
                self.answer(waiting, registry.refuse(self.name_of(waiting), waiting, Conflict(
                    "stopping: the daemon is shutting down; retry when it is back")))
                self.inbox.done(waiting)
        self.queue.put(None)
        self.thread.join(60)


class Dispatcher(_Answering):
    def __init__(self, services: Services, link: MqttLink, inbox: RequestInbox,
                 lanes: dict[str, LaneWorker]) -> None:
        super().__init__(services, link, inbox)
        self.requests = inbox.queue  # filled by paho's thread (MqttLink's on_request: RequestInbox.offer)
        inbox.answer, inbox.name_of = self.answer, self.name_of
        self._lanes = lanes
        self.beat = time.monotonic()
        self._info_at = 0.0
        self.thread = threading.Thread(target=self._run, name="dispatcher", daemon=True)

    def _run(self) -> None:
        while True:
            self._refusals_to_info()
            try:
                incoming = self.requests.get(timeout=0.5)
            except queue.Empty:
                self.beat = time.monotonic()
                continue
            self.beat = time.monotonic()
            if incoming is None:
                return
            if incoming.retain and not incoming.payload:
                self.inbox.done(incoming)
                continue  # the deletion of a retained message, not a request
            background = False
            try:  # nothing one request holds may end this thread: every later request would go unanswered
                if self.services.controls.owns(incoming.topic):  # a Home Assistant set, in order with requests
                    self.services.controls.command(incoming)
                    continue
                lane = self._lanes.get(registry.lane_of(self.name_of(incoming)))
                if lane is not None and not incoming.retain:
                    background = True
                    lane.offer(incoming)  # its bytes are freed once it is answered
                    continue
                self.handle(incoming)
            except Exception:
                log.exception("could not answer a request on %.120s; carrying on", incoming.topic)
            finally:
                if not background:
                    self.inbox.done(incoming)
                del incoming  # a large payload is not kept while the dispatcher waits for the next

    def _refusals_to_info(self) -> None:
        """Requests refused on arrival show in the retained Info, republished at most once a second."""
        now = time.monotonic()
        if self.inbox.changed.is_set() and now - self._info_at >= 1.0:
            self.inbox.changed.clear()
            self._info_at = now
            try:
                self.services.info.publish()
            except Exception:  # the database may be away: the next refusal tries again
                log.exception("could not republish info after refusing requests")

    def stalled(self, now: float) -> bool:
        return now - self.beat > DISPATCHER_STALL_S

    def stop(self) -> None:
        self.requests.put(None)
        self.thread.join(5)
