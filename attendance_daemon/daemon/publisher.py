"""What the daemon says on MQTT of its own accord: events, and the retained results and live roster, encoded in
one place. The retained results are chosen and published under one lock, so a session ending during an erasure's
republish cannot be overtaken by an older session's results."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from paho.mqtt.client import MQTTMessageInfo

from ..attendance.live_roster import live_roster
from ..attendance.notices import absences
from ..attendance.results import build_results
from ..common.timeutil import now_iso
from ..config import Config
from ..contract import api
from ..mqtt.link import MqttLink
from ..mqtt.topics import Topics
from ..store import AttendanceRow, SessionRow, Store, StudentRow

TEXTS = ("error", "reason")  # the free texts of events


def encode(payload: Any) -> bytes:
    if isinstance(payload, api.Payload):
        return payload.model_dump_json().encode()
    return json.dumps(payload, separators=(",", ":")).encode()


class Publisher:
    def __init__(self, link: MqttLink, topics: Topics, cfg: Config, store: Store) -> None:
        self.link, self.topics, self._cfg, self._store = link, topics, cfg, store
        self.device_id = cfg.mqtt.device_id
        self._results_lock = threading.RLock()  # the retained results: the worker's and an erasure's, in order

    def retained(self, leaf: str, payload: Any) -> None:
        self.link.set_retained(leaf, payload if isinstance(payload, bytes) else encode(payload))

    def event(self, kind: str, **fields: object) -> MQTTMessageInfo:
        """Events leave the box (a bridge takes them to the central broker): their texts are filtered as a
        Response's `error` is (no path of the box, no credentials, at most 300 characters)."""
        for key in TEXTS:
            text = fields.get(key)
            if isinstance(text, str):
                fields[key] = self._cfg.paths.public_text(text)
        return self.link.publish(self.topics.of("events"), encode({"type": kind, "at": now_iso(), **fields,
                                                                    "device_id": self.device_id}))

    def results(self, session_id: str) -> api.Results:
        with self._results_lock:
            results = build_results(self._store, self._store.get_session(session_id), self._cfg)
            self.retained("results", results)
        return results

    def record(self, session_id: str, timeout: float) -> tuple[api.Results, bool]:
        """A record that changed (a correction, finalised, reopened): retained on R/results when it is the newest
        finished session's, else on R/record, not retained (the hub and open dashboards take it; R/results keeps
        meaning the last session, which Home Assistant's sensors show). True once the broker acknowledged it."""
        with self._results_lock:
            results = build_results(self._store, self._store.get_session(session_id), self._cfg)
            newest = self._store.list_sessions(limit=2)
            finished = [s for s in newest if s.status not in ("running", "paused")]
            if finished and finished[0].id == session_id:
                info = self.link.set_retained_topic(self.topics.of("results"), encode(results))
                if newest[0].id == session_id:  # no session runs since: the live roster shows this record
                    self.final_roster(newest[0])
            else:
                info = self.link.publish(self.topics.of("record"), encode(results))
        return results, self.link.acknowledged(info, timeout)

    def absences(self, results: api.Results, timeout: float) -> bool:
        """The `absences` event of a record that became final; True once the broker acknowledged it."""
        n = absences(results, self._cfg)
        info = self.event("absences", section=n.section, session_id=n.session_id, session=n.session, date=n.date,
                          finalized_at=n.finalized_at, absent=[s.model_dump() for s in n.absent],
                          late=[s.model_dump() for s in n.late], absent_count=n.absent_count,
                          late_count=n.late_count, subject=n.subject, text=n.text)
        return self.link.acknowledged(info, timeout)

    def roster(self, session: SessionRow, roster: list[StudentRow], rows: list[AttendanceRow], final: bool,
               statuses: dict[str, api.AttendanceStatus] | None = None) -> None:
        self.retained("attendance", live_roster(self.device_id, session, roster, rows,
                                                self._cfg.recognition.min_presence_s, final, now_iso(), statuses))

    def final_roster(self, row: SessionRow) -> None:
        """The live roster of a session that ended, rebuilt from the store (`final: true`), with each student's
        status in its record."""
        kept = self._store.frozen_roster(row)  # a final record's, else the section's as it is
        roster = [StudentRow(0, row.section, sid, name, 0) for sid, name in kept.items()] if kept is not None else (
            self._store.students(row.section) if self._store.section_exists(row.section) else [])
        results = build_results(self._store, row, self._cfg)
        statuses = {p.student_id: p.status for p in results.present} | {a.student_id: a.status for a in results.absent}
        self.roster(row, roster, self._store.attendance(row.id), final=True, statuses=statuses)

    def after_erasure(self, idle: Callable[[], bool]) -> None:
        """After `forget_student` or `delete_session`: the retained results show the newest finished session
        as it now is (or nothing); when idle the live roster is rebuilt from the store and the live snapshot,
        which may show what was erased, is cleared (the kept frame stays fetchable with `snapshot`)."""
        with self._results_lock:  # chosen and published in one step: a session ending meanwhile is not overtaken
            finished = [s for s in self._store.list_sessions(limit=2) if s.status not in ("running", "paused")]
            if finished:
                self.results(finished[0].id)
            else:
                self.retained("results", b"")
        if idle():
            self.retained("snapshot", b"")
            if finished:
                self.final_roster(finished[0])
            else:
                self.retained("attendance", b"")
