"""One roster for the fleet: students are enrolled at the hub (the box's Enroller and its rules, on the hub's
PostgreSQL store), encoded once, and each section is published retained as a sealed, versioned message that
the boxes teaching it apply (see roster_payload.py and roster_sync.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..common.timeutil import now_iso
from ..contract.roster_message import seal
from ..roster.enrollment import Enroller, EnrollOutcome
from .store import HubStore

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], None]  # (topic, payload): retained, QoS 1


class RosterPublisher:
    def __init__(self, store: HubStore, base: str, key: bytes | None, publish: Publish,
                 duplicate_warn_distance: float = 0.4, max_pixels: int = 40_000_000) -> None:
        self.store, self.base, self.key, self._publish = store, base, key, publish
        self._enroller: Enroller | None = None  # dlib's models load on the first enrollment, not at start
        self._dup, self._max_pixels = duplicate_warn_distance, max_pixels

    def topic(self, section: str) -> str:
        from ..mqtt.bridge import roster_topic

        return roster_topic(self.base, section)

    def enroll(self, section: str, student_id: str, name: str, images: list[Path]) -> EnrollOutcome:
        if self._enroller is None:
            self._enroller = Enroller(self.store, None, self._dup, self._max_pixels)
        return self._enroller.enroll(section, student_id, name, images)

    def retain(self, topic: str, payload: bytes) -> None:
        """Publishes retained (QoS 1) on the central broker: the rosters, and the copies a forget replaces."""
        self._publish(topic, payload)

    def publish(self, section: str) -> dict[str, Any]:
        """A new version of the section's roster, sealed and published retained; returns {version, hash}."""
        with self.store.roster_publication(section):
            version = self.store.next_roster_version(section)
            students = self.store.roster_content(section)
            body: dict[str, Any] = {"section": section, "version": version, "published_at": now_iso(),
                                    "students": students}
            sealed = seal(body, self.key)
            self._publish(self.topic(section),
                          json.dumps(sealed, separators=(",", ":"), ensure_ascii=False).encode())
            self.store.record_roster(section, version, sealed["hash"])
        log.info("roster %s: version %d published (%d students)", section, version, len(students))
        return {"version": version, "hash": sealed["hash"]}
