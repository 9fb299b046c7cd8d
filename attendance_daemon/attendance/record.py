"""A student's status in a session's record: what recognition saw (the recognised status) and what the record
says once a teacher's correction is applied (the effective status). No I/O: facts in, statuses out."""

from __future__ import annotations

from typing import get_args

from ..contract.api import AttendanceStatus, Correction
from ..contract.record_api import ATTENDED
from ..store import LogRow

__all__ = ["ATTENDED", "STATUSES", "correction_info", "effective_status", "recognised_status"]

STATUSES: tuple[AttendanceStatus, ...] = get_args(AttendanceStatus)


def recognised_status(seen: bool, late: bool, left_early: bool) -> AttendanceStatus:
    """One status from recognition's facts: late wins over left_early (a record has one mark per student; the
    booleans stay in Results for both)."""
    if not seen:
        return "absent"
    if late:
        return "late"
    return "left_early" if left_early else "present"


def effective_status(recognised: AttendanceStatus, correction: LogRow | None) -> AttendanceStatus:
    if correction is None or correction.status not in STATUSES:
        return recognised
    return correction.status


def correction_info(row: LogRow | None) -> Correction | None:
    if row is None or row.status not in STATUSES:
        return None
    return Correction(id=row.id, status=row.status, note=row.note, client=row.client,
                      mqtt_user=row.mqtt_user, at=row.at)
