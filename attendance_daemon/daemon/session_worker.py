"""Sessions for the daemon: start (prepare outside the state lock, commit inside it), pause, resume and stop,
the worker thread that runs one session and publishes its results, and what a crash left running.

The state machine's lock stays private to it: a start opens its source before `begin`, and `_starting`
serialises starts (and keeps a hub roster from being applied between reading the roster and going busy)."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from ..attendance.history_report import low_attendance
from ..attendance.results import build_results
from ..common.errors import AttendanceError, Conflict, StoreError
from ..common.timeutil import iso, now_iso
from ..config import Config
from ..contract import api
from ..recognition.detect import Detector
from ..recognition.encode import FaceEncoder
from ..sessions.cameras import resolve_camera
from ..sessions.planning import SessionPlan, plan_webcam
from ..sessions.runner import SessionControl, SessionHooks, SessionRunner
from ..sessions.state_machine import StateMachine
from ..store import AttendanceRow, SessionRow, Store, StudentRow
from ..timetable.planner import Running
from ..timetable.week import Occurrence
from .publisher import Publisher

log = logging.getLogger(__name__)

WORKER_STALL_S = 60.0
T = TypeVar("T")


class _PublishingHooks(SessionHooks):
    """Session callbacks -> MQTT (worker thread); heartbeats tell the main loop the worker is alive."""

    def __init__(self, worker: SessionWorker) -> None:
        self.w = worker

    def progress(self, progress: api.Progress) -> None:
        self.w.publisher.retained("progress", progress.model_copy(update={"device_id": self.w.publisher.device_id}))

    def event(self, kind: str, **fields: object) -> None:
        self.w.publisher.event(kind, **fields)

    def snapshot(self, jpeg_bytes: bytes) -> None:
        self.w.publisher.retained("snapshot", jpeg_bytes)

    def heartbeat(self) -> None:
        self.w.beat = time.monotonic()

    def attendance(self, session: SessionRow, roster: list[StudentRow], rows: list[AttendanceRow],
                   final: bool) -> None:
        self.w.publisher.roster(session, roster, rows, final)


class SessionWorker:
    def __init__(self, cfg: Config, store: Store, detector: Detector, encoder: FaceEncoder, publisher: Publisher,
                 database_problem: Callable[[], str | None],
                 next_lesson: Callable[[], api.NextLesson | None]) -> None:
        self._cfg, self._store, self._detector, self._encoder = cfg, store, detector, encoder
        self.publisher = publisher
        self._database_problem, self._next_lesson = database_problem, next_lesson
        self.sm = StateMachine(on_change=lambda s: publisher.retained("state", self._with_next(s)),
                               device_id=cfg.mqtt.device_id)
        # Held by a start from reading the roster until the state is busy: a roster is never applied in between.
        self._starting = threading.Lock()
        # (control, worker) of the running session, replaced as a whole (no lock needed to read it)
        self._active: tuple[SessionControl, threading.Thread] | None = None
        self._lesson_sessions: dict[str, str] = {}  # session name -> lesson key, while its session runs
        self.beat = time.monotonic()

    # ---- state -----------------------------------------------------------------------------------------

    def _with_next(self, state: api.State) -> api.State:
        return state.model_copy(update={"next_lesson": self._next_lesson()})

    def state(self) -> api.State:
        return self._with_next(self.sm.state())

    def ensure_idle(self) -> None:
        self.sm.ensure_idle()

    def idle(self) -> bool:
        return self.sm.state().session is None

    def republish(self) -> None:
        self.sm.republish()  # ordered with the transitions' own publishes

    def running_lesson(self) -> Running | None:
        session = self.sm.state().session
        return None if session is None else Running(session.id, self._lesson_sessions.get(session.name))

    def when_idle(self, fn: Callable[[], bool]) -> bool:
        """Runs `fn` only if no session runs and none is starting (else False at once: try at the next tick)."""
        if not self._starting.acquire(blocking=False):
            return False
        try:
            active = self._active
            if self.idle() and (active is None or not active[1].is_alive()):
                return fn()
            return False
        finally:
            self._starting.release()

    # ---- requests (dispatcher or scheduler thread) --------------------------------------------------------

    def start(self, plan: SessionPlan) -> api.State:
        """Prepare without the state lock (free space, roster, open the source with a time-out), then commit
        under it (create the row, begin, start the worker). A refused commit closes the source again."""
        with self._starting:
            self.sm.ensure_idle()  # a start that waited here for another one: 409 now, without opening its source
            return self._start(plan)

    def _start(self, plan: SessionPlan) -> api.State:
        problem = self._database_problem()
        if problem:
            raise StoreError(f"database: {problem}; restore it (docs/install.md, Backup and restore) and restart "
                             "the daemon")
        runner = SessionRunner(self._cfg, self._store, self._detector, self._encoder, plan, SessionControl(),
                               _PublishingHooks(self))

        def commit() -> api.SessionInfo:
            runner.commit()
            row = runner.row
            worker = threading.Thread(target=self._run, args=(runner,), name=f"session-{row.name}")
            self._active = (runner.control, worker)
            self.beat = time.monotonic()
            worker.start()
            return api.SessionInfo(id=row.id, name=row.name, section=row.section, source=row.source,
                                   export=row.export, started_at=row.started_at, started_by=plan.started_by)

        try:
            return self._with_next(self.sm.begin(plan.mode, commit))
        except Conflict:
            runner.discard()  # busy (another start won the race): do not hold the camera or file
            raise

    def start_lesson(self, occ: Occurrence, now: datetime) -> api.State:
        """A webcam session for a lesson: its camera, its section, until its end (the same path as a request)."""
        self.sm.ensure_idle()
        camera = resolve_camera(self._cfg, occ.lesson.camera)
        plan = plan_webcam(self._cfg, self._store, occ.lesson.section, None, False, camera,
                           max(1.0, (occ.end - now).total_seconds()))
        plan.lesson, plan.lesson_start, plan.started_by = occ.key, iso(occ.start), "timetable"
        self._lesson_sessions[plan.name] = occ.key  # before the worker starts (it removes it when it ends)
        try:
            return self.start(plan)
        except BaseException:
            self._lesson_sessions.pop(plan.name, None)
            raise

    def pause(self, session_id: str | None) -> api.State:
        active = self._active
        return self._with_next(self.sm.pause(session_id, then=active[0].pause if active else None))

    def resume(self, session_id: str | None) -> api.State:
        active = self._active
        return self._with_next(self.sm.resume(session_id, then=active[0].resume if active else None))

    def stop(self, session_id: str | None, timeout: float = 30.0) -> api.State:
        """Stops and waits for the worker to store and publish the results, then answers the idle state."""
        active = self._active
        self.sm.check_stop(session_id, then=active[0].stop if active else None)
        if active is not None:
            active[1].join(timeout)
        return self.state()

    def hold_camera(self, name: str, section: str, camera_label: str, started_by: str | None,
                    work: Callable[[SessionControl, Callable[[], None]], T]) -> T:
        """Runs `work(control, heartbeat)` on a thread of its own while the global lock shows it (`webcam`,
        `purpose` `enrollment`): starts meanwhile are 409, pause and stop reach `control`. Blocks until done."""
        control = SessionControl()
        info = api.SessionInfo(id=f"enroll-{uuid.uuid4().hex[:12]}", name=name, section=section,
                               source=f"camera:{camera_label}", export=False, started_at=now_iso(),
                               started_by=started_by, purpose="enrollment")
        outcome: list[T] = []
        failure: list[Exception] = []

        def run() -> None:
            try:
                outcome.append(work(control, self._heartbeat))
            except Exception as exc:  # noqa: BLE001  (re-raised on the caller's thread, which answers with it)
                failure.append(exc)
            finally:
                self.sm.end(info.id)

        thread = threading.Thread(target=run, name=f"enroll-{name}")

        def commit() -> api.SessionInfo:
            self._active = (control, thread)
            self.beat = time.monotonic()
            thread.start()
            return info

        with self._starting:
            self.sm.begin("webcam", commit)
        thread.join()
        if failure:
            raise failure[0]
        return outcome[0]

    def _heartbeat(self) -> None:
        self.beat = time.monotonic()

    # ---- the worker thread -------------------------------------------------------------------------------

    def _run(self, runner: SessionRunner) -> None:
        sid, name = runner.row.id, runner.row.name
        finished: SessionRow | None = None
        try:
            log.info("session %s started: %s, section %s, source %s%s", name, runner.row.mode, runner.row.section,
                     runner.row.source, ", export" if runner.row.export else "")
            self.publisher.event("session_started", session_id=sid, name=runner.row.name, mode=runner.row.mode)
            row = runner.run()
            self.sm.finishing(sid)  # a start from now on waits for `end` instead of a 409
            self.publisher.final_roster(row)  # as its record says (each student's status); before the results, so
            results = self.publisher.results(row.id)  # a client acting on them meets the session ended at once
            log.info("session %s ended: %s, present %d/%d, unknown faces %d%s", name, results.status,
                     results.present_count, results.total, results.unknowns,
                     f" ({results.error})" if results.error else "")
            self.publisher.event("session_finished", session_id=sid, status=results.status,
                                 present_count=results.present_count, total=results.total)
            finished = row
        except Exception as exc:  # the session could not even record its end (e.g. disk full): say so, free the lock
            log.exception("session %s could not be finalised", runner.row.name)
            error = f"session could not be stored: {type(exc).__name__}: {exc}"
            self.publisher.event("error", session_id=sid, error=error)
            self._publish_unstored(runner, error)
        finally:
            self.sm.end(sid)
            self._lesson_sessions.pop(name, None)
        if finished is not None:  # after the lock is free: reading the section's history takes a moment
            self._alert_low_attendance(finished)

    def _publish_unstored(self, runner: SessionRunner, error: str) -> None:
        """Results from memory when the store refused the session's end: dashboards see `failed`, not `running`."""
        row = runner.row
        row.status, row.error = "failed", (row.error + "; " if row.error else "") + error
        row.ended_at = row.ended_at or now_iso()
        try:
            results = build_results(self._store, row, self._cfg)
        except Exception:  # reading failed too: the event above is all we can say
            log.exception("could not build results of %s", row.name)
            return
        self.publisher.retained("results", results)
        self.publisher.event("session_finished", session_id=row.id, status="failed",
                             present_count=results.present_count, total=results.total)

    def _alert_low_attendance(self, row: SessionRow) -> None:
        """`attendance_low` for each student this session took below `attendance.alert_below_percent`."""
        try:
            for a in low_attendance(self._store, self._cfg, row):
                self.publisher.event("attendance_low", section=a.section, student_id=a.student_id, name=a.name,
                                     percent=a.percent, counted=a.counted, attended=a.attended,
                                     alert_below_percent=a.alert_below_percent, session_id=a.session_id)
        except (AttendanceError, sqlite3.Error) as exc:  # the session is stored; only the alert is lost
            log.error("attendance alerts of %s: %s", row.name, exc)

    # ---- start-up, health, shutdown (main thread) -----------------------------------------------------------

    def recover(self) -> None:
        """Sessions a crash left running become `interrupted`; the newest finished one is the retained result."""
        interrupted = self._store.mark_interrupted()
        for sid in interrupted:
            log.warning("session %s was interrupted by a daemon stop; partial results kept", sid)
        latest = self._store.list_sessions(limit=1)
        if latest:
            results = self.publisher.results(latest[0].id)
            if interrupted:
                self.publisher.event("session_finished", session_id=results.session_id, status=results.status)
            if latest[0].id in interrupted:  # its live roster (retained on the broker) would say final: false
                self.publisher.final_roster(self._store.get_session(latest[0].id))

    def stalled(self, now: float) -> bool:
        active = self._active
        return active is not None and active[1].is_alive() and now - self.beat > WORKER_STALL_S

    def shutdown(self, reason: str) -> None:
        """Stops a running session with `reason` and waits for its results (60 s)."""
        active = self._active
        if active is not None and active[1].is_alive():
            active[0].stop(reason)
            active[1].join(60)
