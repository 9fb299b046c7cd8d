"""Payloads of attendance over time (docs/mqtt-api.md "Attendance over time"): a student's history and a
section's percentages."""

from __future__ import annotations

from pydantic import Field, StrictInt

from ..common.names import LookupText, ShortText
from .api import AttendanceStatus, Payload, Request


class HistoryRequest(Request):
    section: LookupText
    student_id: LookupText
    since: ShortText | None = None
    until: ShortText | None = None
    limit: StrictInt = Field(100, ge=1, le=1000)


class HistorySession(Payload):
    session_id: str
    name: str
    started_at: str
    lesson: str | None
    status: AttendanceStatus  # Extension (the record): left_early and excused from a teacher's correction
    seen_s: float
    corrected: bool = False  # Extension (the record): the status is a teacher's correction


class StudentHistory(Payload):
    section: str
    student_id: str
    name: str
    sessions: list[HistorySession]
    counted: int
    attended: int
    late: int
    percent: float | None


class SectionAttendanceRequest(Request):
    section: LookupText
    since: ShortText | None = None
    until: ShortText | None = None


class StudentPercent(Payload):
    student_id: str
    name: str
    counted: int
    attended: int
    late: int
    percent: float | None


class SectionAttendance(Payload):
    section: str
    sessions: int
    alert_below_percent: float | None
    students: list[StudentPercent]

