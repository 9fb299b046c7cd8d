"""A small synchronous MQTT client for the daemon's API: used by attendancectl, the demo and the tests."""

from __future__ import annotations

import json
import queue
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .bridge import HUB
from .link import disable_nagle
from .topics import Topics


class ApiError(Exception):
    def __init__(self, response: dict[str, Any]) -> None:
        super().__init__(f"{response.get('code')} {response.get('error')}")
        self.response = response


class DeviceUnavailable(Exception):
    """The device's retained availability is `offline`, or there is none (no daemon with that id here)."""


class ApiClient:
    """Requests are matched to responses by a fresh `transaction` id. Only the latest message of each topic
    under R is kept (callers wait on retained state, progress and results); `received` is called for every
    message, a hook for callers that want more (the tests keep a log with it)."""

    def __init__(self, host: str, port: int, device: str, base: str = "attendance", username: str | None = None,
                 password: str | None = None, client_id: str | None = None, protocol: str = "5",
                 tls: bool = False, cafile: str | None = None, certfile: str | None = None,
                 keyfile: str | None = None, insecure: bool = False, leaves: tuple[str, ...] = ("#",)) -> None:
        self.topics = Topics(base, device)
        self._leaves = leaves  # what to subscribe to under R; the hub's ctl takes only its availability and answers
        self._lock = threading.Condition()
        self.latest: dict[str, bytes] = {}
        self._responses: dict[str, queue.Queue[dict[str, Any]]] = {}
        self._subscribed = threading.Event()
        self._refused: str | None = None
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"ctl-{uuid.uuid4().hex[:12]}",
                                  protocol=mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311)
        if username:
            self.client.username_pw_set(username, password)
        if tls or cafile or certfile or insecure:
            self.client.tls_set(ca_certs=cafile, certfile=certfile, keyfile=keyfile,
                                cert_reqs=ssl.CERT_NONE if insecure else ssl.CERT_REQUIRED)
            self.client.tls_insecure_set(insecure)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            self.close()
            raise TimeoutError(f"no subscription acknowledged by the broker at {host}:{port}")
        if self._refused:
            self.close()
            raise ConnectionRefusedError(f"the broker at {host}:{port} refused the connection: {self._refused}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, *_: Any) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            self._subscribed.set()
            client.disconnect()
            return
        disable_nagle(client)
        client.subscribe([(f"{self.topics.root}/{leaf}", 1) for leaf in self._leaves])

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        leaf = msg.topic[len(self.topics.root) + 1:]
        with self._lock:
            self.latest[leaf] = bytes(msg.payload)
            self._lock.notify_all()
        self.received(leaf, bytes(msg.payload), bool(msg.retain))
        if leaf.startswith("response/"):
            try:
                resp = json.loads(msg.payload)
            except ValueError:
                return
            q = self._responses.get(str(resp.get("transaction")))
            if q is not None:
                q.put(resp)

    def received(self, leaf: str, payload: bytes, retain: bool) -> None:
        """Called on paho's thread for every message under R (after `latest` is updated); nothing by default."""

    def require_online(self, wait_s: float = 2.0) -> None:
        """Raises DeviceUnavailable unless the device's retained availability (which arrives right after the
        subscription) is `online` within `wait_s`."""
        device = self.topics.device
        hub = device == HUB
        try:
            self.wait_for("availability", lambda v: True, timeout=wait_s)
        except TimeoutError:
            if hub:
                raise DeviceUnavailable(f"the hub is unknown on this broker: no availability message under "
                                        f"{self.topics.root}/ (wrong broker or --base-topic, or attendance-hub "
                                        "never connected here)") from None
            raise DeviceUnavailable(f"device '{device}' is unknown on this broker: no availability message "
                                    f"under {self.topics.root}/ (wrong --device or --base-topic, or the daemon "
                                    "never connected here)") from None
        state = self.latest["availability"].decode(errors="replace")
        if state != "online":
            raise DeviceUnavailable(f"the hub is {state[:40]}: attendance-hub is not running or lost its broker "
                                    "connection" if hub else f"device '{device}' is {state[:40]}: its daemon is "
                                    "not running or lost its broker connection")

    def request(self, command: str, payload: dict[str, Any] | None = None, timeout: float = 30.0,
                check: bool = True) -> dict[str, Any]:
        """Sends one request and returns its response (raises ApiError on an error status if `check`)."""
        transaction = uuid.uuid4().hex
        q: queue.Queue[dict[str, Any]] = queue.Queue()
        self._responses[transaction] = q
        try:
            body = {**(payload or {}), "transaction": transaction}
            self.client.publish(self.topics.request(command), json.dumps(body), qos=1)
            try:
                resp = q.get(timeout=timeout)
            except queue.Empty as exc:
                raise TimeoutError(f"no response to '{command}' within {timeout:.0f}s: is the daemon running?") \
                    from exc
        finally:
            self._responses.pop(transaction, None)
        if check and resp.get("status") != "ok":
            raise ApiError(resp)
        return resp

    def json(self, leaf: str) -> Any:
        with self._lock:
            raw = self.latest.get(leaf)
        return None if raw is None else json.loads(raw)

    def wait_for(self, leaf: str, predicate: Callable[[Any], bool], timeout: float = 60.0) -> Any:
        """Waits until the latest JSON message on `R/<leaf>` satisfies the predicate; returns it."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                raw = self.latest.get(leaf)
                if raw is not None:
                    value = json.loads(raw) if leaf != "availability" else raw.decode()
                    if predicate(value):
                        return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{leaf}: condition not met within {timeout:.0f}s (last: {raw!r:.300})")
                self._lock.wait(left)
