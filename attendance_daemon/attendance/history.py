"""Attendance over time: each student's status in each session of a section, their percentage, and who fell
below the alert threshold. No I/O: rows in, facts out.

What counts: the section's sessions that ended `completed`, `stopped` or `interrupted` (a `failed` one, whose
camera or disk gave out, says nothing about the students), started at or after the student was enrolled.
Attended = present or late (seen at least `recognition.min_presence_s`); percent = attended / counted."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ..store import SessionRow
from .punctuality import PunctualityRule

COUNTED = ("completed", "stopped", "interrupted")
Status = Literal["present", "late", "absent"]


@dataclass(frozen=True)
class Mark:
    session: SessionRow
    status: Status
    seen_s: float


@dataclass(frozen=True)
class Tally:
    counted: int
    attended: int
    late: int

    @property
    def percent(self) -> float | None:
        return round(100.0 * self.attended / self.counted, 1) if self.counted else None


Seen = dict[tuple[str, str], tuple[float, float]]  # (session id, student id) -> (seen_s, first_seen_s)


_RANK = {"absent": 0, "late": 1, "present": 2}


def marks(sessions: Iterable[SessionRow], seen: Seen, student_id: str, enrolled_at: str, min_presence_s: float,
          rule: PunctualityRule, into_lesson: dict[str, float]) -> list[Mark]:
    """The student's mark in each counted session since their enrollment, in the order given. The sessions of
    one lesson (it was resumed after the daemon restarted) are one mark: the first session's, with the best
    status and the seconds seen in all of them."""
    found: list[Mark] = []
    by_lesson: dict[str, int] = {}
    for s in sessions:
        if s.status not in COUNTED or s.started_at < enrolled_at:
            continue
        seen_s, first_s = seen.get((s.id, student_id), (0.0, 0.0))
        status: Status = "absent"
        if seen_s >= min_presence_s:
            status = "late" if rule.late(into_lesson.get(s.id, 0.0) + first_s) else "present"
        if s.lesson is not None and s.lesson in by_lesson:
            i = by_lesson[s.lesson]
            prev = found[i]
            best = status if _RANK[status] > _RANK[prev.status] else prev.status
            found[i] = Mark(prev.session, best, round(prev.seen_s + seen_s, 2))
            continue
        if s.lesson is not None:
            by_lesson[s.lesson] = len(found)
        found.append(Mark(s, status, round(seen_s, 2)))
    return found


def tally(found: Iterable[Mark]) -> Tally:
    found = list(found)
    return Tally(len(found), sum(m.status != "absent" for m in found), sum(m.status == "late" for m in found))


def fell_below(before: Tally, after: Tally, below_percent: float, min_sessions: int) -> bool:
    """True once per fall: below the threshold now (with enough sessions) and not below it before."""
    if after.counted < min_sessions or after.percent is None or after.percent >= below_percent:
        return False
    was_below = before.counted >= min_sessions and before.percent is not None and before.percent < below_percent
    return not was_below
