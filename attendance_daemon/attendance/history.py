"""Attendance over time: each student's status in each session of a section, their percentage, and who fell
below the alert threshold. No I/O: rows in, facts out.

What counts: the section's sessions that ended `completed`, `stopped` or `interrupted` (a `failed` one, whose
camera or disk gave out, says nothing about the students), started at or after the student was enrolled.
Attended = present or late (seen at least `recognition.min_presence_s`), or what a teacher's correction says
(present, late, left_early attend; excused is not counted at all); percent = attended / counted."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..contract.api import AttendanceStatus
from ..store import SessionRow
from .punctuality import PunctualityRule
from .record import ATTENDED

COUNTED = ("completed", "stopped", "interrupted")
Status = AttendanceStatus


@dataclass(frozen=True)
class Mark:
    session: SessionRow
    status: Status
    seen_s: float
    corrected: bool = False


@dataclass(frozen=True)
class Tally:
    counted: int
    attended: int
    late: int

    @property
    def percent(self) -> float | None:
        return round(100.0 * self.attended / self.counted, 1) if self.counted else None


Seen = dict[tuple[str, str], tuple[float, float]]  # (session id, student id) -> (seen_s, first_seen_s)


_RANK = {"absent": 0, "excused": 1, "late": 2, "left_early": 3, "present": 4}
Corrected = dict[tuple[str, str], AttendanceStatus]  # (session id, student id) -> the correction in force


def marks(sessions: Iterable[SessionRow], seen: Seen, student_id: str, enrolled_at: str, min_presence_s: float,
          rule: PunctualityRule, into_lesson: dict[str, float], corrected: Corrected | None = None) -> list[Mark]:
    """The student's mark in each counted session since their enrollment, in the order given; a teacher's
    correction replaces what recognition saw. The sessions of one lesson (it was resumed after the daemon
    restarted) are one mark: the first session's, with the best status and the seconds seen in all of them."""
    found: list[Mark] = []
    by_lesson: dict[str, int] = {}
    for s in sessions:
        if s.status not in COUNTED or s.started_at < enrolled_at:
            continue
        seen_s, first_s = seen.get((s.id, student_id), (0.0, 0.0))
        status: Status = "absent"
        if seen_s >= min_presence_s:
            status = "late" if rule.late(into_lesson.get(s.id, 0.0) + first_s) else "present"
        correction = (corrected or {}).get((s.id, student_id))
        if s.lesson is not None and s.lesson in by_lesson:
            i = by_lesson[s.lesson]
            prev = found[i]
            best = correction or (status if _RANK[status] > _RANK[prev.status] else prev.status)
            found[i] = Mark(prev.session, best, round(prev.seen_s + seen_s, 2), prev.corrected or bool(correction))
            continue
        if s.lesson is not None:
            by_lesson[s.lesson] = len(found)
        found.append(Mark(s, correction or status, round(seen_s, 2), correction is not None))
    return found


def tally(found: Iterable[Mark]) -> Tally:
    """Excused marks count neither for nor against: they are left out of `counted`."""
    found = [m for m in found if m.status != "excused"]
    return Tally(len(found), sum(m.status in ATTENDED for m in found), sum(m.status == "late" for m in found))


def fell_below(before: Tally, after: Tally, below_percent: float, min_sessions: int) -> bool:
    """True once per fall: below the threshold now (with enough sessions) and not below it before."""
    if after.counted < min_sessions or after.percent is None or after.percent >= below_percent:
        return False
    was_below = before.counted >= min_sessions and before.percent is not None and before.percent < below_percent
    return not was_below
