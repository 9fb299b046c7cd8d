"""The daemon's composition root: builds the store, models, transport and workers, passes each the few things it
needs, and runs the main loop that feeds the systemd watchdog and turns SIGTERM into a clean stop.

Threads: the main loop (watchdog, STATUS; never waits on I/O), the request dispatcher (answers requests in
order), a worker per lane (starts; slow requests such as enrollment; each answered when done), the housekeeper
(cheap periodic checks of the database file and the roster), the scheduler (the timetable's lessons), the upload
writer and verifier, the record outbox (changed records and absence notices, until the broker takes them)
and one session worker while a session runs."""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path

from .. import __version__
from ..config import Config
from ..media.downloads import HashCache
from ..mqtt.bridge import box_roster_topic
from ..mqtt.link import Incoming, MqttLink, tune_allocator
from ..mqtt.topics import Topics
from ..privacy.sweep import sweep, sweep_count
from ..recognition.encode import Encoder, FaceEncoder, ProcessEncoder
from ..roster.enrollment import Enroller
from ..roster.photos import clear_incoming, clear_orphans
from ..roster.sync import RosterSync
from ..sessions.cameras import declared_names
from ..sessions.runtime import configured_detector
from ..store import Store
from ..timetable.entries import row_of
from .dispatcher import LANE_QUEUES, Dispatcher, LaneWorker, RequestInbox
from .ha_controls import HaControls
from .housekeeper import DatabaseWatch, Housekeeper, RosterInbox
from .info import InfoBoard
from .notify import SystemdNotifier
from .publisher import Publisher
from .record_outbox import ACK_TIMEOUT_S, RecordOutbox
from .registry import public_text
from .scheduler import SHUTDOWN_REASON, Scheduler
from .services import Services
from .session_worker import SessionWorker
from .upload_worker import UploadWorker

log = logging.getLogger(__name__)
PAYLOAD_MMAP_BYTES = 8 * 1024 * 1024  # blocks this large (request payloads and their copies) are mapped


class Daemon:
    # set in __init__ after the objects whose callbacks reach them (late-bound through lambdas)
    scheduler: Scheduler
    upload_worker: UploadWorker

    def __init__(self, cfg: Config, notifier: SystemdNotifier | None = None, init: bool = False) -> None:
        self.cfg = cfg
        cfg.ensure_dirs()
        self.notifier = notifier or SystemdNotifier()
        self.store = store = Store(cfg.paths.database, allow_init=init or cfg.daemon.allow_init)
        if clear_incoming(cfg.paths.photos):
            log.warning("deleted the uploads of enrollments the daemon did not live to finish")
        sweep(cfg, store)  # files of erasures the daemon did not live to finish (recorded with their rows)
        if clear_orphans(cfg.paths.photos, store.photo_names()):
            log.warning("deleted stored photos no encoding names (an enrollment the daemon did not live to finish)")
        if cfg.timetable is not None:  # `[[timetable]]` in the config is the timetable (stored, so history and
            store.replace_timetable([row_of(e) for e in cfg.timetable])  # restarts agree); else the stored one is
        self.shutdown = threading.Event()
        requests = RequestInbox()  # bounded in bytes, checked before queueing (413/429 at once)
        topics = Topics(cfg.mqtt.base_topic, cfg.mqtt.device_id)
        self.link = link = MqttLink(cfg.mqtt, topics,
                                    requests.offer,
                                    on_takeover=self._report_takeover,
                                    watched=[(box_roster_topic(cfg.mqtt.base_topic, cfg.mqtt.device_id, s),
                                               self._roster_arrived)
                                             for s in cfg.roster.sections]
                                    + [(topics.upload_chunks, self._chunk_arrived)]
                                    # Home Assistant's sets: to the dispatcher, in order with the requests
                                    + ([(topics.ha_commands, requests.offer)] if cfg.homeassistant.enabled else []))
        self.publisher = publisher = Publisher(link, link.topics, cfg, store)
        self.database = DatabaseWatch(store, publisher)
        self.upload_worker = UploadWorker(cfg, store, publisher, lambda: not self.sessions.idle())
        self.notifier.status("loading models")
        self.detector = configured_detector(cfg)
        rc = cfg.recognition
        self.encoder: FaceEncoder = ProcessEncoder() if rc.encoder_process else Encoder()
        enroller = Enroller(store, self.encoder, rc.duplicate_warn_distance, cfg.enrollment.max_image_pixels)
        self.sessions = sessions = SessionWorker(cfg, store, self.detector, self.encoder, publisher,
                                                 lambda: self.database.problem, lambda: self.scheduler.next)
        rosters = (RosterSync(store, cfg.roster.sections, cfg.roster.key(), lambda ids: sweep_count(cfg, store, ids),
                              cfg.roster.trusted())
                   if cfg.roster.sections else None)
        self.rosters = RosterInbox(rosters, publisher, sessions.when_idle) if rosters else None
        self.info = InfoBoard(publisher, store, self.detector.name, rosters, self.database.problems,
                              lambda: self.scheduler.next, declared_names(cfg), requests.refusals)
        self.scheduler = Scheduler(store, cfg.attendance.zone()[1], sessions.start_lesson, sessions.stop,
                                   sessions.running_lesson, publisher.event, self._next_changed,
                                   public=lambda text: public_text(cfg.paths, text))
        self.controls = HaControls(cfg, store, publisher, __version__)
        self.outbox = RecordOutbox(cfg, store, publisher, link.connected, self.shutdown)
        services = Services(cfg, store, sessions, enroller, publisher, self.info, self.scheduler,
                            self.upload_worker.uploads, HashCache(), self.controls, self.outbox)
        self.lanes = {lane: LaneWorker(services, link, lane, requests) for lane in LANE_QUEUES}
        self.dispatcher = Dispatcher(services, link, requests, self.lanes)
        self.housekeeper = Housekeeper(cfg, store, self.database, self.rosters, self.info.publish, self.shutdown,
                                       self.controls.refresh)
        self._scheduler = threading.Thread(target=self.scheduler.run, args=(self.shutdown,), name="scheduler",
                                           daemon=True)

    def _report_takeover(self, message: str) -> None:
        """Called after reconnecting from a client-id takeover: dashboards see it as an `error` event."""
        self.publisher.event("error", error=message)

    def _roster_arrived(self, incoming: Incoming) -> None:
        if self.rosters is not None:
            self.rosters.arrived(incoming)

    def _chunk_arrived(self, incoming: Incoming) -> None:
        self.upload_worker.offer(incoming)  # paho's thread: only queues

    def _next_changed(self) -> None:
        self.sessions.republish()  # ordered with the transitions' own publishes (the scheduler's thread races them)
        self.info.publish()

    def _healthy(self) -> bool:
        now = time.monotonic()
        if self.dispatcher.stalled(now):
            log.error("dispatcher thread stalled")
            return False
        if self.sessions.stalled(now):
            log.error("session worker stalled")
            return False
        for thread in (*(w.thread for w in self.lanes.values()), self.housekeeper.thread, self._scheduler,
                       self.upload_worker.writer, self.upload_worker.verifier, self.outbox.thread):
            if not thread.is_alive():
                log.error("%s thread died", thread.name)
                return False
        return True

    def _status_line(self) -> str:
        s = self.sessions.sm.state()
        if self.link.connected.is_set():
            link = "connected"
        else:
            link = f"waiting for broker ({self.link.last_error or 'unreachable'})"
        if self.database.problem:
            link += f"; DATABASE PROBLEM: {self.database.problem}"
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
        if not tune_allocator(PAYLOAD_MMAP_BYTES):  # large requests' copies go back to the system once answered
            log.warning("could not tune the C allocator: memory of large requests is kept after them")
        self.sessions.recover()
        self.scheduler.recover()
        self.info.publish()
        self.controls.announce()  # Home Assistant discovery and R/ha/state, or their removal when disabled
        self.publisher.retained("state", self.sessions.state())
        for thread in (self.dispatcher.thread, *(w.thread for w in self.lanes.values()), self.housekeeper.thread,
                       self._scheduler, self.outbox.thread):
            thread.start()
        self.upload_worker.start()
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
        self.sessions.shutdown(SHUTDOWN_REASON)  # a lesson's session is started again if the box is back in time
        self.dispatcher.stop()
        for lane in self.lanes.values():
            lane.drain()
        self.housekeeper.thread.join(5)
        self.outbox.changed()  # wakes it to see the shutdown; what it could not send stays for the next start
        self.outbox.thread.join(ACK_TIMEOUT_S + 1)
        self.upload_worker.stop()
        self.link.stop()
        self.encoder.close()
        self.store.close()
        return 0


def run_daemon(config_path: Path | None, init: bool = False) -> int:
    from ..config import load_config

    cfg = load_config(config_path)
    return Daemon(cfg, init=init).run()
