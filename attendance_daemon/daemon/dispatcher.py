"""The two threads that answer requests: the dispatcher answers them in order, and hands the slow ones
(enrollment: seconds per photo) to the enrollment worker, so status, pause and stop are answered meanwhile.
Every request gets exactly one answer, also when the worker's queue is full or the daemon is stopping."""

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
BACKGROUND_QUEUE = 8  # slow requests (enrollments) waiting beyond this are refused with 409


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


class EnrollmentWorker(_Answering):
    """Slow requests one at a time, in their own thread."""

    def __init__(self, services: Services, link: MqttLink) -> None:
        super().__init__(services, link)
        self.queue: queue.Queue[Incoming | None] = queue.Queue(BACKGROUND_QUEUE)
        self.thread = threading.Thread(target=self._run, name="enrollment", daemon=True)

    def offer(self, incoming: Incoming) -> None:
        try:
            self.queue.put_nowait(incoming)
        except queue.Full:
            self.answer(incoming, registry.refuse(self.name_of(incoming), incoming, Conflict(
                f"busy: {BACKGROUND_QUEUE} enrollments are already waiting; retry later")))

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
        """Waiting enrollments are answered 409 (stopping); the running one may finish (60 s)."""
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
                 background: EnrollmentWorker) -> None:
        super().__init__(services, link)
        self.requests = requests  # filled by paho's thread (MqttLink's on_request)
        self._background = background
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
                if not incoming.retain and registry.runs_in_background(self.name_of(incoming)):
                    self._background.offer(incoming)
                    continue
                self.handle(incoming)
            except Exception:
                log.exception("could not answer a request on %.120s; carrying on", incoming.topic)

    def stalled(self, now: float) -> bool:
        return now - self.beat > DISPATCHER_STALL_S

    def stop(self) -> None:
        self.requests.put(None)
        self.thread.join(5)
