"""What the hub does with each box message on the central broker: one handler per leaf, strict about shape
and size, raising only StoreUnavailable (the database is away: the message is kept and tried again), so a
hostile or broken box cannot stop the hub. Pure of MQTT: the service feeds it."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from ..mqtt.bridge import BRIDGE_LEAF, HUB
from .connection import StoreUnavailable
from .record import ResultsIn
from .store import HubStore

log = logging.getLogger(__name__)

MAX_BOX_MESSAGE = 4 * 1024 * 1024  # results of a large room are ~100 KB; anything beyond this is ignored
DEVICE = re.compile(r"[a-z0-9_-]{1,64}")
LEAVES = ("availability", BRIDGE_LEAF, "info", "state", "results", "record", "events", "response/forget_student")


class Ingest:
    def __init__(self, store: HubStore, base: str, on_online: Callable[[str], None] | None = None) -> None:
        self.store, self.base = store, base
        self.on_online = on_online  # (device id): the box is (back) online or idle; re-send what it has not done
        self.counts: dict[str, int] = {}
        self.refused: dict[str, dict[str, int]] = {}  # device -> reason -> messages not stored since the start
        self._lock = threading.Lock()

    def subscriptions(self) -> list[str]:
        return [f"{self.base}/+/{leaf}" for leaf in LEAVES]

    def screen(self, topic: str, size: int) -> tuple[str | None, str | None]:
        """(device, refusal) of a message before it is queued: what is refused here needs no database."""
        prefix = f"{self.base}/"
        if not topic.startswith(prefix):
            return None, "ignored:topic"
        device, _, leaf = topic[len(prefix):].partition("/")
        if device == HUB or not DEVICE.fullmatch(device) or leaf not in LEAVES:
            return None, "ignored:topic"
        if size > MAX_BOX_MESSAGE:
            return device, "ignored:too-large"
        return device, None

    def count(self, device: str | None, outcome: str) -> None:
        """Counts an outcome; a message not stored (`ignored:<why>`, `busy`, `failed:<error>`) also under its box."""
        with self._lock:
            self.counts[outcome] = self.counts.get(outcome, 0) + 1
            if device is not None and outcome.partition(":")[0] in ("ignored", "busy", "failed") \
                    and outcome not in ("ignored:empty", "ignored:results-running"):
                reason = outcome.partition(":")[2] or outcome
                per = self.refused.setdefault(device, {})
                per[reason] = per.get(reason, 0) + 1

    def refusals(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {d: dict(r) for d, r in self.refused.items()}

    def handle(self, topic: str, payload: bytes) -> str:
        """The outcome (for logs, counters and tests): e.g. `results:inserted`, `ignored:<why>`. Raises
        StoreUnavailable when the database is away (transient: the caller keeps the message and tries again);
        any other failure (a bug, a value the database refuses) is logged and counted: it would fail again."""
        device, refusal = self.screen(topic, len(payload))
        try:
            outcome = refusal or self._handle(topic, payload)
        except StoreUnavailable:
            raise
        except Exception as exc:
            log.exception("ingest of %.120s failed", topic)
            outcome = f"failed:{type(exc).__name__}"
        self.count(device, outcome)
        return outcome

    def _handle(self, topic: str, payload: bytes) -> str:
        device, _, leaf = topic[len(f"{self.base}/"):].partition("/")
        if leaf == "availability":
            text = payload.decode("utf-8", "replace")[:16]
            if text not in ("online", "offline"):
                return "ignored:availability"
            self.store.device(device, availability=text)
            if text == "online" and self.on_online is not None:
                self.on_online(device)
            return f"availability:{text}"
        if leaf == BRIDGE_LEAF:  # mosquitto's bridge notification: "1" connected, "0" not (its will)
            text = payload.decode("utf-8", "replace")[:4]
            if text not in ("0", "1"):
                return "ignored:bridge"
            self.store.device(device, bridge="up" if text == "1" else "down")
            return f"bridge:{text}"
        if not payload:
            return "ignored:empty"  # a deleted retained message
        obj = _json_object(payload)
        if obj is None:
            return "ignored:not-json"
        if leaf in ("info", "state"):
            self.store.device(device, **{leaf: obj})
            if leaf == "state" and obj.get("busy") is False and self.on_online is not None:
                self.on_online(device)  # idle again: a forget it refused (409, session running) goes out again
            return leaf
        if leaf in ("results", "record"):  # record: an older session's record changed (a correction)
            try:
                results = ResultsIn.model_validate(obj)
            except ValidationError as exc:
                log.warning("results of %s refused: %s", device, str(exc).splitlines()[0][:200])
                return "ignored:results"
            if results.device_id not in (None, device):
                return "ignored:results-device"
            if results.status in ("running", "paused"):
                return "ignored:results-running"
            return "results:" + self.store.store_results(device, obj)
        if leaf == "events":
            if not isinstance(obj.get("type"), str):
                return "ignored:event"
            return "event:" + ("stored" if self.store.add_event(device, obj) else "duplicate")
        # response/forget_student: the box's answer to the hub's forget request
        transaction = obj.get("transaction")
        if isinstance(transaction, str) and transaction.startswith("hub-forget-"):
            answer = {k: obj.get(k) for k in ("status", "code", "data", "error")}
            return "forget:" + ("answered" if self.store.record_forget_answer(device, transaction, answer)
                                else "unknown")
        return "ignored:response"


def _json_object(payload: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # '[[[[…' is junk too, not a failure
        return None
    return obj if isinstance(obj, dict) else None
