"""Payloads of the teacher's record (issue 20): corrections and their undo, the audit trail, finalising and
reopening, record exports and the absence notice."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictInt, StrictStr

from ..common.names import DisplayName, LookupText, ShortText
from .api import AttendanceStatus, Payload, RecordStage, Request, SessionSummary

# Attended: counts for the student in percentages; excused counts neither for nor against; absent against.
ATTENDED: frozenset[AttendanceStatus] = frozenset({"present", "late", "left_early"})
# Moodle mod_attendance's default status set (P, L, E, A); it has no "left early", which reads as present
MOODLE_ACRONYMS: dict[AttendanceStatus, str] = {"present": "P", "late": "L", "left_early": "P", "excused": "E",
                                                "absent": "A"}
MAX_NOTE = 500  # a reason ("doctor's note", "sat at the back with a scarf"), not a letter
Note = Annotated[StrictStr, Field(max_length=MAX_NOTE)]


class CorrectRequest(Request):
    session_id: LookupText
    student_id: LookupText
    status: AttendanceStatus
    note: Note = ""
    client: DisplayName | None = None  # who corrected (a teacher's name, a dashboard), kept in the trail


class UndoRequest(Request):
    """Takes back the student's newest correction in force."""

    session_id: LookupText
    student_id: LookupText
    note: Note = ""
    client: DisplayName | None = None


MAX_TRAIL_PAGE = 1000  # trail entries per `corrections` answer (a page of 1000 notes is at most ~700 KB)


class TrailRequest(Request):
    """A session's trail, a page at a time: the entries after `after_id`, oldest first."""

    session_id: LookupText
    after_id: StrictInt = Field(0, ge=0, le=2**62)
    limit: StrictInt = Field(MAX_TRAIL_PAGE, ge=1, le=MAX_TRAIL_PAGE)


class RecordRequest(Request):
    """`finalize` or `reopen` a session's record."""

    session_id: LookupText
    note: Note = ""
    client: DisplayName | None = None


ExportFormat = Literal["moodle", "csv", "json"]


class ExportRequest(Request):
    """`export`: one session's record (`session_id`), or a section's over a date range (`section`, `since`,
    `until`), as Moodle's mark-sessions CSV (a ZIP of one per session for a range), a flat CSV or JSON."""

    format: ExportFormat
    session_id: LookupText | None = None
    section: LookupText | None = None
    since: ShortText | None = None  # a date (a whole day in the box's zone) or an ISO 8601 time
    until: ShortText | None = None
    include_drafts: StrictBool = False  # by default only final records are exported


class LogEntry(Payload):
    """One audited change: `correct` (student_id, status), `undo` (student_id, `undoes` the correction's id),
    `finalize`, `reopen`. `undone_by` names the undo that took a correction back."""

    id: int
    action: Literal["correct", "undo", "finalize", "reopen"]
    student_id: str | None
    status: AttendanceStatus | None
    undoes: int | None
    undone_by: int | None
    note: str
    client: str | None
    mqtt_user: str | None
    at: str


class Trail(Payload):
    session_id: str
    record: Literal["live", "draft", "final"]
    revision: int
    corrections: list[LogEntry]
    more: bool = False  # more entries follow: ask again with after_id = the last entry's id


class RecordState(Payload):
    """The answer to correct, undo_correction, finalize and reopen: what changed and the record now."""

    session_id: str
    record: Literal["live", "draft", "final"]
    revision: int
    finalized_at: str | None
    change: LogEntry | None = None


class NoticeStudent(Payload):
    student_id: str
    name: str
    status: AttendanceStatus
    arrived_at: str | None = None


class Absences(Payload):
    """The `absences` event (on R/events, not retained) when a record becomes final: who was absent and who was
    late, with a ready subject and text for a notification or an e-mail."""

    type: Literal["absences"] = "absences"
    at: str
    device_id: str | None
    section: str
    session_id: str
    session: str
    date: str
    finalized_at: str | None
    absent: list[NoticeStudent]
    late: list[NoticeStudent]
    absent_count: int
    late_count: int
    subject: str
    text: str


class SessionEntry(SessionSummary):
    """What `sessions` lists: a summary and the state of its record (a teacher looks for the drafts to sign)."""

    record: RecordStage
    revision: int
