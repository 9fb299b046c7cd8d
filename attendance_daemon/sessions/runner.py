"""Runs one attendance session from its source to a stored result, with pause, stop and progress hooks.

Shared by the CLI (`process`) and the daemon's worker thread, so both behave identically."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
import time
import uuid

import cv2

from ..attendance.presence import AttendanceBook
from ..common.errors import AttendanceError, InsufficientStorage, InvalidRequest
from ..common.timeutil import now_iso
from ..config import Config
from ..contract.api import Progress
from ..media.export import VideoExporter, annotate, jpeg, save_crop
from ..privacy.sweep import sweep
from ..recognition.detect import Detector
from ..recognition.encode import FaceEncoder
from ..recognition.match import Matcher
from ..store import AttendanceRow, SessionRow, Store, StudentRow
from .planning import SessionPlan
from .recognizer import FrameOutcome, Recognizer, UnknownFace
from .sources import CameraSource, FrameSource, VideoFileSource

log = logging.getLogger(__name__)


class SessionControl:
    """Thread-safe pause/stop switches that the worker checks between frames."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self.reason: str | None = None  # why it was stopped, when not at a user's request (stored as its error)

    def stop(self, reason: str | None = None) -> None:
        self.reason = reason
        self._stop.set()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_running(self, timeout: float) -> bool:
        return self._running.wait(timeout)


class SessionHooks:
    """What a session tells the outside world; the defaults do nothing (the CLI overrides a few)."""

    def progress(self, progress: Progress) -> None:
        """Throttled by the runner; also sent at pause, resume and end."""

    def event(self, kind: str, **fields: object) -> None:
        """student_present / unknown_face / error."""

    def snapshot(self, jpeg_bytes: bytes) -> None:
        """Latest annotated frame, throttled."""

    def heartbeat(self) -> None:
        """Called at least once a second, also while paused (the daemon feeds its watchdog from it)."""

    def attendance(self, session: SessionRow, roster: list[StudentRow], rows: list[AttendanceRow],
                   final: bool) -> None:
        """Everything seen so far: at the start, at most once a second while it changes, and once with `final`
        when the session has ended (its status and end stored)."""


def free_mb(cfg: Config) -> float:
    return shutil.disk_usage(cfg.paths.data_dir).free / 1e6


def require_free_space(cfg: Config) -> None:
    """507 when the data directory has less free space than `daemon.min_free_mb`."""
    free, need = free_mb(cfg), cfg.daemon.min_free_mb
    if free < need:
        raise InsufficientStorage(f"insufficient storage: {free:.0f} MB free on the data directory, "
                                  f"{need:g} MB required (daemon.min_free_mb)")


class SessionRunner:
    """Owns the open source, the recognizer and the exporter of one session until it ends.

    Construction prepares (free space, roster, source opened with a time-out) without touching shared
    state; `commit()` creates the session's row. The daemon commits under its state lock, so the slow part
    never holds it."""

    def __init__(
        self, cfg: Config, store: Store, detector: Detector, encoder: FaceEncoder, plan: SessionPlan,
        control: SessionControl | None = None, hooks: SessionHooks | None = None,
    ) -> None:
        self.cfg, self.store, self.plan = cfg, store, plan
        self.control = control or SessionControl()
        self.hooks = hooks or SessionHooks()
        rc = cfg.recognition
        require_free_space(cfg)
        roster, encodings, owners = store.section_encodings(plan.section)  # NotFound for an unknown section
        if len(encodings) == 0:
            raise InvalidRequest(f"section: section '{plan.section}' has no enrolled faces")
        self.source: FrameSource
        timeout = cfg.daemon.open_timeout_s
        if plan.mode == "mp4":
            assert plan.video_path is not None
            self.source = VideoFileSource(plan.video_path, rc.analysis_fps, timeout)
        else:
            assert plan.camera is not None  # plan_webcam fills in the configured default
            self.source = CameraSource(plan.camera, rc.analysis_fps, cfg.daemon.camera_retry_s, timeout)
        self.book = AttendanceBook(roster, 1.0 / self.source.fps, rc.presence_gap_s, rc.votes_to_confirm,
                                   rc.vote_ratio, rc.min_presence_s, rc.unknown_votes, rc.unknown_distance,
                                   rc.confident_distance)
        self.recognizer = Recognizer(detector, encoder, Matcher(encodings, owners, len(roster), rc.match_tolerance),
                                     self.book, rc)
        self.row = SessionRow(
            id=uuid.uuid4().hex, name=plan.name, section=plan.section, mode=plan.mode, source=plan.source_label,
            export=plan.export, status="running", started_at=now_iso(), total_frames=self.source.total,
            roster_total=len(roster), lesson=plan.lesson, lesson_start=plan.lesson_start,
        )
        self._committed = False
        self._faces = 0
        self._last_t = 0.0
        self._exporter: VideoExporter | None = None
        self._roster_sent: list[AttendanceRow] | None = None
        self._started = time.monotonic()
        self._paused_s = 0.0
        self._frame: tuple[int, bytes] | None = None  # (faces, JPEG) of the fullest annotated frame so far

    def commit(self) -> None:
        """Creates the session's row (Conflict when the name is taken); the source is closed on failure."""
        if self._committed:
            return
        try:
            self.store.create_session(self.row)
        except BaseException:
            self.discard()
            raise
        self._committed = True

    def discard(self) -> None:
        """The session never started: do not hold the camera or file."""
        self.source.close()

    # ---- progress ---------------------------------------------------------------------------------

    def progress(self) -> Progress:
        frame = self.source.position()
        total = self.source.total
        elapsed = max(1e-6, time.monotonic() - self._started - self._paused_s)
        fps = frame / elapsed
        percent = eta = None
        if total:
            percent = round(min(100.0, 100.0 * frame / total), 2)
            eta = round(max(0, total - frame) / fps, 1) if fps > 0 else None
        return Progress(
            session_id=self.row.id, mode=self.row.mode,
            frame=frame, total=total, percent=percent, fps=round(fps, 1), elapsed_s=round(elapsed, 1),
            eta_s=eta, paused=self.control.paused, faces=self._faces, present=len(self.book.present_indices()),
            started_by=self.plan.started_by,
        )

    # ---- the loop -----------------------------------------------------------------------------------

    def run(self) -> SessionRow:
        """Runs to the end of the file, the duration, a stop request or an error; always stores the outcome."""
        self.commit()  # a no-op when the caller committed already (the daemon does, under its state lock)
        status, error = "completed", None
        try:
            self._loop()
            if self.control.stopped:
                status, error = "stopped", self.control.reason
        except AttendanceError as exc:
            status, error = "failed", exc.message
        except OSError as exc:  # a full disk or an unwritable export: the session fails, the daemon lives
            status, error = "failed", f"{type(exc).__name__}: {exc}"
        except sqlite3.Error as exc:  # e.g. "database or disk is full": what was flushed before is kept
            log.error("session %s: database error: %s", self.row.name, exc)
            status, error = "failed", f"database error: {exc}"
        except Exception as exc:
            log.exception("session %s failed", self.row.name)
            status, error = "failed", f"internal error: {type(exc).__name__}: {exc}"
        finally:
            self.source.close()
            if self._exporter is not None:
                self._exporter.close()
        self.row.warnings = self.source.warnings()
        for warning in self.row.warnings:
            log.warning("session %s: %s", self.row.name, warning)
        if error:
            self.hooks.event("error", session_id=self.row.id, error=error)
        self._finish(status, error)
        return self.row

    def _loop(self) -> None:
        dcfg = self.cfg.daemon
        frames = self.source.frames()
        next_progress = next_snapshot = next_flush = next_beat = next_roster = 0.0
        min_progress, min_snap = 1.0 / dcfg.progress_hz, (1.0 / dcfg.snapshot_hz if dcfg.snapshot_hz else None)
        while not self.control.stopped:
            if self.control.paused:
                self._wait_paused()
                continue
            frame = next(frames, None)
            if frame is None:
                self._settle(self.recognizer.finish(), self._last_t)
                return
            self._last_t = frame.t
            outcome = self.recognizer.process(frame)
            self._faces = len(outcome.labels)
            self._settle(outcome, frame.t)
            now = time.monotonic()
            annotated = None
            if self.plan.export:
                annotated = annotate(frame.bgr, outcome.labels)
                if self._exporter is None:
                    path = self.cfg.paths.exports / f"{self.row.name}.mp4"
                    self._exporter = VideoExporter(path, self.source.fps, (frame.bgr.shape[1], frame.bgr.shape[0]))
                    self.row.export_path = str(path)
                    self.store.update_session(self.row.id, export_path=self.row.export_path)
                self._exporter.write(annotated)
            if min_snap is not None and now >= next_snapshot:
                snap = jpeg(annotated if annotated is not None else annotate(frame.bgr, outcome.labels))
                self.hooks.snapshot(snap)
                if self._frame is None or len(outcome.labels) > self._frame[0]:
                    self._frame = (len(outcome.labels), snap)
                next_snapshot = now + min_snap
            if now >= next_progress:
                self.hooks.progress(self.progress())
                next_progress = now + min_progress
            if now >= next_flush:
                self._flush()
                next_flush = now + dcfg.flush_every_s
            if now >= next_roster:
                self._send_roster(final=False)
                next_roster = now + 1.0
            if now >= next_beat:
                self.hooks.heartbeat()
                next_beat = now + 0.5
            if self.plan.duration_s is not None and frame.t >= self.plan.duration_s:
                self._settle(self.recognizer.finish(), frame.t)
                return

    def _settle(self, outcome: FrameOutcome, t: float) -> None:
        """What the encodings decided: unknown visitors kept or retracted, students who just became present."""
        for face in outcome.new_unknowns:
            self._save_unknown(face)
        for track_id in outcome.retracted_unknowns:
            self._retract_unknown(track_id)
        for idx in self.book.newly_present():
            s = self.book.roster[idx]
            self.hooks.event("student_present", session_id=self.row.id, student_id=s.student_id,
                             name=s.name, at_s=round(t, 2))

    def _wait_paused(self) -> None:
        """Holds the decoder where it is; the file resumes at the very next frame."""
        self._flush()
        self._set_status("paused")
        if isinstance(self.source, CameraSource):
            self.source.pause_clock()
        self.hooks.progress(self.progress())
        t0 = time.monotonic()
        while self.control.paused and not self.control.stopped:
            self.control.wait_running(0.5)
            self.hooks.heartbeat()
        self._paused_s += time.monotonic() - t0
        self.source.resumed()
        if not self.control.stopped:
            self._set_status("running")
            self.hooks.progress(self.progress())

    def _send_roster(self, final: bool) -> None:
        """The live roster, only when it changed (or is final)."""
        rows = self.book.rows()
        if final or rows != self._roster_sent:
            self._roster_sent = rows
            self.hooks.attendance(self.row, self.book.roster, rows, final)

    def _set_status(self, status: str) -> None:
        self.row.status = status
        self.store.update_session(self.row.id, status=status)

    def _flush(self) -> None:
        self._save_attendance()
        self._check_space()

    def _save_attendance(self) -> None:
        """Attendance so far, with how far the source got (frames and video time), in one store write."""
        self.row.frames_processed = self.source.position()
        self.row.video_s = round(self._last_t, 2)
        self.store.save_attendance(self.row.id, self.book.rows(), self.row.frames_processed, self.row.video_s)

    def _check_space(self) -> None:
        """End the session while there is still room to store its outcome: OpenCV's VideoWriter drops
        frames silently on a full disk, and SQLite then fails mid-write."""
        floor = self.cfg.daemon.min_free_mb / 2
        free = free_mb(self.cfg)
        if free < floor:
            raise InsufficientStorage(f"disk almost full: {free:.1f} MB free on the data directory, below "
                                      f"{floor:g} MB (half of daemon.min_free_mb); recording stopped")

    def _save_unknown(self, face: UnknownFace) -> None:
        path = self.cfg.paths.unknowns / self.row.name / f"track-{face.track_id:05d}-{face.t:08.2f}s.jpg"
        save_crop(cv2.cvtColor(face.crop.rgb, cv2.COLOR_RGB2BGR), face.crop.face_box(), path)
        face_id = self.store.add_unknown(self.row.id, face.track_id, str(path), round(face.t, 2), face.encoding)
        # no path of the box leaves it (events reach the central broker): the crop's place in the data directory
        shown = path.relative_to(self.cfg.paths.data_dir).as_posix()
        self.hooks.event("unknown_face", session_id=self.row.id, track_id=face.track_id, crop_path=shown,
                         at_s=round(face.t, 2), face_id=face_id)

    def _retract_unknown(self, track_id: int) -> None:
        """A track kept as an unknown visitor later proved to be a student: the visitor was never there."""
        sweep(self.cfg, self.store, self.store.remove_unknown(self.row.id, track_id))  # the crop shows a student

    def _finish(self, status: str, error: str | None) -> None:
        try:
            self._save_attendance()  # not _flush: no space check, the outcome must be stored now
        except Exception as exc:  # noqa: BLE001 -- the status below must be stored even if this flush fails
            log.error("final attendance flush of %s failed: %s", self.row.name, exc)
            status, error = "failed", error or f"could not save attendance: {exc}"
        self.row.status, self.row.error, self.row.ended_at = status, error, now_iso()
        self.store.update_session(self.row.id, status=status, error=error, ended_at=self.row.ended_at,
                                  frames_processed=self.row.frames_processed, warnings=self.row.warnings)
        self.hooks.progress(self.progress())
        self._send_roster(final=True)
        self._keep_frame()

    def _keep_frame(self) -> None:
        """The annotated frame that showed the most faces stays fetchable (`snapshot` by session id)."""
        if self._frame is None:
            return
        try:
            path = self.cfg.paths.frames / f"{self.row.id}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(self._frame[1])
            tmp.replace(path)
        except OSError as exc:  # a full disk: the results are stored, only the frame is missing
            log.error("session %s: cannot keep its annotated frame: %s", self.row.name, exc)
