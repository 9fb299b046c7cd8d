"""attendance-hub's service: two paho clients on the central broker, the intake of box messages (intake.py:
persistent v5 session, acknowledged only once stored in PostgreSQL) and the requests client (the hub's own
requests, answers, rosters, availability: never queued behind box messages), the request workers, and the main
loop that feeds the systemd watchdog (daemon/notify.py, as the box daemon does) only while every worker beats
and the database has not been unreachable for long."""

from __future__ import annotations

import json
import logging
import queue
import signal
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ..common.errors import AttendanceError
from ..contract import api
from ..daemon.notify import SystemdNotifier
from ..daemon.registry import MAX_REQUEST_BYTES, parse
from ..mqtt.bridge import HUB
from ..mqtt.link import Incoming, disable_nagle, make_client, tune_allocator
from .config import HubConfig
from .ingest import Ingest
from .intake import HEAP_BYTES, SESSION_EXPIRY_S, BoxIntake
from .requests import HubContext, handle
from .roster import RosterPublisher
from .store import HubStore

log = logging.getLogger(__name__)

REQUESTS = 64  # hub requests waiting per worker; beyond this they are answered 409 at once
REQUEST_BYTES = 16 * 1024 * 1024  # and their payload bytes per worker (checked before queueing: 409 beyond)
BUSY_PARSE_BYTES = 64 * 1024  # a refused request's transaction is read only from a payload this small
SLOW = ("enroll",)  # decode and encode photos for seconds: their own worker, so fleet and reports stay quick
STALL_S = 120.0
DATABASE_DOWN_S = 120.0  # unreachable longer than this: the watchdog is no longer fed (systemd restarts the hub)
SUBSCRIBED_WAIT_S = 10.0  # at start, the intake's subscriptions before `online` (a first start has no session yet)


class Hub:
    def __init__(self, cfg: HubConfig, notifier: SystemdNotifier | None = None) -> None:
        self.cfg = cfg
        self.base = cfg.mqtt.base_topic
        self.root = f"{self.base}/{HUB}"
        self.notifier = notifier or SystemdNotifier()
        self.store = HubStore(cfg.hub.database)
        self.shutdown = threading.Event()
        self.requests: queue.Queue[Incoming | None] = queue.Queue(REQUESTS)
        self.slow: queue.Queue[Incoming | None] = queue.Queue(REQUESTS)
        self._queued_bytes = {"requests": 0, "enrollment": 0}
        self._bytes_lock = threading.Lock()
        self.connected = threading.Event()
        self.client = make_client(cfg.mqtt, f"{cfg.hub.client_id}-requests", persistent=True)
        self.client.will_set(f"{self.root}/availability", b"offline", qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=max(1, round(cfg.mqtt.reconnect_min_s)),
                                        max_delay=max(1, round(cfg.mqtt.reconnect_max_s)))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.rosters = RosterPublisher(self.store, self.base, cfg.hub.roster_key(), self._publish_retained,
                                       cfg.hub.duplicate_warn_distance, cfg.enrollment.max_image_pixels,
                                       cfg.hub.roster_signer(), cfg.hub.legacy_roster_topics)
        self.ingest = Ingest(self.store, self.base, on_online=self._resend_forgets)
        self.intake = BoxIntake(cfg.mqtt, cfg.hub.client_id, self.store, self.ingest, self.shutdown)
        self.ctx = HubContext(self.store, self.rosters, cfg.hub.enrollment, cfg.enrollment, self.send_to_box,
                              self.intake.status,
                              dict(cfg.hub.moodle_acronyms))
        self.beats = {"requests": time.monotonic(), "enrollment": time.monotonic()}
        self._threads = [threading.Thread(target=self._request_loop, args=(self.requests, "requests"),
                                          name="requests", daemon=True),
                         threading.Thread(target=self._request_loop, args=(self.slow, "enrollment"),
                                          name="enrollment", daemon=True)]

    # ---- MQTT -------------------------------------------------------------------------------------

    def _publish_retained(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1, retain=True)

    def send_to_box(self, device_id: str, command: str, request: dict[str, Any]) -> None:
        self.client.publish(f"{self.base}/{device_id}/request/{command}", json.dumps(request).encode(), qos=1)

    def _resend_forgets(self, device_id: str) -> None:
        """A box came (back) online or turned idle: forget requests it has not done go out again (idempotent on the
        box, which refuses one with 409 while the student's section has a session running)."""
        for request in self.store.pending_forgets(device_id):
            if request:
                self.send_to_box(device_id, "forget_student", request)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode,
                    properties: Properties | None) -> None:
        if reason.is_failure:
            log.error("central broker refused the connection: %s", reason)
            return
        disable_nagle(client)
        client.subscribe(f"{self.root}/request/+", qos=1)
        client.publish(f"{self.root}/availability", b"online", qos=1, retain=True)
        self.connected.set()
        log.info("connected to the central broker %s:%s", self.cfg.mqtt.host, self.cfg.mqtt.port)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode,
                       properties: Properties | None) -> None:
        self.connected.clear()
        if not self.shutdown.is_set():
            log.warning("disconnected from the central broker (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        """A hub request (the only subscription of this client), checked before it is queued."""
        if not msg.topic.startswith(f"{self.root}/request/"):
            return
        props = getattr(msg, "properties", None)
        incoming = Incoming(msg.topic, bytes(msg.payload), bool(msg.retain),
                            getattr(props, "ResponseTopic", None), getattr(props, "CorrelationData", None))
        size = len(incoming.payload)
        if size > MAX_REQUEST_BYTES:
            self._refuse(incoming, 413, f"payload: {size} bytes; at most {MAX_REQUEST_BYTES}")
            return
        slow = msg.topic[len(f"{self.root}/request/"):] in SLOW
        worker = "enrollment" if slow else "requests"
        with self._bytes_lock:
            room = self._queued_bytes[worker] == 0 or self._queued_bytes[worker] + size <= REQUEST_BYTES
            if room:
                try:
                    (self.slow if slow else self.requests).put_nowait(incoming)
                    self._queued_bytes[worker] += size
                except queue.Full:
                    room = False
        if not room:  # still one answer per request: 409 at once
            log.error("hub request on %.120s refused: its worker has %d requests waiting", msg.topic,
                      (self.slow if slow else self.requests).qsize())
            self._refuse(incoming, 409, f"busy: {REQUESTS} hub requests (or {REQUEST_BYTES} bytes) are waiting; "
                                        "retry later")

    # ---- workers ----------------------------------------------------------------------------------

    def _request_loop(self, requests: queue.Queue[Incoming | None], beat: str) -> None:
        prefix = f"{self.root}/request/"
        while True:
            try:
                incoming = requests.get(timeout=1)
            except queue.Empty:
                self.beats[beat] = time.monotonic()
                continue
            self.beats[beat] = time.monotonic()
            if incoming is None:
                return
            with self._bytes_lock:
                self._queued_bytes[beat] -= len(incoming.payload)
            if incoming.retain and not incoming.payload:
                continue
            name = incoming.topic[len(prefix):]
            try:
                self._respond(name, handle(self.ctx, name, incoming), incoming)
            except Exception:  # handle() never raises; publishing can: one request must not end the worker
                log.exception("could not answer a hub request on %.120s", incoming.topic)

    def _respond(self, name: str, response: api.Response, incoming: Incoming) -> None:
        payload = response.model_dump_json().encode()
        self.client.publish(f"{self.root}/response/{name[:64]}", payload, qos=1)
        if incoming.retain:
            self.client.publish(incoming.topic, b"", qos=1, retain=True)
        if incoming.response_topic and incoming.response_topic.startswith(f"{self.root}/reply/") \
                and not any(c in incoming.response_topic for c in "+#\x00"):
            props = Properties(PacketTypes.PUBLISH)
            if incoming.correlation is not None and len(incoming.correlation) <= 1024:
                props.CorrelationData = incoming.correlation
            self.client.publish(incoming.response_topic, payload, qos=1, properties=props)

    def _refuse(self, incoming: Incoming, code: int, error: str) -> None:
        """The answer to a request refused before it was queued (paho's thread: the transaction is read only
        from a small payload)."""
        transaction: Any = None
        if len(incoming.payload) <= BUSY_PARSE_BYTES:
            try:
                transaction, _ = parse(incoming)
            except AttendanceError as exc:
                transaction = getattr(exc, "transaction", None)
        name = incoming.topic[len(f"{self.root}/request/"):]
        self._respond(name, api.Response(transaction=transaction, status="error", code=code, error=error), incoming)

    def _healthy(self) -> bool:
        """Every worker alive and beating, and the database reachable (or away for less than DATABASE_DOWN_S:
        the store reconnects by itself; beyond that the watchdog lets systemd restart the hub)."""
        now = time.monotonic()
        beats = [*self.beats.values(), self.intake.beat]
        threads = [*self._threads, self.intake.thread]
        down = self.store.down_since
        return (all(t.is_alive() for t in threads) and all(now - b < STALL_S for b in beats)
                and (down is None or now - down < DATABASE_DOWN_S))

    def _status_line(self) -> str:
        s = self.intake.status()
        inbox = s["inbox"]
        text = ("connected" if self.connected.is_set() else "waiting for the central broker") + \
            f"; {inbox['messages']} box messages ({inbox['bytes'] // 1024} KiB) waiting"
        if s["database"] != "ok":
            text += f"; DATABASE UNREACHABLE for {s['database_down_s']} s: {s['database']}"
        return text

    # ---- run ----------------------------------------------------------------------------------------

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.shutdown.set())
        # paho copies a received payload several times; with glibc's defaults every 4 MiB copy is a fresh mmap
        # (page faults, zeroing): ~100 ms per 4 MiB message, so a box sending ~40 MB/s outran the hub's reading.
        # From the heap, with up to HEAP_BYTES of freed memory kept for the next message: ~25 ms.
        if not tune_allocator(HEAP_BYTES, HEAP_BYTES):
            log.warning("could not tune the C allocator: large box messages are read more slowly")
        for t in self._threads:
            t.start()
        self.intake.start()
        if not self.intake.subscribed.wait(SUBSCRIBED_WAIT_S):
            log.warning("the intake is not subscribed yet (central broker away?); going on")
        props = None
        if self.cfg.mqtt.protocol == "5":
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            self.client.connect_async(self.cfg.mqtt.host, self.cfg.mqtt.port, keepalive=self.cfg.mqtt.keepalive,
                                      clean_start=False, properties=props)
        else:
            self.client.connect_async(self.cfg.mqtt.host, self.cfg.mqtt.port, keepalive=self.cfg.mqtt.keepalive)
        self.client.loop_start()
        self.notifier.ready("running")
        log.info("hub ready (schema %d)", self.store.schema_version())
        wd = self.notifier.watchdog_s
        tick = min(1.0, wd / 4) if wd else 1.0
        while not self.shutdown.wait(tick):
            if self._healthy():
                self.notifier.watchdog()
            self.notifier.status(self._status_line())
        self.notifier.stopping()
        self.intake.stop()
        if self.connected.is_set():
            self.client.publish(f"{self.root}/availability", b"offline", qos=1, retain=True).wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()
        self.requests.put(None)
        self.slow.put(None)
        for t in self._threads:
            t.join(10)
        self.store.close()
        return 0
