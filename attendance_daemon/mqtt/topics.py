"""Topic names of the contract: everything lives under R = <base_topic>/<device_id>."""

from __future__ import annotations

from dataclasses import dataclass

RETAINED = ("availability", "info", "state", "progress", "results", "snapshot", "attendance")
OWN_LEAVES = (*RETAINED, "events", "record", "request", "response", "upload", "ha")
MAX_REPLY_TOPIC = 256
MAX_CORRELATION = 1024


@dataclass(frozen=True)
class Topics:
    base: str
    device: str

    @property
    def root(self) -> str:
        return f"{self.base}/{self.device}"

    def of(self, leaf: str) -> str:
        """`R/<leaf>` for availability, info, state, progress, results, snapshot, attendance, events, record."""
        return f"{self.root}/{leaf}"

    @property
    def requests(self) -> str:
        return f"{self.root}/request/+"

    @property
    def upload_chunks(self) -> str:
        """`R/upload/<upload_id>/<offset>`: raw chunk bytes (and `R/upload/<upload_id>/status`, the daemon's)."""
        return f"{self.root}/upload/+/+"

    def upload_status(self, upload_id: str) -> str:
        return f"{self.root}/upload/{upload_id}/status"

    @property
    def ha_state(self) -> str:
        """`R/ha/state`: the retained choices of Home Assistant's controls (daemon/ha_controls.py)."""
        return f"{self.root}/ha/state"

    @property
    def ha_commands(self) -> str:
        """`R/ha/<control>/set`: a new choice for one of Home Assistant's controls."""
        return f"{self.root}/ha/+/set"

    def ha_set(self, control: str) -> str:
        return f"{self.root}/ha/{control}/set"

    def ha_control_of(self, topic: str) -> str | None:
        prefix = f"{self.root}/ha/"
        if not topic.startswith(prefix) or not topic.endswith("/set"):
            return None
        control = topic[len(prefix):-len("/set")]
        return None if not control or "/" in control else control

    def request(self, command: str) -> str:
        return f"{self.root}/request/{command}"

    def response(self, command: str) -> str:
        return f"{self.root}/response/{command}"

    def command_of(self, topic: str) -> str | None:
        prefix = f"{self.root}/request/"
        return topic[len(prefix):] if topic.startswith(prefix) else None

    def reply_refusal(self, topic: str, prefixes: list[str] | None) -> str | None:
        """Why a v5 Response Topic must not be used, or None when it may: a plain topic name (no wildcards,
        NUL or empty levels at the end, at most MAX_REPLY_TOPIC characters) under an allowed prefix (default
        `R/`) and never one of the daemon's own topics (its retained truth, events, requests or responses)."""
        if not topic or len(topic) > MAX_REPLY_TOPIC:
            return f"empty or longer than {MAX_REPLY_TOPIC} characters"
        if any(c in topic for c in "+#\x00"):
            return "contains a wildcard or NUL"
        allowed = prefixes if prefixes is not None else [f"{self.root}/"]
        if not any(topic.startswith(p) for p in allowed):
            return f"outside the allowed prefixes ({', '.join(allowed)})"
        root = f"{self.root}/"
        if topic.startswith(root) and topic[len(root):].split("/", 1)[0] in OWN_LEAVES:
            return "one of the daemon's own topics"
        return None
