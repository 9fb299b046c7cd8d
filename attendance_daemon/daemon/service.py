"""The daemon: wires store, models, state machine, session worker and MQTT; runs the main loop that feeds
the systemd watchdog and turns SIGTERM into a clean stop.

Threads: the main loop (watchdog, STATUS; never waits on I/O), the request dispatcher (answers requests in
order), the enrollment worker (slow requests, answered when done), the housekeeper (cheap periodic checks of
the database file and the roster) and one session worker while a session runs."""

from __future__ import annotations

import json
import logging
import queue
import signal
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import __version__
from ..attendance.history_report import low_attendance
from ..attendance.live_roster import live_roster
from ..attendance.results import build_results
from ..common.errors import AttendanceError, Conflict, StoreError
from ..common.timeutil import iso, now_iso
from ..config import Config
from ..contract import api
from ..contract.roster_message import MAX_ROSTER_BYTES
from ..mqtt.bridge import roster_topic
from ..mqtt.link import Incoming, MqttLink
from ..mqtt.topics import Topics
from ..privacy import retention
from ..privacy.retention import RetentionTimer
from ..recognition.encode import Encoder, FaceEncoder, ProcessEncoder
from ..roster.enrollment import Enroller
from ..roster.photos import clear_incoming
from ..roster.sync import RosterSync
from ..sessions.cameras import resolve_camera
from ..sessions.planning import SessionPlan, plan_webcam
from ..sessions.runner import SessionControl, SessionHooks, SessionRunner
from ..sessions.runtime import configured_detector
from ..sessions.state_machine import StateMachine
from ..store import AttendanceRow, SessionRow, Store, StudentRow
from ..timetable.entries import row_of
from ..timetable.planner import Running
from ..timetable.week import Occurrence
from . import commands, homeassistant
from .notify import SystemdNotifier
from .scheduler import SHUTDOWN_REASON, Scheduler

log = logging.getLogger(__name__)

# A request may legitimately block the dispatcher for a while (opening an RTSP camera can take 30 s,
# enrolling many photos several seconds); only beyond this is it taken as hung and the watchdog starved.
DISPATCHER_STALL_S = 120.0
WORKER_STALL_S = 60.0
HOUSEKEEPING_S = 2.0  # how often the database file and the roster are checked (off the main loop)
BACKGROUND_QUEUE = 8  # slow requests (enrollments) waiting beyond this are refused with 409
ROSTER_INBOX = 32  # hub roster messages waiting for the housekeeper (beyond: dropped, logged)


def _json(payload: Any) -> bytes:
    if isinstance(payload, api.Payload):
        return payload.model_dump_json().encode()
    return json.dumps(payload, separators=(",", ":")).encode()


class _PublishingHooks(SessionHooks):
    """Session callbacks -> MQTT (worker thread); heartbeats tell the main loop the worker is alive."""

    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon

    def progress(self, progress: api.Progress) -> None:
        self.d.link.set_retained("progress", _json(progress.model_copy(update={"device_id": self.d.device_id})))

    def event(self, kind: str, **fields: object) -> None:
        self.d.publish_event(kind, **fields)

    def snapshot(self, jpeg_bytes: bytes) -> None:
        self.d.link.set_retained("snapshot", jpeg_bytes)

    def heartbeat(self) -> None:
        self.d.worker_beat = time.monotonic()

    def attendance(self, session: SessionRow, roster: list[StudentRow], rows: list[AttendanceRow],
                   final: bool) -> None:
        self.d.publish_roster(session, roster, rows, final)


class Daemon:
    def __init__(self, cfg: Config, notifier: SystemdNotifier | None = None, init: bool = False) -> None:
        self.cfg = cfg
        cfg.ensure_dirs()
        self.notifier = notifier or SystemdNotifier()
        self.store = Store(cfg.paths.database, allow_init=init or cfg.daemon.allow_init)
        if clear_incoming(cfg.paths.photos):
            log.warning("deleted the uploads of enrollments the daemon did not live to finish")
        self.topics = Topics(cfg.mqtt.base_topic, cfg.mqtt.device_id)
        self.requests: queue.Queue[Incoming | None] = queue.Queue()
        # Hub rosters ([roster] sections): checked and applied by the housekeeper, never mid-session.
        self.rosters = (RosterSync(self.store, cfg.roster.sections, cfg.roster.key(), cfg.paths.photos)
                        if cfg.roster.sections else None)
        self.roster_inbox: queue.Queue[Incoming] = queue.Queue(ROSTER_INBOX)
        # Held by a start from reading the roster until the state is busy: a roster is never applied in between.
        self._starting = threading.Lock()
        self.link = MqttLink(cfg.mqtt, self.topics, self.requests.put, on_takeover=self._report_takeover,
                             watched=([roster_topic(cfg.mqtt.base_topic, s) for s in cfg.roster.sections],
                                      self._roster_arrived))
        self.device_id = cfg.mqtt.device_id
        self.sm = StateMachine(on_change=lambda s: self.link.set_retained("state", _json(self._with_next(s))),
                               device_id=self.device_id)
        self._init_timetable()
        rc = cfg.recognition
        self.notifier.status("loading models")
        self.detector = configured_detector(cfg)
        self.encoder: FaceEncoder = ProcessEncoder() if rc.encoder_process else Encoder()
        self.enroller = Enroller(self.store, self.encoder, rc.duplicate_warn_distance,
                                 cfg.enrollment.max_image_pixels)
        self.started_at = now_iso()
        self.shutdown = threading.Event()
        self.dispatcher_beat = self.worker_beat = time.monotonic()
        # (control, worker) of the running session, replaced as a whole (no lock needed to read it)
        self._active: tuple[SessionControl, threading.Thread] | None = None
        self.db_problem: str | None = None
        self._info_payload = b""
        self._info_lock = threading.Lock()
        self._results_lock = threading.RLock()  # the retained results: the worker's and an erasure's, in order
        self._dispatcher = threading.Thread(target=self._dispatch, name="dispatcher", daemon=True)
        self.background: queue.Queue[Incoming | None] = queue.Queue(BACKGROUND_QUEUE)
        self._background = threading.Thread(target=self._run_background, name="enrollment", daemon=True)
        self._housekeeper = threading.Thread(target=self._housekeep, name="housekeeper", daemon=True)
        self._scheduler = threading.Thread(target=self.scheduler.run, args=(self.shutdown,), name="scheduler",
                                           daemon=True)

    # ---- publishing --------------------------------------------------------------------------------

    def publish_info(self) -> None:
        """Republishes the retained info when it changed (called after roster changes and by the housekeeper)."""
        with self._info_lock:  # the dispatcher, the enrollment worker and the housekeeper all call this
            info = api.Info(version=__version__, device_id=self.cfg.mqtt.device_id, detector=self.detector.name,
                            sections=[{"section": s, "students": n} for s, n in self.store.sections()],
                            started_at=self.started_at,
                            problems=([self.db_problem] if self.db_problem else [])
                            + (self.rosters.problems() if self.rosters else []),
                            rosters=self.rosters.status() if self.rosters else {},
                            next_lesson=self.scheduler.next)
            payload = _json(info)
            if payload != self._info_payload:
                self._info_payload = payload
                self.link.set_retained("info", payload)

    def publish_roster(self, session: SessionRow, roster: list[StudentRow], rows: list[AttendanceRow],
                       final: bool) -> None:
        payload = live_roster(self.cfg.mqtt.device_id, session, roster, rows, self.cfg.recognition.min_presence_s,
                              final, now_iso())
        self.link.set_retained("attendance", _json(payload))

    def publish_discovery(self) -> None:
        """Home Assistant discovery configs (retained), or their removal when disabled."""
        for topic, payload in homeassistant.discovery_messages(self.cfg.homeassistant, self.topics, __version__):
            self.link.set_retained_topic(topic, payload)

    def publish_event(self, kind: str, **fields: object) -> None:
        self.link.publish(self.topics.of("events"), _json({"type": kind, "at": now_iso(), **fields,
                                                            "device_id": self.device_id}))

    def _report_takeover(self, message: str) -> None:
        """Called after reconnecting from a client-id takeover: dashboards see it as an `error` event."""
        self.publish_event("error", error=message)

    def _publish_results(self, session_id: str) -> api.Results:
        with self._results_lock:
            results = build_results(self.store, self.store.get_session(session_id), self.cfg)
            self.link.set_retained("results", _json(results))
        return results

    def _recover(self) -> None:
        """Sessions a crash left running become `interrupted`; the newest finished one is the retained result."""
        interrupted = self.store.mark_interrupted()
        for sid in interrupted:
            log.warning("session %s was interrupted by a daemon stop; partial results kept", sid)
        latest = self.store.list_sessions(limit=1)
        if latest:
            results = self._publish_results(latest[0].id)
            if interrupted:
                self.publish_event("session_finished", session_id=results.session_id, status=results.status)
            if latest[0].id in interrupted:  # its live roster (retained on the broker) would say final: false
                row = self.store.get_session(latest[0].id)
                roster = self.store.students(row.section) if self.store.section_exists(row.section) else []
                self.publish_roster(row, roster, self.store.attendance(row.id), final=True)

    def republish_after_erasure(self) -> None:
        """After `forget_student` or `delete_session`: the retained results show the newest finished session
        as it now is (or nothing); when idle the live roster is rebuilt from the store and the live snapshot,
        which may show what was erased, is cleared (the kept frame stays fetchable with `snapshot`)."""
        with self._results_lock:  # chosen and published in one step: a session ending meanwhile is not overtaken
            finished = [s for s in self.store.list_sessions(limit=2) if s.status not in ("running", "paused")]
            if finished:
                self._publish_results(finished[0].id)
            else:
                self.link.set_retained("results", b"")
        if self.sm.state().session is None:
            self.link.set_retained("snapshot", b"")
            if finished:
                row = finished[0]
                roster = self.store.students(row.section) if self.store.section_exists(row.section) else []
                self.publish_roster(row, roster, self.store.attendance(row.id), final=True)
            else:
                self.link.set_retained("attendance", b"")

    # ---- sessions (called on the dispatcher thread) ----------------------------------------------------

    def start_session(self, plan: SessionPlan) -> api.State:
        """Prepare without the state lock (free space, roster, open the source with a time-out), then commit
        under it (create the row, begin, start the worker). A refused commit closes the source again."""
        with self._starting:
            self.sm.ensure_idle()  # a start that waited here for another one: 409 now, without opening its source
            return self._start_session(plan)

    def _start_session(self, plan: SessionPlan) -> api.State:
        if self.db_problem:
            raise StoreError(f"database: {self.db_problem}; restore it (see README) and restart the daemon")
        runner = SessionRunner(self.cfg, self.store, self.detector, self.encoder, plan, SessionControl(),
                               _PublishingHooks(self))

        def commit() -> api.SessionInfo:
            runner.commit()
            row = runner.row
            worker = threading.Thread(target=self._run_worker, args=(runner,), name=f"session-{row.name}")
            self._active = (runner.control, worker)
            self.worker_beat = time.monotonic()
            worker.start()
            return api.SessionInfo(id=row.id, name=row.name, section=row.section, source=row.source,
                                   export=row.export, started_at=row.started_at)

        try:
            return self._with_next(self.sm.begin(plan.mode, commit))
        except Conflict:
            runner.discard()  # busy (another start won the race): do not hold the camera or file
            raise

    def _run_worker(self, runner: SessionRunner) -> None:
        sid, name = runner.row.id, runner.row.name
        finished: SessionRow | None = None
        try:
            log.info("session %s started: %s, section %s, source %s%s", name, runner.row.mode, runner.row.section,
                     runner.row.source, ", export" if runner.row.export else "")
            self.publish_event("session_started", session_id=sid, name=runner.row.name, mode=runner.row.mode)
            row = runner.run()
            self.sm.finishing(sid)  # a start from now on waits for `end` instead of a 409
            results = self._publish_results(row.id)
            log.info("session %s ended: %s, present %d/%d, unknown faces %d%s", name, results.status,
                     results.present_count, results.total, results.unknowns,
                     f" ({results.error})" if results.error else "")
            self.publish_event("session_finished", session_id=sid, status=results.status,
                               present_count=results.present_count, total=results.total)
            finished = row
        except Exception as exc:  # the session could not even record its end (e.g. disk full): say so, free the lock
            log.exception("session %s could not be finalised", runner.row.name)
            error = f"session could not be stored: {type(exc).__name__}: {exc}"
            self.publish_event("error", session_id=sid, error=error)
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
            results = build_results(self.store, row, self.cfg)
        except Exception:  # reading failed too: the event above is all we can say
            log.exception("could not build results of %s", row.name)
            return
        self.link.set_retained("results", _json(results))
        self.publish_event("session_finished", session_id=row.id, status="failed",
                           present_count=results.present_count, total=results.total)

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

    # ---- timetable (issue 8) --------------------------------------------------------------------------

    def _init_timetable(self) -> None:
        """`[[timetable]]` in the config is the timetable (stored, so history and restarts agree); without
        it the stored one, managed over MQTT, is."""
        if self.cfg.timetable is not None:
            self.store.replace_timetable([row_of(e) for e in self.cfg.timetable])
        self._lesson_sessions: dict[str, str] = {}  # session name -> lesson key, while its session runs
        self.scheduler = Scheduler(self.store, self.cfg.attendance.zone()[1], self.start_lesson, self.stop,
                                   self._running_lesson, self.publish_event, self._next_changed,
                                   public=lambda text: commands.public_text(self, text))

    def start_lesson(self, occ: Occurrence, now: datetime) -> api.State:
        """A webcam session for a lesson: its camera, its section, until its end (the same path as a request)."""
        self.sm.ensure_idle()
        camera = resolve_camera(self.cfg, occ.lesson.camera)
        plan = plan_webcam(self.cfg, self.store, occ.lesson.section, None, False, camera,
                           max(1.0, (occ.end - now).total_seconds()))
        plan.lesson, plan.lesson_start = occ.key, iso(occ.start)
        self._lesson_sessions[plan.name] = occ.key  # before the worker starts (it removes it when it ends)
        try:
            return self.start_session(plan)
        except BaseException:
            self._lesson_sessions.pop(plan.name, None)
            raise

    def _alert_low_attendance(self, row: SessionRow) -> None:
        """`attendance_low` for each student this session took below `attendance.alert_below_percent`."""
        try:
            for a in low_attendance(self.store, self.cfg, row):
                self.publish_event("attendance_low", section=a.section, student_id=a.student_id, name=a.name,
                                   percent=a.percent, counted=a.counted, attended=a.attended,
                                   alert_below_percent=a.alert_below_percent, session_id=a.session_id)
        except (AttendanceError, sqlite3.Error) as exc:  # the session is stored; only the alert is lost
            log.error("attendance alerts of %s: %s", row.name, exc)

    def _running_lesson(self) -> Running | None:
        session = self.sm.state().session
        return None if session is None else Running(session.id, self._lesson_sessions.get(session.name))

    def _with_next(self, state: api.State) -> api.State:
        return state.model_copy(update={"next_lesson": self.scheduler.next})

    def state(self) -> api.State:
        return self._with_next(self.sm.state())

    def _next_changed(self) -> None:
        self.sm.republish()  # ordered with the transitions' own publishes (the scheduler's thread races them)
        self.publish_info()

    # ---- loops -------------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        while True:
            try:
                incoming = self.requests.get(timeout=0.5)
            except queue.Empty:
                self.dispatcher_beat = time.monotonic()
                continue
            self.dispatcher_beat = time.monotonic()
            if incoming is None:
                return
            if incoming.retain and not incoming.payload:
                continue  # the deletion of a retained message, not a request
            try:  # nothing one request holds may end this thread: every later request would go unanswered
                if not incoming.retain and commands.runs_in_background(self.topics.command_of(incoming.topic)):
                    try:
                        self.background.put_nowait(incoming)
                    except queue.Full:
                        self._answer(*commands.refuse(self, incoming, Conflict(
                            f"busy: {BACKGROUND_QUEUE} enrollments are already waiting; retry later")), incoming)
                    continue
                self._answer(*commands.handle(self, incoming), incoming)
            except Exception:
                log.exception("could not answer a request on %.120s; carrying on", incoming.topic)

    def _answer(self, name: str, response: api.Response, incoming: Incoming) -> None:
        self.link.respond(name, _json(response), incoming)
        if incoming.retain:  # refused above; delete it so it is not replayed at every reconnect
            self.link.clear_retained(incoming.topic)

    def _run_background(self) -> None:
        """Slow requests (enrollment: seconds per photo) one at a time, so the dispatcher stays responsive."""
        while True:
            incoming = self.background.get()
            if incoming is None:
                return
            try:
                self._answer(*commands.handle(self, incoming), incoming)
            except Exception:  # handle() never raises; answering can: one request must not end the worker
                log.exception("could not answer %s", incoming.topic)

    def _housekeep(self) -> None:
        """Cheap periodic checks, off the main loop: is our database still the file at its path, and did
        another process (a CLI `enroll-bulk`) change the roster that the retained info shows? Also deletes the
        evidence files older than `retention.days`, at start-up and then daily."""
        version = None
        retention_due = RetentionTimer()
        while not self.shutdown.wait(HOUSEKEEPING_S):
            try:
                self._check_database()
                if self.db_problem:
                    continue
                if retention_due.due(time.monotonic()):  # at start-up, then daily
                    retention.clean(self.cfg, self.store)
                self._sync_rosters()
                now = self.store.data_version()
                if now != version:
                    version = now
                    self.publish_info()
            except (AttendanceError, OSError, sqlite3.Error) as exc:
                log.error("housekeeping: %s: %s", type(exc).__name__, exc)
            except Exception:  # a bug or a hostile roster must not end the thread (the watchdog would restart us
                log.exception("housekeeping failed; carrying on")  # into the same retained message)

    def _roster_arrived(self, incoming: Incoming) -> None:
        """paho's thread: only enqueue (bounded); the housekeeper checks and applies."""
        if len(incoming.payload) > MAX_ROSTER_BYTES:  # refused unread and not queued, but as visibly as the rest
            if self.rosters is not None:
                reason = self.rosters.refuse(incoming.topic.rsplit("/", 1)[-1], f"roster message of "
                                             f"{len(incoming.payload)} bytes; at most {MAX_ROSTER_BYTES}")
                self.publish_event("error", error=reason)
            incoming = Incoming(incoming.topic, b"", incoming.retain, None, None)  # wakes the Info republish
        try:
            self.roster_inbox.put_nowait(incoming)
        except queue.Full:
            log.error("roster message on %s dropped: %d are waiting", incoming.topic, ROSTER_INBOX)

    def _sync_rosters(self) -> None:
        """Checks arrived rosters (a refused one is an `error` event and an Info problem), then applies the
        staged ones when no session runs."""
        if self.rosters is None:
            return
        changed = False
        while True:
            try:
                incoming = self.roster_inbox.get_nowait()
            except queue.Empty:
                break
            reason = self.rosters.offer(incoming.topic.rsplit("/", 1)[-1], incoming.payload)
            if reason:
                self.publish_event("error", error=reason)
            changed = True  # staged (Info shows `pending`) or refused (Info shows the problem)
        if self.rosters.pending() and self._starting.acquire(blocking=False):  # a start in progress: next tick
            try:
                active = self._active
                idle = self.sm.state().session is None and (active is None or not active[1].is_alive())
                if idle and self.rosters.apply_staged():
                    changed = True
            finally:
                self._starting.release()
        if changed:
            self.publish_info()

    def _check_database(self) -> None:
        problem = self.store.identity_problem()
        if problem is None or problem == self.db_problem:
            return
        self.db_problem = problem
        log.error("%s: nothing recorded from now on survives a restart; stop the daemon and restore the "
                  "database from a backup (see README)", problem)
        self.publish_event("error", error=f"database: {problem}")
        self.publish_info()

    def _healthy(self) -> bool:
        now = time.monotonic()
        if now - self.dispatcher_beat > DISPATCHER_STALL_S:
            log.error("dispatcher thread stalled")
            return False
        active = self._active
        if active is not None and active[1].is_alive() and now - self.worker_beat > WORKER_STALL_S:
            log.error("session worker stalled")
            return False
        for thread in (self._background, self._housekeeper, self._scheduler):
            if not thread.is_alive():
                log.error("%s thread died", thread.name)
                return False
        return True

    def _status_line(self) -> str:
        s = self.sm.state()
        if self.link.connected.is_set():
            link = "connected"
        else:
            link = f"waiting for broker ({self.link.last_error or 'unreachable'})"
        if self.db_problem:
            link += f"; DATABASE PROBLEM: {self.db_problem}"
        if s.session is None:
            return f"idle, {link}"
        return f"{s.mode} session {s.session.name}{' (paused)' if s.paused else ''}, {link}"

    def run(self) -> int:
        """Blocks until SIGTERM/SIGINT; returns the exit code.

        READY is sent once the models are loaded and the store is open, whether or not the broker answers:
        with the broker down the unit is up and STATUS says "waiting for broker", as after a broker loss
        (otherwise systemd would fail the start after TimeoutStartSec and loop)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.shutdown.set())
        self._recover()
        self.scheduler.recover()
        self.publish_info()
        self.publish_discovery()
        self.link.set_retained("state", _json(self.state()))
        self._dispatcher.start()
        self._background.start()
        self._housekeeper.start()
        self._scheduler.start()
        self.notifier.status("connecting to the MQTT broker")
        self.link.start()
        wd = self.notifier.watchdog_s
        tick = min(1.0, wd * self.cfg.daemon.watchdog_margin / 2) if wd else 1.0
        last_status = self._status_line()
        self.notifier.ready(last_status)
        log.info("ready: %s", last_status)
        while not self.shutdown.wait(tick):
            if self._healthy():
                self.notifier.watchdog()
            line = self._status_line()
            if line != last_status:
                self.notifier.status(line)
                last_status = line
        return self._shutdown()

    def _shutdown(self) -> int:
        log.info("stopping")
        self.notifier.stopping()
        self._scheduler.join(35)  # first, so it cannot start a lesson behind us (it may be ending one)
        active = self._active
        if active is not None and active[1].is_alive():
            active[0].stop(SHUTDOWN_REASON)  # a lesson's session is started again if the box is back in time
            active[1].join(60)
        self.requests.put(None)
        self._dispatcher.join(5)
        self._drain_background()
        self._housekeeper.join(5)
        self.link.stop()
        self.encoder.close()
        self.store.close()
        return 0

    def _drain_background(self) -> None:
        """Waiting enrollments are answered 409 (stopping); the running one may finish (60 s)."""
        while True:
            try:
                waiting = self.background.get_nowait()
            except queue.Empty:
                break
            if waiting is not None:
                self._answer(*commands.refuse(self, waiting, Conflict("stopping: the daemon is shutting down; "
                                                                      "retry when it is back")), waiting)
        self.background.put(None)
        self._background.join(60)


def run_daemon(config_path: Path | None, init: bool = False) -> int:
    from ..config import load_config

    cfg = load_config(config_path)
    return Daemon(cfg, init=init).run()
