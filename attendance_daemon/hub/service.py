"""attendance-hub's service: one paho client on the central broker (persistent v5 session, so what boxes send
while the hub restarts waits for it), an ingest worker writing to PostgreSQL, a request worker, and the main
loop that feeds the systemd watchdog (daemon/notify.py, as the box daemon does)."""

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
from ..daemon.registry import parse
from ..mqtt.bridge import HUB
from ..mqtt.link import Incoming, disable_nagle, make_client
from .config import HubConfig
from .ingest import Ingest
from .requests import HubContext, handle
from .roster import RosterPublisher
from .store import HubStore

log = logging.getLogger(__name__)

INBOX = 50_000  # box messages waiting for the database; beyond this paho's thread waits (backpressure)
REQUESTS = 64  # hub requests waiting; beyond this they are answered 409 at once
BUSY_PARSE_BYTES = 64 * 1024  # a refused request's transaction is read only from a payload this small
SLOW = ("enroll",)  # decode and encode photos for seconds: their own worker, so fleet and reports stay quick
SESSION_EXPIRY_S = 7 * 24 * 3600
STALL_S = 120.0


class Hub:
    def __init__(self, cfg: HubConfig, notifier: SystemdNotifier | None = None) -> None:
        self.cfg = cfg
        self.base = cfg.mqtt.base_topic
        self.root = f"{self.base}/{HUB}"
        self.notifier = notifier or SystemdNotifier()
        self.store = HubStore(cfg.hub.database)
        self.shutdown = threading.Event()
        self.inbox: queue.Queue[tuple[str, bytes] | None] = queue.Queue(INBOX)
        self.requests: queue.Queue[Incoming | None] = queue.Queue(REQUESTS)
        self.slow: queue.Queue[Incoming | None] = queue.Queue(REQUESTS)
        self.connected = threading.Event()
        self.client = make_client(cfg.mqtt, cfg.hub.client_id)
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
        self.ctx = HubContext(self.store, self.rosters, cfg.hub.enrollment, cfg.enrollment, self.send_to_box)
        self.beats = {"ingest": time.monotonic(), "requests": time.monotonic(), "enrollment": time.monotonic()}
        self._threads = [threading.Thread(target=self._ingest_loop, name="ingest", daemon=True),
                         threading.Thread(target=self._request_loop, args=(self.requests, "requests"),
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
        for topic in self.ingest.subscriptions():
            client.subscribe(topic, qos=1)
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
        if msg.topic.startswith(f"{self.root}/request/"):
            props = getattr(msg, "properties", None)
            incoming = Incoming(msg.topic, bytes(msg.payload), bool(msg.retain),
                                getattr(props, "ResponseTopic", None), getattr(props, "CorrelationData", None))
            slow = msg.topic[len(f"{self.root}/request/"):] in SLOW
            try:
                (self.slow if slow else self.requests).put_nowait(incoming)
            except queue.Full:  # still one answer per request: 409 at once
                log.error("hub request on %.120s refused: %d waiting", msg.topic, REQUESTS)
                self._refuse_busy(incoming)
            return
        self.inbox.put((msg.topic, bytes(msg.payload)))

    # ---- workers ----------------------------------------------------------------------------------

    def _ingest_loop(self) -> None:
        while True:
            try:
                item = self.inbox.get(timeout=1)
            except queue.Empty:
                self.beats["ingest"] = time.monotonic()
                continue
            self.beats["ingest"] = time.monotonic()
            if item is None:
                return
            outcome = self.ingest.handle(*item)
            log.debug("%s -> %s", item[0], outcome)

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

    def _refuse_busy(self, incoming: Incoming) -> None:
        """The 409 for a request that found its queue full (paho's thread: the transaction is read only from a
        small payload)."""
        transaction: Any = None
        if len(incoming.payload) <= BUSY_PARSE_BYTES:
            try:
                transaction, _ = parse(incoming)
            except AttendanceError as exc:
                transaction = getattr(exc, "transaction", None)
        name = incoming.topic[len(f"{self.root}/request/"):]
        self._respond(name, api.Response(transaction=transaction, status="error", code=409,
                                         error=f"busy: {REQUESTS} hub requests are waiting; retry later"), incoming)

    def _healthy(self) -> bool:
        now = time.monotonic()
        return all(t.is_alive() for t in self._threads) and all(now - b < STALL_S for b in self.beats.values())

    # ---- run ----------------------------------------------------------------------------------------

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.shutdown.set())
        for t in self._threads:
            t.start()
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
            self.notifier.status(("connected" if self.connected.is_set() else "waiting for the central broker")
                                 + f"; {self.inbox.qsize()} messages waiting")
        self.notifier.stopping()
        if self.connected.is_set():
            self.client.publish(f"{self.root}/availability", b"offline", qos=1, retain=True).wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()
        self.inbox.put(None)
        self.requests.put(None)
        self.slow.put(None)
        for t in self._threads:
            t.join(10)
        self.store.close()
        return 0
