"""The MQTT adapter: paho-mqtt 2.x (VERSION2 callbacks, MQTT v5), LWT, reconnect with backoff, and a
cache of retained payloads that is republished after every (re)connect."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from ..config import MqttConfig
from .topics import RETAINED, Topics

log = logging.getLogger(__name__)


def disable_nagle(client: mqtt.Client) -> None:
    """paho leaves Nagle on: small replies then wait for the peer's delayed ACK (~40 ms each way)."""
    sock = client.socket()
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def make_client(cfg: MqttConfig, client_id: str) -> mqtt.Client:
    """A paho client with the configured protocol, credentials and TLS (shared by the daemon and `check`)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5 if cfg.protocol == "5" else mqtt.MQTTv311)
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password)
    if cfg.tls:
        client.tls_set(
            ca_certs=str(cfg.ca_certs) if cfg.ca_certs else None,
            certfile=str(cfg.certfile) if cfg.certfile else None,
            keyfile=str(cfg.keyfile) if cfg.keyfile else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        client.tls_insecure_set(cfg.tls_insecure)
    return client


@dataclass(frozen=True)
class Incoming:
    topic: str
    payload: bytes
    retain: bool
    response_topic: str | None
    correlation: bytes | None


class MqttLink:
    """Owns the client. `on_request` is called on paho's network thread: it must only enqueue."""

    def __init__(self, cfg: MqttConfig, topics: Topics, on_request: Callable[[Incoming], None]) -> None:
        self.cfg, self.topics = cfg, topics
        self._on_request = on_request
        self._retained: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.last_error: str | None = None
        self.v5 = cfg.protocol == "5"
        self.client = make_client(cfg, cfg.client_id or f"attendance-daemon-{cfg.device_id}")
        self.client.will_set(topics.of("availability"), b"offline", qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=max(1, round(cfg.reconnect_min_s)),
                                        max_delay=max(1, round(cfg.reconnect_max_s)))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.set_retained("availability", b"online")

    def start(self) -> None:
        """Connects in the background; paho keeps retrying until the broker answers."""
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)
        self.client.loop_start()

    def stop(self, timeout: float = 5.0) -> None:
        """Publishes `offline` (a clean disconnect does not fire the LWT), then disconnects."""
        with self._lock:
            self._retained["availability"] = b"offline"
        if self.connected.is_set():
            info = self.client.publish(self.topics.of("availability"), b"offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not publish offline before disconnecting: %s", exc)
        self.client.disconnect()
        self.client.loop_stop()

    # ---- publishing -------------------------------------------------------------------------------

    def set_retained(self, leaf: str, payload: bytes) -> None:
        """Remember the payload for republishing after reconnects, then publish it retained.

        Under the same lock as the republish in _on_connect, so a value set during a reconnect is never lost."""
        assert leaf in RETAINED, leaf
        with self._lock:
            self._retained[leaf] = payload
            if self.connected.is_set():
                self.client.publish(self.topics.of(leaf), payload, qos=1, retain=True)

    def publish(self, topic: str, payload: bytes, qos: int = 1, properties: Properties | None = None) -> None:
        """Non-retained; QoS 1 messages sent while the broker is away are queued by paho."""
        self.client.publish(topic, payload, qos=qos, retain=False, properties=properties)

    def clear_retained(self, topic: str) -> None:
        """Deletes a retained message (a zero-length retained publish), e.g. a retained request."""
        self.client.publish(topic, b"", qos=1, retain=True)

    def respond(self, command: str, payload: bytes, incoming: Incoming | None) -> None:
        self.publish(self.topics.response(command), payload)
        if incoming is not None and incoming.response_topic:
            props = Properties(PacketTypes.PUBLISH)
            if incoming.correlation is not None:
                props.CorrelationData = incoming.correlation
            self.publish(incoming.response_topic, payload, properties=props)

    # ---- callbacks (paho network thread) -----------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags, reason: ReasonCode,
                    properties: Properties | None) -> None:
        if reason.is_failure:
            self.last_error = f"broker refused the connection: {reason}"
            log.error("MQTT connection refused: %s", reason)
            return
        self.last_error = None
        log.info("connected to MQTT broker %s:%s", self.cfg.host, self.cfg.port)
        disable_nagle(client)
        # Retain-as-published (v5) lets a request that was (wrongly) published retained be recognised and
        # refused; with 3.1.1 only requests replayed from the broker's store carry the retain flag.
        if self.v5:
            client.subscribe(self.topics.requests, options=SubscribeOptions(qos=1, retainAsPublished=True))
        else:
            client.subscribe(self.topics.requests, qos=1)
        with self._lock:
            for leaf, payload in self._retained.items():
                client.publish(self.topics.of(leaf), payload, qos=1, retain=True)
            self.connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags, reason: ReasonCode,
                       properties: Properties | None) -> None:
        self.connected.clear()
        log.warning("disconnected from MQTT broker (%s); reconnecting with backoff", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        response_topic = getattr(props, "ResponseTopic", None) if props is not None else None
        correlation = getattr(props, "CorrelationData", None) if props is not None else None
        self._on_request(Incoming(msg.topic, bytes(msg.payload), bool(msg.retain), response_topic, correlation))
