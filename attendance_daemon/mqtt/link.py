"""The MQTT adapter: paho-mqtt 2.x (VERSION2 callbacks, MQTT v5), LWT, reconnect with backoff, and a
cache of retained payloads that is republished after every (re)connect."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from ..config import MqttConfig
from .topics import MAX_CORRELATION, RETAINED, Topics

log = logging.getLogger(__name__)

SESSION_TAKEN_OVER = 142  # MQTT v5 DISCONNECT reason: another client connected with our client id
SHORT_LIVED_S = 10.0  # connections lost sooner than this, twice in a row, are taken as a client-id takeover


def disable_nagle(client: mqtt.Client) -> None:
    """paho leaves Nagle on: small replies then wait for the peer's delayed ACK (~40 ms each way)."""
    sock = client.socket()
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def tune_allocator(mmap_threshold: int, trim_threshold: int | None = None) -> bool:
    """glibc's malloc for large MQTT payloads (paho copies each received one several times): blocks from
    `mmap_threshold` bytes on are mapped and given back to the system when freed (glibc's default raises that
    threshold to the largest block freed so far, up to 32 MiB, so after one 30 MiB request every later copy
    stays in the process), and up to `trim_threshold` bytes of freed heap are kept. False where the C library
    has no mallopt (not glibc): its defaults stay."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError) as exc:
        log.info("C allocator left as it is (%s)", exc)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    done = bool(mallopt(m_mmap_threshold, mmap_threshold))
    if trim_threshold is not None:
        done = done and bool(mallopt(m_trim_threshold, trim_threshold))
    return done


def make_client(cfg: MqttConfig, client_id: str, manual_ack: bool = False, persistent: bool = False) -> mqtt.Client:
    """A paho client with the configured protocol, credentials and TLS (shared by the daemon, the hub and
    `check`). `manual_ack`: QoS 1 messages are acknowledged only by `client.ack(mid, qos)`; `persistent`: an
    MQTT 3.1.1 session that outlives the connection (v5 asks for that when connecting)."""
    v5 = cfg.protocol == "5"
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                         clean_session=None if v5 else not persistent, manual_ack=manual_ack)
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

    def __init__(self, cfg: MqttConfig, topics: Topics, on_request: Callable[[Incoming], None],
                 on_takeover: Callable[[str], None] | None = None,
                 watched: Sequence[tuple[str, Callable[[Incoming], None]]] = ()) -> None:
        self.cfg, self.topics = cfg, topics
        self._on_request = on_request
        # Other topic filters subscribed (the hub's rosters, upload chunks): their messages go to their own
        # callback (on paho's thread: it must only enqueue), never to requests.
        self._watched = list(watched)
        self._on_takeover = on_takeover
        self._stopping = False
        self._drops = 0  # short-lived connections in a row: the reconnect delay doubles with each
        self._takeover_notice: str | None = None
        self._connected_at = 0.0
        self._retained: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.last_error: str | None = None
        self.v5 = cfg.protocol == "5"
        self.client_id = cfg.client_id or f"attendance-daemon-{cfg.device_id}"
        self.client = make_client(cfg, self.client_id)
        self.client.will_set(topics.of("availability"), b"offline", qos=1, retain=True)
        self._normal_backoff()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.set_retained("availability", b"online")

    def start(self) -> None:
        """Connects in the background; paho keeps retrying until the broker answers."""
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)
        self.client.loop_start()

    def _normal_backoff(self) -> None:
        self.client.reconnect_delay_set(min_delay=max(1, round(self.cfg.reconnect_min_s)),
                                        max_delay=max(1, round(self.cfg.reconnect_max_s)))

    def stop(self, timeout: float = 5.0) -> None:
        """Publishes `offline` (a clean disconnect does not fire the LWT), then disconnects."""
        self._stopping = True
        with self._lock:
            self._retained[self.topics.of("availability")] = b"offline"
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
        self.set_retained_topic(self.topics.of(leaf), payload)

    def set_retained_topic(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo | None:
        """The same for a topic outside R (Home Assistant discovery configs). An empty payload deletes the
        broker's retained message, and is repeated after every reconnect (harmless, and it survives a broker
        that was away when it was first sent). None when the broker is away now."""
        with self._lock:
            self._retained[topic] = payload
            if self.connected.is_set():
                return self.client.publish(topic, payload, qos=1, retain=True)
        return None

    def publish(self, topic: str, payload: bytes, qos: int = 1,
                properties: Properties | None = None) -> mqtt.MQTTMessageInfo:
        """Non-retained; QoS 1 messages sent while the broker is away are queued by paho."""
        return self.client.publish(topic, payload, qos=qos, retain=False, properties=properties)

    @staticmethod
    def acknowledged(info: mqtt.MQTTMessageInfo | None, timeout: float) -> bool:
        """True once the broker acknowledged this QoS 1 message within `timeout`; False when it did not (away,
        queue full, too slow): the caller keeps it in its outbox and sends it again later."""
        if info is None:
            return False
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def clear_retained(self, topic: str) -> None:
        """Deletes a retained message (a zero-length retained publish), e.g. a retained request."""
        self.client.publish(topic, b"", qos=1, retain=True)

    def respond(self, command: str, payload: bytes, incoming: Incoming | None) -> None:
        """The fixed response topic always; the request's v5 Response Topic too when it is allowed there
        (see Topics.reply_refusal) and its Correlation Data is at most MAX_CORRELATION bytes."""
        self.publish(self.topics.response(command), payload)
        if incoming is None or incoming.response_topic is None:
            return
        refusal = self.topics.reply_refusal(incoming.response_topic, self.cfg.reply_prefixes)
        if refusal is None and incoming.correlation is not None and len(incoming.correlation) > MAX_CORRELATION:
            refusal = f"correlation data longer than {MAX_CORRELATION} bytes"
        if refusal is not None:
            log.info("answered on %s only: the request's response topic %r is %s", self.topics.response(command),
                     incoming.response_topic[:80], refusal)
            return
        props = Properties(PacketTypes.PUBLISH)
        if incoming.correlation is not None:
            props.CorrelationData = incoming.correlation
        try:
            self.publish(incoming.response_topic, payload, properties=props)
        except (ValueError, TypeError) as exc:  # paho's own checks: still nothing may stop the dispatcher
            log.warning("could not answer on response topic %r: %s", incoming.response_topic[:80], exc)

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
        for topic, _ in self._watched:  # v5: not our own publications (upload statuses share the chunks' level)
            if self.v5:
                client.subscribe(topic, options=SubscribeOptions(qos=1, noLocal=True))
            else:
                client.subscribe(topic, qos=1)
        with self._lock:
            for topic, payload in self._retained.items():
                client.publish(topic, payload, qos=1, retain=True)
            self.connected.set()
        self._connected_at = time.monotonic()
        notice, self._takeover_notice = self._takeover_notice, None
        if notice is not None and self._on_takeover is not None:
            self._on_takeover(notice)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags, reason: ReasonCode,
                       properties: Properties | None) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        if self._stopping:
            log.info("disconnected from MQTT broker (%s)", reason)
            return
        uptime = time.monotonic() - self._connected_at
        if reason.value == SESSION_TAKEN_OVER or (was_connected and uptime < SHORT_LIVED_S):
            self._short_lived(reason, uptime)
            return
        if self._drops:
            self._drops = 0
            self._normal_backoff()
        log.warning("disconnected from MQTT broker (%s); reconnecting with backoff", reason)

    def _short_lived(self, reason: ReasonCode, uptime: float) -> None:
        """Another client connected with our client id (a clone with the same device_id, or someone using it):
        the broker drops us (v5 reason 142 on brokers that send it; mosquitto 2.0.11 just closes the socket
        right after the other connects). Say so clearly and back off exponentially instead of knocking each
        other off forever."""
        self._drops += 1
        taken = reason.value == SESSION_TAKEN_OVER
        if not taken and self._drops < 2:
            self._normal_backoff()
            log.warning("disconnected from MQTT broker %.1f s after connecting (%s); reconnecting with backoff",
                        uptime, reason)
            return
        delay = min(self.cfg.takeover_backoff_max_s, 2.0 ** (self._drops - 1))
        self.client.reconnect_delay_set(min_delay=max(1, round(delay)),
                                        max_delay=max(1, round(delay), round(self.cfg.reconnect_max_s)))
        cause = ("MQTT session taken over" if taken else
                 f"MQTT connection dropped {uptime:.1f} s after connecting, {self._drops} times in a row: "
                 "probably taken over")
        message = (f"{cause} by another client using this daemon's client id '{self.client_id}' (a second box "
                   f"with device_id '{self.cfg.device_id}', or a client using that id); reconnecting in {delay:.0f} s")
        log.error("%s", message)
        self._takeover_notice = message

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        response_topic = getattr(props, "ResponseTopic", None) if props is not None else None
        correlation = getattr(props, "CorrelationData", None) if props is not None else None
        incoming = Incoming(msg.topic, bytes(msg.payload), bool(msg.retain), response_topic, correlation)
        for topic, on_message in self._watched:
            if mqtt.topic_matches_sub(topic, msg.topic):
                on_message(incoming)
                return
        self._on_request(incoming)
