"""Cheap periodic checks, off the main loop: is our database still the file at its path, did another process
(a CLI `enroll-bulk`) change the roster that the retained info shows, which hub rosters arrived and may be
applied now, which evidence files have expired (`retention.days`, at start-up and then daily), which doomed
files of erasures are left to delete (every minute), and do Home Assistant's selects still offer the box's
sections and videos."""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable

from ..common.errors import AttendanceError
from ..config import Config
from ..contract.roster_message import MAX_ROSTER_BYTES
from ..mqtt.link import Incoming
from ..privacy import retention
from ..privacy.retention import RetentionTimer
from ..privacy.sweep import sweep
from ..roster.sync import RosterSync
from ..store import Store
from .publisher import Publisher

log = logging.getLogger(__name__)

HOUSEKEEPING_S = 2.0  # how often the database file and the roster are checked (off the main loop)
SWEEP_S = 60.0  # doomed files older than this are swept by the housekeeper (younger ones are their erasure's)
ROSTER_INBOX = 32  # hub roster messages waiting for the housekeeper (beyond: dropped, logged)


class DatabaseWatch:
    """Whether the database is still the file at its path; once it is not, nothing recorded survives a restart."""

    def __init__(self, store: Store, publisher: Publisher) -> None:
        self._store, self._publisher = store, publisher
        self.problem: str | None = None

    def problems(self) -> list[str]:
        return [self.problem] if self.problem else []

    def check(self) -> bool:
        """True when the problem is new (the caller republishes the info)."""
        problem = self._store.identity_problem()
        if problem is None or problem == self.problem:
            return False
        self.problem = problem
        log.error("%s: nothing recorded from now on survives a restart; stop the daemon and restore the "
                  "database from a backup (docs/install.md, Backup and restore)", problem)
        self._publisher.event("error", error=f"database: {problem}")
        return True


class RosterInbox:
    """Hub rosters ([roster] sections): queued by paho's thread, checked and applied by the housekeeper, and
    applied only when no session runs or starts."""

    def __init__(self, rosters: RosterSync, publisher: Publisher, when_idle: Callable[[Callable[[], bool]], bool],
                 ) -> None:
        self.rosters, self._publisher, self._when_idle = rosters, publisher, when_idle
        self._inbox: queue.Queue[Incoming] = queue.Queue(ROSTER_INBOX)

    def arrived(self, incoming: Incoming) -> None:
        """paho's thread: only enqueue (bounded); the housekeeper checks and applies."""
        if len(incoming.payload) > MAX_ROSTER_BYTES:  # refused unread and not queued, but as visibly as the rest
            reason = self.rosters.refuse(incoming.topic.rsplit("/", 1)[-1], f"roster message of "
                                         f"{len(incoming.payload)} bytes; at most {MAX_ROSTER_BYTES}")
            self._publisher.event("error", error=reason)
            incoming = Incoming(incoming.topic, b"", incoming.retain, None, None)  # wakes the Info republish
        try:
            self._inbox.put_nowait(incoming)
        except queue.Full:
            log.error("roster message on %s dropped: %d are waiting", incoming.topic, ROSTER_INBOX)

    def sync(self) -> bool:
        """Checks arrived rosters (a refused one is an `error` event and an Info problem), then applies the
        staged ones when no session runs. True when the info changed."""
        changed = False
        while True:
            try:
                incoming = self._inbox.get_nowait()
            except queue.Empty:
                break
            reason = self.rosters.offer(incoming.topic.rsplit("/", 1)[-1], incoming.payload)
            if reason:
                self._publisher.event("error", error=reason)
            changed = True  # staged (Info shows `pending`) or refused (Info shows the problem)
        # while a start is in progress (or a session runs) the staged rosters wait for a later tick
        if self.rosters.pending() and self._when_idle(lambda: bool(self.rosters.apply_staged())):
            changed = True
        return changed


class Housekeeper:
    def __init__(self, cfg: Config, store: Store, database: DatabaseWatch, rosters: RosterInbox | None,
                 publish_info: Callable[[], None], shutdown: threading.Event,
                 refresh_options: Callable[[], None] = lambda: None) -> None:
        self._cfg, self._store, self._database, self._rosters = cfg, store, database, rosters
        self._publish_info, self._shutdown = publish_info, shutdown
        # Home Assistant's selects offer the sections and the media library: compared every tick, since the
        # data_version only moves for other processes' writes, not the daemon's own (enroll, uploads, rosters)
        self._refresh_options = refresh_options
        self.thread = threading.Thread(target=self._run, name="housekeeper", daemon=True)

    def _run(self) -> None:
        version = None
        retention_due = RetentionTimer()
        sweep_due = RetentionTimer(SWEEP_S)
        while not self._shutdown.wait(HOUSEKEEPING_S):
            try:
                if self._database.check():
                    self._publish_info()
                if self._database.problem:
                    continue
                if retention_due.due(time.monotonic()):  # at start-up, then daily
                    retention.clean(self._cfg, self._store)
                if sweep_due.due(time.monotonic()):  # doomed files an erasure's own sweep could not delete
                    sweep(self._cfg, self._store, min_age_s=SWEEP_S)
                if self._rosters is not None and self._rosters.sync():
                    self._publish_info()
                now = self._store.data_version()
                if now != version:
                    version = now
                    self._publish_info()
                self._refresh_options()
            except (AttendanceError, OSError, sqlite3.Error) as exc:
                log.error("housekeeping: %s: %s", type(exc).__name__, exc)
            except Exception:  # a bug or a hostile roster must not end the thread (the watchdog would restart us
                log.exception("housekeeping failed; carrying on")  # into the same retained message)
