"""The record at the hub (issue 20): each student's effective status in a stored payload, the summary of a
cross-room report with the record's percentages, and a stored payload made whole for the exports. Payloads of
boxes without the record lack the statuses: they follow from recognition's facts as a box derives them (late
wins over left early), and their sessions are final (no one will finalise them). Pure: dicts in, values out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast, get_args

from pydantic import ConfigDict

from ..attendance.record import recognised_status
from ..contract.api import AbsentStudent, AttendanceStatus, PresentStudent, Results
from ..contract.record_api import ATTENDED

STATUSES: tuple[AttendanceStatus, ...] = get_args(AttendanceStatus)


class PresentIn(PresentStudent):
    model_config = ConfigDict(extra="allow")


class AbsentIn(AbsentStudent):
    model_config = ConfigDict(extra="allow")


class ResultsIn(Results):
    """The contract's Results, tolerant of fields a newer box adds, in the students too (stored as published):
    a box upgraded before its hub is not refused for what it added."""

    model_config = ConfigDict(extra="allow")
    present: list[PresentIn]  # type: ignore[assignment]  # the same fields, extra ones allowed
    absent: list[AbsentIn]  # type: ignore[assignment]


def student_status(entry: Mapping[str, Any], listed_present: bool) -> tuple[AttendanceStatus, AttendanceStatus, bool]:
    """(effective status, recognised status, corrected) of one student of a Results payload; `listed_present`:
    the student is in `present` (the record says they attended), else in `absent`."""
    derived = recognised_status(listed_present, entry.get("late") is True, entry.get("left_early") is True)
    status = entry.get("status")
    recognised = entry.get("recognised_status")
    return (cast(AttendanceStatus, status) if status in STATUSES else derived,
            cast(AttendanceStatus, recognised) if recognised in STATUSES else derived,
            entry.get("corrected") is True)


def with_record(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A stored payload as a box with the record would have sent it: a box without the record's students get
    their derived statuses, its session is `final`."""
    out = dict(payload)
    out.setdefault("record", "final")
    for key, listed_present in (("present", True), ("absent", False)):
        students = []
        for entry in payload.get(key) or []:
            if isinstance(entry, dict) and "status" not in entry:
                status, recognised, _ = student_status(entry, listed_present)
                students.append({**entry, "status": status, "recognised_status": recognised})
            else:
                students.append(entry)
        out[key] = students
    return out


def summary(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per student of a report's rows (each with `student_id` and `attendance_status`): `sessions`, `present`
    (attended: present, late or left early), `late`, `excused`, `counted` (the sessions that count: all but the
    excused ones) and `percent` (present of counted, one decimal; null when none counts)."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        s = out.setdefault(str(row["student_id"]), {"sessions": 0, "present": 0, "late": 0, "excused": 0})
        status = row["attendance_status"]
        s["sessions"] += 1
        s["present"] += status in ATTENDED
        s["late"] += status == "late"
        s["excused"] += status == "excused"
    for s in out.values():
        s["counted"] = s["sessions"] - s["excused"]
        s["percent"] = round(100.0 * s["present"] / s["counted"], 1) if s["counted"] else None
    return out
