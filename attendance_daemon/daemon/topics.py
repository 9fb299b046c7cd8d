"""Topic names of the contract: everything lives under R = <base_topic>/<device_id>."""

from __future__ import annotations

from dataclasses import dataclass

RETAINED = ("availability", "info", "state", "progress", "results", "snapshot")


@dataclass(frozen=True)
class Topics:
    base: str
    device: str

    @property
    def root(self) -> str:
        return f"{self.base}/{self.device}"

    def of(self, leaf: str) -> str:
        """`R/<leaf>` for availability, info, state, progress, results, snapshot, events."""
        return f"{self.root}/{leaf}"

    @property
    def requests(self) -> str:
        return f"{self.root}/request/+"

    def request(self, command: str) -> str:
        return f"{self.root}/request/{command}"

    def response(self, command: str) -> str:
        return f"{self.root}/response/{command}"

    def command_of(self, topic: str) -> str | None:
        prefix = f"{self.root}/request/"
        return topic[len(prefix):] if topic.startswith(prefix) else None
