"""What the scheduler should do now: start, wait for, skip or stop lessons. No I/O, no clock of its own.

The planner remembers each lesson occurrence it handled (by key, `<lesson_id>@<date>`), so a lesson is started
at most once: a scheduled session stopped by hand, or one that failed, is not restarted in the same lesson.
The running session is the global lock: when a manual session holds it at a lesson's start the lesson waits
(`wait`), starts when the camera is free if the lesson is still on, and is `skip`ped when the lesson ends first.
A lesson that is under way when the planner first looks (the box was off at its start) is started late."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Literal

from .week import Lesson, Occurrence, current

# A lesson's session ends itself at the lesson's end (its duration); one still running this long after (it was
# paused, so its video time fell behind the clock) is stopped.
OVERRUN_S = 10.0


@dataclass(frozen=True)
class Running:
    """The session holding the lock, and the lesson it was started for (None: a manual session)."""

    session_id: str
    lesson_key: str | None


@dataclass(frozen=True)
class Action:
    kind: Literal["start", "wait", "skip", "stop"]
    occ: Occurrence
    late_start: bool = False
    session_id: str | None = None  # for `stop`
    reason: str = ""


@dataclass
class LessonPlanner:
    started: dict[str, Occurrence] = field(default_factory=dict)
    waiting: dict[str, Occurrence] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    on_time: dict[str, bool] = field(default_factory=dict)  # seen under way at the first look after its start?
    last_look: datetime | None = None

    def settle(self, keys: set[str]) -> None:
        """Occurrences already handled (e.g. by an earlier run of the daemon): never started again."""
        self.done |= keys

    def step(self, lessons: list[Lesson], zone: tzinfo, now: datetime, running: Running | None) -> list[Action]:
        actions: list[Action] = []
        previous, self.last_look = self.last_look, now
        self._forget_before(now.astimezone(zone).date() - timedelta(days=2))
        ran = self.started.get(running.lesson_key) if running and running.lesson_key else None
        # the session of a lesson that has ended: it ends itself (its duration), else it is stopped after OVERRUN_S
        overrun = running is not None and ran is not None and ran.end <= now
        stopped = False
        if running and ran is not None and ran.end + timedelta(seconds=OVERRUN_S) <= now:
            actions.append(Action("stop", ran, session_id=running.session_id, reason="the lesson ended"))
            running, overrun, stopped = None, False, True
        for key, held in list(self.waiting.items()):
            if held.end <= now:
                del self.waiting[key]
                self.done.add(key)
                actions.append(Action("skip", held, reason="a manual session held the camera until the lesson ended"))
        occ = current(lessons, zone, now)
        if occ is None or occ.key in self.started or occ.key in self.done:
            return actions
        # on time: the planner's first look at it under way is its first look after the lesson's start (at its
        # very first look, only if the lesson starts just then: the box was off before)
        self.on_time.setdefault(occ.key, previous < occ.start if previous else occ.start >= now)
        if running is None:
            waited = self.waiting.pop(occ.key, None) is not None
            self.started[occ.key] = occ
            actions.append(Action("start", occ, late_start=waited or stopped or not self.on_time[occ.key]))
        elif not overrun and occ.key not in self.waiting:  # (the lesson before, back to back, ends itself now)
            self.waiting[occ.key] = occ
            holder = "a manual session" if running.lesson_key is None else f"the session of {running.lesson_key}"
            actions.append(Action("wait", occ, session_id=running.session_id,
                                  reason=f"{holder} holds the camera; the lesson starts when it ends"))
        return actions

    def _forget_before(self, day: date) -> None:
        """Keeps the memory bounded: occurrences from before `day` cannot come back."""
        cutoff = day.isoformat()
        self.done = {k for k in self.done if k.rsplit("@", 1)[-1] >= cutoff}
        self.started = {k: o for k, o in self.started.items() if o.day >= day}
        self.on_time = {k: v for k, v in self.on_time.items() if k.rsplit("@", 1)[-1] >= cutoff}

    def refused(self, occ: Occurrence) -> None:
        """The start lost a race with a manual start (409): wait for the camera like any busy lesson."""
        self.started.pop(occ.key, None)
        self.waiting[occ.key] = occ

    def failed(self, occ: Occurrence) -> None:
        """The start failed for good (unknown section, camera that does not open): not retried this lesson."""
        self.started.pop(occ.key, None)
        self.done.add(occ.key)
