"""The daemon: wires store, models, state machine, session worker and MQTT; runs the main loop that feeds
the systemd watchdog and turns SIGTERM into a clean stop."""

from __future__ import annotations

import json
import logging
import queue
import signal
import threading
import time
from pathlib import Path
from typing import Any

from .. import __version__, api
from ..config import Config
from ..enrollment import Enroller
from ..planning import SessionPlan
from ..results import build_results
from ..roster import live_roster
from ..runtime import configured_detector
from ..session import SessionControl, SessionHooks, SessionRunner
from ..store import AttendanceRow, SessionRow, Store, StudentRow
from ..timeutil import now_iso
from ..vision.encode import Encoder, FaceEncoder, ProcessEncoder
from . import commands, homeassistant
from .mqtt_link import Incoming, MqttLink
from .notify import SystemdNotifier
from .state_machine import StateMachine
from .topics import Topics

log = logging.getLogger(__name__)

# A request may legitimately block the dispatcher for a while (opening an RTSP camera can take 30 s,
# enrolling many photos several seconds); only beyond this is it taken as hung and the watchdog starved.
DISPATCHER_STALL_S = 120.0
WORKER_STALL_S = 60.0


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
    def __init__(self, cfg: Config, notifier: SystemdNotifier | None = None) -> None:
        self.cfg = cfg
        cfg.ensure_dirs()
        self.notifier = notifier or SystemdNotifier()
        self.store = Store(cfg.paths.database)
        self.topics = Topics(cfg.mqtt.base_topic, cfg.mqtt.device_id)
        self.requests: queue.Queue[Incoming | None] = queue.Queue()
        self.link = MqttLink(cfg.mqtt, self.topics, self.requests.put, on_takeover=self._report_takeover)
        self.device_id = cfg.mqtt.device_id
        self.sm = StateMachine(on_change=lambda s: self.link.set_retained("state", _json(s)), device_id=self.device_id)
        rc = cfg.recognition
        self.notifier.status("loading models")
        self.detector = configured_detector(cfg)
        self.encoder: FaceEncoder = ProcessEncoder() if rc.encoder_process else Encoder()
        self.enroller = Enroller(self.store, self.encoder, rc.duplicate_warn_distance)
        self.started_at = now_iso()
        self.shutdown = threading.Event()
        self.dispatcher_beat = self.worker_beat = time.monotonic()
        self._worker: threading.Thread | None = None
        self._control: SessionControl | None = None
        self._dispatcher = threading.Thread(target=self._dispatch, name="dispatcher", daemon=True)

    # ---- publishing --------------------------------------------------------------------------------

    def publish_info(self) -> None:
        info = api.Info(version=__version__, device_id=self.cfg.mqtt.device_id, detector=self.detector.name,
                        sections=[{"section": s, "students": n} for s, n in self.store.sections()],
                        started_at=self.started_at)
        self.link.set_retained("info", _json(info))

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

    # ---- sessions (called on the dispatcher thread) ----------------------------------------------------

    def start_session(self, plan: SessionPlan) -> api.State:
        with self.sm.lock:
            self.sm.ensure_idle()
            control = SessionControl()
            runner = SessionRunner(self.cfg, self.store, self.detector, self.encoder, plan, control,
                                   _PublishingHooks(self))
            row = runner.row
            info = api.SessionInfo(id=row.id, name=row.name, section=row.section, source=row.source,
                                   export=row.export, started_at=row.started_at)
            state = self.sm.begin(plan.mode, info)
            self._control = control
            self.worker_beat = time.monotonic()
            self._worker = threading.Thread(target=self._run_worker, args=(runner,), name=f"session-{row.name}")
            self._worker.start()
        return state

    def _run_worker(self, runner: SessionRunner) -> None:
        sid, name = runner.row.id, runner.row.name
        try:
            log.info("session %s started: %s, section %s, source %s%s", name, runner.row.mode, runner.row.section,
                     runner.row.source, ", export" if runner.row.export else "")
            self.publish_event("session_started", session_id=sid, name=runner.row.name, mode=runner.row.mode)
            row = runner.run()
            results = self._publish_results(row.id)
            log.info("session %s ended: %s, present %d/%d, unknown faces %d%s", name, results.status,
                     results.present_count, results.total, results.unknowns,
                     f" ({results.error})" if results.error else "")
            self.publish_event("session_finished", session_id=sid, status=results.status,
                               present_count=results.present_count, total=results.total)
        except Exception:  # the session could not even record its end (e.g. disk full): log, free the lock
            log.exception("session %s could not be finalised", runner.row.name)
            self.publish_event("error", session_id=sid, error="session could not be finalised; see the log")
        finally:
            self.sm.end(sid)

    def pause(self, session_id: str | None) -> api.State:
        with self.sm.lock:
            state = self.sm.pause(session_id)
            if self._control is not None:
                self._control.pause()
            return state

    def resume(self, session_id: str | None) -> api.State:
        with self.sm.lock:
            state = self.sm.resume(session_id)
            if self._control is not None:
                self._control.resume()
            return state

    def stop(self, session_id: str | None, timeout: float = 30.0) -> api.State:
        """Stops and waits for the worker to store and publish the results, then answers the idle state."""
        with self.sm.lock:
            self.sm.check_stop(session_id)
            control, worker = self._control, self._worker
            if control is not None:
                control.stop()
        if worker is not None:
            worker.join(timeout)
        return self.sm.state()

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
                name, response = commands.handle(self, incoming)
                self.link.respond(name, _json(response), incoming)
                if incoming.retain:  # refused above; delete it so it is not replayed at every reconnect
                    self.link.clear_retained(incoming.topic)
            except Exception:
                log.exception("could not answer a request on %.120s; carrying on", incoming.topic)

    def _healthy(self) -> bool:
        now = time.monotonic()
        if now - self.dispatcher_beat > DISPATCHER_STALL_S:
            log.error("dispatcher thread stalled")
            return False
        worker = self._worker
        if worker is not None and worker.is_alive() and now - self.worker_beat > WORKER_STALL_S:
            log.error("session worker stalled")
            return False
        return True

    def _status_line(self) -> str:
        s = self.sm.state()
        link = "connected" if self.link.connected.is_set() else (self.link.last_error or "broker unreachable")
        if s.session is None:
            return f"idle, {link}"
        return f"{s.mode} session {s.session.name}{' (paused)' if s.paused else ''}, {link}"

    def run(self) -> int:
        """Blocks until SIGTERM/SIGINT; returns the exit code."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.shutdown.set())
        self._recover()
        self.publish_info()
        self.publish_discovery()
        self.link.set_retained("state", _json(self.sm.state()))
        self._dispatcher.start()
        self.notifier.status("connecting to the MQTT broker")
        self.link.start()
        wd = self.notifier.watchdog_s
        tick = min(1.0, wd * self.cfg.daemon.watchdog_margin / 2) if wd else 1.0
        ready = False
        last_status = ""
        while not self.shutdown.wait(tick):
            if not ready and self.link.last_error:
                self.notifier.status(self.link.last_error)
            if not ready and self.link.connected.is_set():
                ready = True
                self.notifier.ready(self._status_line())
                log.info("ready: %s", self._status_line())
            if self._healthy():
                self.notifier.watchdog()
            line = self._status_line()
            if ready and line != last_status:
                self.notifier.status(line)
                last_status = line
        return self._shutdown()

    def _shutdown(self) -> int:
        log.info("stopping")
        self.notifier.stopping()
        with self.sm.lock:
            control, worker = self._control, self._worker
        if control is not None and worker is not None and worker.is_alive():
            control.stop()
            worker.join(60)
        self.requests.put(None)
        self._dispatcher.join(5)
        self.link.stop()
        self.encoder.close()
        self.store.close()
        return 0


def run_daemon(config_path: Path | None) -> int:
    from ..config import load_config

    cfg = load_config(config_path)
    return Daemon(cfg).run()
