"""The timetable's edge: once a second, asks the LessonPlanner what to do and does it through the daemon's
own start and stop (the same state machine, so the same 409 lock rules as MQTT requests), with an event for
each step. Runs on its own thread. The decisions are the pure LessonPlanner's (tested with plain datetimes); this
edge only reads the clock and the store and acts, and is tested end to end on the real daemon.

It never holds the state machine's lock: starting a lesson opens its camera on this thread before the commit,
like a `start_webcam` request does on the dispatcher's."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime, tzinfo

from ..common.errors import AttendanceError, Conflict
from ..common.timeutil import local_iso, utcnow
from ..contract import api
from ..store import Store
from ..timetable.entries import lessons_of, next_lesson
from ..timetable.planner import Action, LessonPlanner, Running
from ..timetable.week import Lesson, Occurrence, ended_today, next_after

log = logging.getLogger(__name__)

TICK_S = 1.0
# A lesson session stopped with this reason (the daemon shutting down) is started again when the daemon is back
# within the lesson; one stopped by a request, or one that completed or failed, is not.
SHUTDOWN_REASON = "the daemon was shut down during the session"


class Scheduler:
    def __init__(self, store: Store, zone: tzinfo, start: Callable[[Occurrence, datetime], api.State],
                 stop: Callable[[str], object], running: Callable[[], Running | None],
                 event: Callable[..., object], on_next: Callable[[], None],
                 public: Callable[[str], str] = str, clock: Callable[[], datetime] = utcnow) -> None:
        self._store, self._zone, self._clock = store, zone, clock
        self._start, self._stop, self._running, self._on_next = start, stop, running, on_next
        self._public = public  # error texts leave the box as a Response's do: no paths of the box
        self.publish_event = event
        self.planner = LessonPlanner()
        self.next: api.NextLesson | None = None  # read lock-free by the state's publisher

    def lessons(self) -> list[Lesson]:
        try:
            return lessons_of(self._store.timetable())
        except ValueError as exc:  # written checked; only a hand-edited database gets here
            log.error("timetable in the database is inconsistent, ignored: %s", exc)
            return []

    def recover(self) -> None:
        """At start-up: lessons of today already handled are not started again; today's lessons that ended while
        the daemon was down are reported (`lesson_missed`), and one under way is started late by the next tick.
        Skips are not stored, so a lesson skipped earlier today also counts as missed here: no session has it."""
        now, lessons = self._clock(), self.lessons()
        today = ended_today(lessons, self._zone, now)
        day = now.astimezone(self._zone).date()
        keys = [f"{x.lesson_id}@{day.isoformat()}" for x in lessons]
        statuses = self._store.lesson_statuses(keys)
        self.planner.settle({k for k, found in statuses.items()
                             if any(s != "interrupted" and err != SHUTDOWN_REASON for s, err in found)})
        for occ in today:
            if occ.key not in statuses:
                self.planner.settle({occ.key})
                self._tell("lesson_missed", occ, "no session was recorded for it: the daemon was not running "
                           "(or it was skipped before a restart)")
        self._update_next(now, lessons)

    def changed(self) -> None:
        """The timetable changed: recompute the next lesson at once (called after a schedule command)."""
        self._update_next(self._clock(), self.lessons())

    def tick(self) -> None:
        now, lessons = self._clock(), self.lessons()
        for action in self.planner.step(lessons, self._zone, now, self._running()):
            self._do(action, now)
        self._update_next(now, lessons)

    def run(self, shutdown: threading.Event) -> None:
        while not shutdown.wait(TICK_S):
            try:
                self.tick()
            except Exception:  # one bad tick (e.g. the database vanished) must not end the timetable
                log.exception("scheduler tick failed; carrying on")

    def _do(self, action: Action, now: datetime) -> None:
        occ = action.occ
        if action.kind == "stop":
            assert action.session_id is not None
            with contextlib.suppress(Conflict):  # it ended by itself meanwhile
                self._stop(action.session_id)
        elif action.kind in ("wait", "skip"):
            self._tell("lesson_waiting" if action.kind == "wait" else "lesson_skipped", occ, action.reason,
                       action.session_id)
        else:
            self._begin(occ, now, action.late_start)

    def _begin(self, occ: Occurrence, now: datetime, late_start: bool) -> None:
        try:
            state = self._start(occ, now)
        except Conflict as exc:  # a manual start won the race for the camera
            self.planner.refused(occ)
            running = self._running()
            self._tell("lesson_waiting", occ, self._public(f"{exc.message}; the lesson starts when the camera is free"),
                       running.session_id if running else None)
        except AttendanceError as exc:
            self.planner.failed(occ)
            log.error("lesson %s could not start: %s", occ.key, exc.message)
            self._tell("lesson_skipped", occ, self._public(f"could not start: {exc.message}"))
        else:
            assert state.session is not None
            self._tell("lesson_started", occ, "", state.session.id, late_start)

    def _tell(self, kind: str, occ: Occurrence, reason: str, session_id: str | None = None,
              late_start: bool = False) -> None:
        """One event per lesson step; each call spelled out so the docs test sees every field."""
        log.info("%s: %s%s", kind, occ.key, f" ({reason})" if reason else "")
        x, start, end = occ.lesson, local_iso(occ.start, self._zone), local_iso(occ.end, self._zone)
        if kind == "lesson_started":
            self.publish_event("lesson_started", lesson=occ.key, lesson_id=x.lesson_id, section=x.section,
                               lesson_start=start, lesson_end=end, session_id=session_id, late_start=late_start)
        elif kind == "lesson_waiting":
            self.publish_event("lesson_waiting", lesson=occ.key, lesson_id=x.lesson_id, section=x.section,
                               lesson_start=start, lesson_end=end, session_id=session_id, reason=reason)
        elif kind == "lesson_skipped":
            self.publish_event("lesson_skipped", lesson=occ.key, lesson_id=x.lesson_id, section=x.section,
                               lesson_start=start, lesson_end=end, reason=reason)
        else:
            assert kind == "lesson_missed", kind
            self.publish_event("lesson_missed", lesson=occ.key, lesson_id=x.lesson_id, section=x.section,
                               lesson_start=start, lesson_end=end, reason=reason)

    def _update_next(self, now: datetime, lessons: list[Lesson]) -> None:
        upcoming = next_lesson(next_after(lessons, self._zone, now), self._zone)
        if upcoming != self.next:
            self.next = upcoming
            self._on_next()
