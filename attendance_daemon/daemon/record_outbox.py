"""The record outbox: hands each changed record (its Results) and each absence notice to the broker, and marks it
sent only once the broker acknowledged it. A change committed just before a crash, a power cut or during a broker
outage is sent when the daemon and the broker are back; a record sent twice is harmless (the hub keeps one copy
per content, the newest revision wins). A burst of corrections to one session is sent as its newest revision.
Also finalises the drafts `[attendance] finalize_after_h` has passed."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

from ..common.errors import AttendanceError
from ..common.timeutil import iso
from ..config import Config
from ..store import Store
from .publisher import Publisher

log = logging.getLogger(__name__)
ACK_TIMEOUT_S = 5.0
RETRY_S = 10.0  # while the broker is away, or a message was not acknowledged
FINALIZE_CHECK_S = 60.0


class RecordOutbox:
    def __init__(self, cfg: Config, store: Store, publisher: Publisher, connected: threading.Event,
                 stop: threading.Event) -> None:
        self._cfg, self._store, self._publisher = cfg, store, publisher
        self._connected, self._stop = connected, stop
        self._wake = threading.Event()
        self._wake.set()  # at start: whatever a crash left unsent
        self._next_finalize = 0.0
        self.thread = threading.Thread(target=self._run, name="record-outbox", daemon=True)

    def changed(self) -> None:
        """A record changed (committed): send it soon. Never blocks (the dispatcher calls it)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(RETRY_S)  # what is left unsent is tried again after RETRY_S
            self._wake.clear()
            if self._stop.is_set():  # what is still unsent is sent at the next start
                break
            try:
                self._finalize_due()
                if self._connected.is_set():
                    self.flush()
            except Exception:  # a bug or a database problem: logged, tried again on the next round
                log.exception("could not send changed records")

    def flush(self) -> bool:
        """Sends everything pending; True when the broker took all of it. One session that cannot be sent (removed
        meanwhile, a bug) does not hold up the others."""
        complete = True
        for session_id, revision, notice in self._store.outbox():
            if self._stop.is_set():
                return False
            try:
                complete = self._send(session_id, revision, notice) and complete
            except AttendanceError as exc:  # deleted meanwhile (404): its rows, and so its outbox entry, are gone
                log.info("record of %s not sent: %s", session_id, exc)
            except Exception:
                log.exception("could not send the record of %s", session_id)
                complete = False
        return complete

    def _send(self, session_id: str, revision: int, notice: int) -> bool:
        results, taken = self._publisher.record(session_id, ACK_TIMEOUT_S)
        if not taken:
            return False
        self._store.mark_published(session_id, revision)
        if not notice or results.record != "final":
            return True
        if not self._publisher.absences(results, ACK_TIMEOUT_S):
            return False
        self._store.mark_noticed(session_id, notice)
        return True

    def _finalize_due(self) -> None:
        hours = self._cfg.attendance.finalize_after_h
        now = datetime.now(UTC)
        if hours <= 0 or now.timestamp() < self._next_finalize:
            return
        self._next_finalize = now.timestamp() + FINALIZE_CHECK_S
        for session_id in self._store.due_for_finalize(iso(now - timedelta(hours=hours))):
            try:
                self._store.finalize(session_id, f"{hours:g} h after the session ended", "auto", None)
            except AttendanceError as exc:  # finalised meanwhile, or deleted: nothing to do
                log.info("did not finalise %s: %s", session_id, exc)
            self._wake.set()
