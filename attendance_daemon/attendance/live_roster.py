"""The live roster (retained on R/attendance): every student of the section with what was seen so far.

Pure: built from the roster and the attendance rows a session holds (or the store kept), no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

from ..common.timeutil import iso, parse_iso
from ..contract.api import AttendanceStatus, LiveRoster, RosterStudent
from ..contract.record_api import ATTENDED
from ..store.records import AttendanceRow, SessionRow, StudentRow


def live_roster(device_id: str, session: SessionRow, roster: Sequence[StudentRow], rows: Sequence[AttendanceRow],
                min_presence_s: float, final: bool, updated_at: str,
                statuses: Mapping[str, AttendanceStatus] | None = None) -> LiveRoster:
    """Roster order; a student not seen yet has `present` false, `seen_s` 0 and null times. Wall-clock times are
    the session's start plus the video time (a file is taken as recorded from the session's start). A student
    seen but removed from the section since is listed after the roster. `statuses` (an ended session's record,
    corrections included) set each student's `status`, and `present` follows it."""
    start = parse_iso(session.started_at)
    seen = {r.student_id: r for r in rows}

    def at(t: float) -> str:
        return iso(start + timedelta(seconds=t))

    def entry(student_id: str, name: str) -> RosterStudent:
        r = seen.get(student_id)
        if r is None:
            return RosterStudent(student_id=student_id, name=name, present=False, seen_s=0.0, first_seen_s=None,
                                 last_seen_s=None, first_seen_at=None, last_seen_at=None)
        return RosterStudent(student_id=student_id, name=r.name, present=r.seen_s >= min_presence_s,
                             seen_s=round(r.seen_s, 2), first_seen_s=round(r.first_seen_s, 2),
                             last_seen_s=round(r.last_seen_s, 2), first_seen_at=at(r.first_seen_s),
                             last_seen_at=at(r.last_seen_s))

    listed = {s.student_id for s in roster}
    students = [entry(s.student_id, s.name) for s in roster]
    students += [entry(r.student_id, r.name) for r in rows if r.student_id not in listed]
    if statuses is not None:
        students = [s.model_copy(update={"status": statuses[s.student_id], "present": statuses[s.student_id] in
                                         ATTENDED}) if s.student_id in statuses else s for s in students]
    return LiveRoster(device_id=device_id, session_id=session.id, section=session.section, final=final,
                      updated_at=updated_at, students=students)
