"""The threads that answer requests: the dispatcher answers them in order, and hands those that take seconds to
the worker of their lane (registry.Lane): starts (opening a camera can take the open time-out) and slow requests
(enrollment at seconds per photo, downloads), so status, pause and stop are answered meanwhile.
Every request gets exactly one answer, also when a worker's queue is full or the daemon is stopping."""

from __future__ import annotations

import logging
import queue
import threading
import time

from ..common.errors import Conflict
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


class _Answering:
    def __init__(self, services: Services, link: MqttLink) -> None:
        self.services, self.link = services, link

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

    def __init__(self, services: Services, link: MqttLink, lane: str) -> None:
        super().__init__(services, link)
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

    def _run(self) -> None:
        while True:
            incoming = self.queue.get()
            if incoming is None:
                return
            try:
                self.handle(incoming)
            except Exception:  # handle() never raises; answering can: one request must not end the worker
                log.exception("could not answer %s", incoming.topic)

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
        self.queue.put(None)
        self.thread.join(60)


class Dispatcher(_Answering):
    def __init__(self, services: Services, link: MqttLink, requests: queue.Queue[Incoming | None],
                 lanes: dict[str, LaneWorker]) -> None:
        super().__init__(services, link)
        self.requests = requests  # filled by paho's thread (MqttLink's on_request)
        self._lanes = lanes
        self.beat = time.monotonic()
        self.thread = threading.Thread(target=self._run, name="dispatcher", daemon=True)

    def _run(self) -> None:
        while True:
            try:
                incoming = self.requests.get(timeout=0.5)
            except queue.Empty:
                self.beat = time.monotonic()
                continue
            self.beat = time.monotonic()
            if incoming is None:
                return
            if incoming.retain and not incoming.payload:
                continue  # the deletion of a retained message, not a request
            try:  # nothing one request holds may end this thread: every later request would go unanswered
                if self.services.controls.owns(incoming.topic):  # a Home Assistant set, in order with requests
                    self.services.controls.command(incoming)
                    continue
                lane = self._lanes.get(registry.lane_of(self.name_of(incoming)))
                if lane is not None and not incoming.retain:
                    lane.offer(incoming)
                    continue
                self.handle(incoming)
            except Exception:
                log.exception("could not answer a request on %.120s; carrying on", incoming.topic)

    def stalled(self, now: float) -> bool:
        return now - self.beat > DISPATCHER_STALL_S

    def stop(self) -> None:
        self.requests.put(None)
        self.thread.join(5)
