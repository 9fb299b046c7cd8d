"""The hub's intake of box messages: its own paho client on the central broker, a persistent session with manual
acknowledgement, and the ingest worker that stores what it receives in PostgreSQL.

A box message is acknowledged (PUBACK) only after its transaction committed, or once it is refused for good
(malformed, too large, over its box's share while the database works); while the database is away it stays
unacknowledged in the inbox and the worker tries it again, and whatever was never acknowledged (the hub was
killed, its connection dropped) the broker sends again: the session outlives the connection. Storing is
idempotent per (device, session), so a message sent again is only a counted delivery.

Acknowledgements go by packet id, in the order messages are stored (round robin over the boxes), not the order
they arrived: mosquitto, like the brokers we know of, matches a PUBACK to its message by packet id (MQTT 5 asks
a client for arrival order; nothing here relies on it). An ack is sent only on the connection its message came
on: after a reconnect the message comes again and is acknowledged then."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ..config import MqttConfig
from ..mqtt.bridge import HUB
from ..mqtt.link import disable_nagle, make_client
from .connection import StoreUnavailable
from .inbox import Inbox, Item
from .ingest import MAX_BOX_MESSAGE, Ingest
from .store import HubStore

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600
RECEIVE_MAXIMUM = 64  # unacknowledged messages the broker may send (v5; mosquitto 2.0 honours it only roughly)
MAX_PACKET = 2 * MAX_BOX_MESSAGE  # v5: the broker sends nothing bigger (mosquitto drops it for the hub and logs it)
RETRY_S = 0.25  # the worker's pause between tries while the database is away (the store's own backoff applies)
WARN_EVERY_S = 10.0
HEAP_BYTES = 32 * 1024 * 1024  # glibc: blocks up to this from the heap, and this much free heap kept


class BoxIntake:
    def __init__(self, cfg: MqttConfig, client_id: str, store: HubStore, ingest: Ingest,
                 shutdown: threading.Event, inbox: Inbox | None = None) -> None:
        self.cfg, self.store, self.ingest, self.shutdown = cfg, store, ingest, shutdown
        self.inbox = inbox or Inbox()
        self.client = make_client(cfg, client_id, manual_ack=True, persistent=True)
        self.client.reconnect_delay_set(min_delay=max(1, round(cfg.reconnect_min_s)),
                                        max_delay=max(1, round(cfg.reconnect_max_s)))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.generation = 0  # +1 per MQTT connection; guarded by _ack_lock with the acks themselves
        self._ack_lock = threading.Lock()
        self._stopping = threading.Event()
        self.redelivered = 0  # messages the broker sent again (DUP): never acknowledged before
        self.beat = time.monotonic()
        self._warned: dict[str, float] = {}
        self.thread = threading.Thread(target=self._run, name="ingest", daemon=True)

    # ---- MQTT (paho's thread) ---------------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()
        if self.cfg.protocol == "5":
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            props.ReceiveMaximum = RECEIVE_MAXIMUM
            props.MaximumPacketSize = MAX_PACKET
            self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive,
                                      clean_start=False, properties=props)
        else:
            self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags, reason: ReasonCode,
                    properties: Properties | None) -> None:
        if reason.is_failure:
            log.error("central broker refused the hub's intake connection: %s", reason)
            return
        disable_nagle(client)
        with self._ack_lock:
            self.generation += 1
        if flags.session_present:  # what waited unacknowledged comes again on this connection
            dropped = self.inbox.drop_before(self.generation)
            if dropped:
                log.info("%d box messages not yet stored will be sent again by the broker", dropped)
        client.unsubscribe(f"{self.cfg.base_topic}/{HUB}/request/+")  # a session from before the request client
        client.subscribe([(topic, 1) for topic in self.ingest.subscriptions()])
        self.connected.set()
        log.info("intake connected to the central broker %s:%s (session %s)", self.cfg.host, self.cfg.port,
                 "resumed" if flags.session_present else "new")

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[ReasonCode],
                      properties: Properties | None) -> None:
        if any(r.is_failure for r in reasons):
            log.error("central broker refused a subscription of the hub's intake: %s", reasons)
        self.subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode,
                       properties: Properties | None) -> None:
        self.connected.clear()
        if not self.shutdown.is_set():
            log.warning("intake disconnected from the central broker (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        """Checked before it is queued: refused ones are acknowledged at once, queued ones once stored."""
        generation = self.generation
        self.redelivered += int(msg.dup)
        payload = bytes(msg.payload)  # bytes already: no copy
        device, refusal = self.ingest.screen(msg.topic, len(payload))
        if refusal is not None or device is None:
            self.ingest.count(device, refusal or "ignored:topic")
            self._ack(msg.mid, msg.qos, generation)
            return
        item = Item(msg.topic, payload, device, msg.mid, msg.qos, generation)
        admission = self.inbox.put(item, lambda: self.store.problem is None, self.shutdown.is_set)
        if admission == "busy":  # over its share while the database works: it sends faster than it is stored
            self.ingest.count(device, "busy")
            self._ack(msg.mid, msg.qos, generation)
            self._warn(device)

    def _warn(self, device: str) -> None:
        now = time.monotonic()
        if now - self._warned.get(device, 0.0) >= WARN_EVERY_S:
            self._warned[device] = now
            log.warning("box %s sends faster than the hub stores it: messages beyond its %d bytes waiting are "
                        "refused (%d so far)", device, self.inbox.box_bytes,
                        self.ingest.refusals().get(device, {}).get("busy", 0))

    def _ack(self, mid: int, qos: int, generation: int) -> None:
        with self._ack_lock:
            if qos > 0 and generation == self.generation:
                self.client.ack(mid, qos)

    # ---- the worker -------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self.beat = time.monotonic()
            if self._stopping.is_set():
                return
            item = self.inbox.take(timeout=0.5)
            if item is not None:
                self._store(item)

    def _store(self, item: Item) -> None:
        """Stores one message, trying again while the database is away; acknowledges it once committed. Left
        unacknowledged when the hub stops first: the broker sends it to the next hub."""
        try:
            while True:
                try:
                    outcome = self.ingest.handle(item.topic, item.payload)
                    break
                except StoreUnavailable:
                    self.beat = time.monotonic()
                    if self._stopping.wait(RETRY_S):
                        return
            log.debug("%s -> %s", item.topic, outcome)
            self._ack(item.mid, item.qos, item.generation)
        finally:
            self.inbox.done(item)

    # ---- state and stop ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What `fleet` and the service's STATUS say of the intake."""
        down = self.store.down_since
        return {"database": "ok" if self.store.problem is None else self.store.problem,
                "database_down_s": None if down is None else round(time.monotonic() - down, 1),
                "intake": "connected" if self.connected.is_set() else "waiting for the central broker",
                "inbox": self.inbox.figures(), "redelivered": self.redelivered,
                "backpressure_s": round(self.inbox.waited_s, 1), "refused": self.ingest.refusals()}

    def stop(self) -> None:
        """The worker ends after the message it is storing (acknowledged if committed); the waiting ones are
        not acknowledged, so the broker keeps them for the next start."""
        self._stopping.set()
        self.thread.join(30)
        self.client.disconnect()
        self.client.loop_stop()
