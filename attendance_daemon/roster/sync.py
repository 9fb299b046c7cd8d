"""A box's side of the hub's rosters: check each message (hash, signature or hmac, version), stage it, and apply
it in one SQLite transaction only while no session runs (a running session keeps the roster it started with; the staged
one is applied after it ends). Pure of MQTT: the daemon feeds it payloads and asks it when idle."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ..contract.roster_message import RosterMessage, open_roster
from ..contract.roster_signing import TrustedKeys
from ..store import Store

log = logging.getLogger(__name__)


class RosterSync:
    def __init__(self, store: Store, sections: list[str], key: bytes | None,
                 sweep: Callable[[list[int]], int] | None = None, trusted: TrustedKeys | None = None) -> None:
        self.store, self.sections, self.key = store, set(sections), key
        self.trusted = dict(trusted or {})  # the hub's public keys: when any, only its signature is accepted
        # deletes the doomed files (ids) a roster's transaction recorded, the stored photos of the encodings it
        # replaced, and says how many (privacy/sweep.py; the daemon's start-up sweep gets any a crash left)
        self.sweep = sweep
        self._staged: dict[str, RosterMessage] = {}
        self._refused: dict[str, str] = {}  # section -> why its last offered roster was refused
        self._lock = threading.Lock()

    def offer(self, section: str, payload: bytes) -> str | None:
        """Checks and stages a roster; returns why it is refused, or None. An empty payload (a deleted retained
        message) is ignored."""
        if not payload:
            return None
        try:
            message = open_roster(payload, self.key, self.trusted)
            if message.section != section:
                raise ValueError(f"section '{message.section}' published on the topic of '{section}'")
            if section not in self.sections:
                raise ValueError("not one of this box's roster.sections")
            applied = self.store.roster_versions().get(section)
            if applied is not None and message.version <= applied[0]:
                if message.version == applied[0] and message.hash == applied[1]:
                    return None  # the retained copy of what is applied: nothing to do
                raise ValueError(f"version {message.version} is not newer than the applied {applied[0]}")
        except ValueError as exc:
            return self.refuse(section, str(exc))
        with self._lock:
            staged = self._staged.get(section)
            if staged is None or message.version > staged.version:
                self._staged[section] = message
            self._refused.pop(section, None)
        return None

    def refuse(self, section: str, why: str) -> str:
        """Records why a roster offered for `section` is refused (Info problems until a good one comes)."""
        reason = f"roster {section}: refused: {why}"
        with self._lock:
            self._refused[section] = reason
        log.error("%s", reason)
        return reason

    def pending(self) -> bool:
        with self._lock:
            return bool(self._staged)

    def apply_staged(self) -> list[str]:
        """Applies every staged roster (call only while idle); returns `section vN` of those applied. One the
        database refuses (disk full) stays staged, for the next call."""
        with self._lock:
            staged = dict(self._staged)
        done = []
        for section, m in staged.items():
            students = [(s.student_id, s.name, list(s.encodings)) for s in m.students]
            replaced = self.store.replace_roster(section, m.version, m.hash, students)
            with self._lock:
                if self._staged.get(section) is m:  # (a newer one staged meanwhile stays)
                    del self._staged[section]
            if replaced is not None:
                if self.sweep is not None and replaced:
                    removed = self.sweep(replaced)
                    log.info("roster %s: %d stored photos of replaced encodings deleted", section, removed)
                log.info("roster %s: version %d applied (%d students)", section, m.version, len(students))
                done.append(f"{section} v{m.version}")
        return done

    def status(self) -> dict[str, Any]:
        """For Info.rosters: section -> {version, hash} applied (hub-managed sections only), plus `pending`: the
        version staged until the running session ends."""
        out: dict[str, Any] = {s: {"version": v, "hash": h} for s, (v, h) in self.store.roster_versions().items()
                               if s in self.sections}
        with self._lock:
            for section, m in self._staged.items():
                out.setdefault(section, {"version": None, "hash": None})["pending"] = m.version
        return out

    def problems(self) -> list[str]:
        with self._lock:
            return sorted(self._refused.values())
