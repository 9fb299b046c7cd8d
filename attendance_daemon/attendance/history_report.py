"""The `student_history` and `section_attendance` answers and the `attendance_low` alerts, from the store
(the rules are history.py's)."""

from __future__ import annotations

from dataclasses import dataclass

from ..common.errors import NotFound
from ..config import Config
from ..contract.history_api import HistorySession, SectionAttendance, StudentHistory, StudentPercent
from ..store import SessionRow, Store
from .history import COUNTED, Mark, Tally, fell_below, marks, tally
from .punctuality import PunctualityRule
from .record import effective_status
from .results import into_lesson_s

# Sessions of one section read for one answer or alert (the newest kept): years of daily lessons.
MAX_HISTORY_SESSIONS = 5000


def _rule(cfg: Config) -> PunctualityRule:
    return PunctualityRule(cfg.attendance.late_after_s, cfg.attendance.left_early_before_s)


def _all_marks(store: Store, cfg: Config, section: str, since: str | None, until: str | None,
               ) -> tuple[dict[str, tuple[str, str]], dict[str, list[Mark]], int]:
    roster = store.enrolled(section)
    sessions, seen = store.section_history(section, COUNTED, since, until, MAX_HISTORY_SESSIONS)
    offsets = {s.id: into_lesson_s(s) for s in sessions if s.lesson_start}
    rule, min_s = _rule(cfg), cfg.recognition.min_presence_s
    corrected = {key: effective_status("absent", row)
                 for key, row in store.corrections_in([s.id for s in sessions]).items()}
    return roster, {sid: marks(sessions, seen, sid, at, min_s, rule, offsets, corrected)
                    for sid, (_, at) in roster.items()}, len(sessions)


def student_history(store: Store, cfg: Config, section: str, student_id: str, since: str | None,
                    until: str | None, limit: int) -> StudentHistory:
    roster, by_student, _ = _all_marks(store, cfg, section, since, until)
    if student_id not in roster:
        raise NotFound(f"student_id: no student '{student_id}' in section '{section}'")
    found = by_student[student_id]
    t = tally(found)
    return StudentHistory(
        section=section, student_id=student_id, name=roster[student_id][0],
        sessions=[HistorySession(session_id=m.session.id, name=m.session.name, started_at=m.session.started_at,
                                 lesson=m.session.lesson, status=m.status, seen_s=m.seen_s, corrected=m.corrected)
                  for m in reversed(found[-limit:])],
        counted=t.counted, attended=t.attended, late=t.late, percent=t.percent)


def section_attendance(store: Store, cfg: Config, section: str, since: str | None,
                       until: str | None) -> SectionAttendance:
    roster, by_student, n = _all_marks(store, cfg, section, since, until)
    students = []
    for sid in sorted(roster):
        t = tally(by_student[sid])
        students.append(StudentPercent(student_id=sid, name=roster[sid][0], counted=t.counted,
                                       attended=t.attended, late=t.late, percent=t.percent))
    return SectionAttendance(section=section, sessions=n, alert_below_percent=cfg.attendance.alert_below_percent,
                             students=students)


@dataclass(frozen=True)
class LowAttendance:
    """One `attendance_low` event's fields."""

    section: str
    student_id: str
    name: str
    percent: float | None
    counted: int
    attended: int
    alert_below_percent: float
    session_id: str


def low_attendance(store: Store, cfg: Config, session: SessionRow) -> list[LowAttendance]:
    """The `attendance_low` events that `session` (just finished) causes: each student whose percentage in its
    section fell below `attendance.alert_below_percent` with it (once per fall). Empty when the alert is off."""
    below, need = cfg.attendance.alert_below_percent, cfg.attendance.alert_min_sessions
    if below is None or session.status not in COUNTED or not store.section_exists(session.section):
        return []
    roster, by_student, _ = _all_marks(store, cfg, session.section, None, None)
    events = []
    for sid, found in sorted(by_student.items()):
        after = tally(found)
        before: Tally = tally(m for m in found if m.session.id != session.id)
        if before.counted < after.counted and fell_below(before, after, below, need):
            events.append(LowAttendance(session.section, sid, roster[sid][0], after.percent, after.counted,
                                        after.attended, below, session.id))
    return events
