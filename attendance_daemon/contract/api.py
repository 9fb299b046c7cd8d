"""Pydantic models of every MQTT payload (contract v1 in docs/mqtt-api.md): one source of truth."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationInfo, field_validator

from ..common.names import MAX_PATH, DisplayName, LookupText, MediaName, PathText, SafeId, ShortText

Mode = Literal["idle", "webcam", "mp4"]
SessionStatus = Literal["running", "paused", "completed", "stopped", "failed", "interrupted"]


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- daemon -> clients ---------------------------------------------------------------------------


class SessionInfo(Payload):
    id: str
    name: str
    section: str
    source: str
    export: bool
    started_at: str
    # Extension: who started it (the start's `client`, `timetable` for a lesson), so a dashboard knows its own
    started_by: str | None = None
    # Extension: what holds the camera: a session taking attendance, or `enroll_capture` taking photos
    purpose: Literal["attendance", "enrollment"] = "attendance"


class State(Payload):
    mode: Mode
    busy: bool
    paused: bool
    session: SessionInfo | None
    updated_at: str
    device_id: str | None = None
    # Extension (timetable): the next lesson to start, when the box has a timetable
    next_lesson: NextLesson | None = None


class Progress(Payload):
    session_id: str
    mode: Literal["webcam", "mp4"]
    frame: int
    total: int | None
    percent: float | None
    fps: float
    elapsed_s: float
    eta_s: float | None
    paused: bool
    faces: int
    present: int
    device_id: str | None = None
    started_by: str | None = None  # Extension: as in SessionInfo


class PresenceInterval(Payload):
    """One stretch of presence: video seconds and the same as wall-clock times in the box's zone."""

    start_s: float
    end_s: float
    start: str
    end: str


# The record's statuses (extension, issue 20): one set everywhere. present, late and left_early attended
AttendanceStatus = Literal["present", "late", "left_early", "excused", "absent"]


class Correction(Payload):
    """The teacher's correction in force for a student (the newest not undone)."""

    id: int
    status: AttendanceStatus
    note: str
    client: str | None
    mqtt_user: str | None
    at: str


class PresentStudent(Payload):
    """A student whose effective status is present, late or left_early. One a correction marked so whom the camera
    never saw (`recognised_status` absent) keeps v1's types: seen 0 s, at video second 0 (the session's start)."""

    student_id: str
    name: str
    first_seen_s: float
    last_seen_s: float
    seen_s: float
    arrived_at: str
    left_at: str
    late: bool
    left_early: bool
    intervals: list[PresenceInterval]
    # Extension (the record): the effective status, what recognition saw, and the correction that differs
    status: AttendanceStatus = "present"
    recognised_status: AttendanceStatus = "present"
    corrected: bool = False
    correction: Correction | None = None


class AbsentStudent(Payload):
    student_id: str
    name: str
    # Extension (the record): absent or excused (excused counts neither for nor against attendance)
    status: AttendanceStatus = "absent"
    recognised_status: AttendanceStatus = "absent"
    corrected: bool = False
    correction: Correction | None = None


class SessionSummary(Payload):
    session_id: str
    name: str
    section: str
    mode: Literal["webcam", "mp4"]
    source: str
    status: SessionStatus
    started_at: str
    ended_at: str | None
    frames_processed: int
    present_count: int
    device_id: str | None = None


RecordStage = Literal["live", "draft", "final"]  # a session's record: live while it runs


class Results(SessionSummary):
    """A session summary plus its attendance (the contract's field order is kept)."""

    total: int
    unknowns: int
    present: list[PresentStudent]
    absent: list[AbsentStudent]
    export_path: str | None
    export_codec: str | None
    error: str | None
    timezone: str
    end_s: float | None
    late_after_s: float
    left_early_before_s: float
    # Compatible extension: what the daemon noticed about the source, e.g. a file that ended before the frame
    # count its container announces (truncated), or a frame rate replaced by the frames' timestamps.
    warnings: list[str] = Field(default_factory=list)
    # Extension (timetable): the lesson a scheduled session was started for, and when that lesson began (in the
    # box's zone); `late` then counts from the lesson's start, not the session's
    lesson: str | None = None
    lesson_start: str | None = None
    # Extension (the record): `live` while running; `draft` once ended until finalised (request/finalize or
    # [attendance] finalize_after_h), then `final`; the revision grows with every correction, undo, finalisation
    # and reopening (a consumer keeps the highest); students per effective status
    record: Literal["live", "draft", "final"] = "draft"
    finalized_at: str | None = None
    finalized_by: str | None = None
    revision: int = 0
    counts: dict[AttendanceStatus, int] = Field(default_factory=dict)


class RosterStudent(Payload):
    student_id: str
    name: str
    present: bool
    seen_s: float
    first_seen_s: float | None
    last_seen_s: float | None
    first_seen_at: str | None
    last_seen_at: str | None
    status: AttendanceStatus | None = None  # Extension (the record): once ended, the record's (effective) status


class LiveRoster(Payload):
    """Retained on R/attendance: every roster student of the running (or last) session."""

    device_id: str
    session_id: str
    section: str
    final: bool
    updated_at: str
    students: list[RosterStudent]


class Info(Payload):
    version: str
    device_id: str
    detector: str
    sections: list[dict[str, Any]]
    started_at: str
    # Compatible extension: what keeps the daemon from working normally (e.g. its database file was deleted);
    # empty when all is well. Availability stays `online` while the daemon answers requests.
    problems: list[str] = Field(default_factory=list)
    # Extension (many rooms): section -> {"version", "hash"} of each hub roster applied here ([roster] sections).
    rosters: dict[str, Any] = Field(default_factory=dict)
    # Extension (timetable): the next lesson to start, when the box has a timetable
    next_lesson: NextLesson | None = None
    # Extension: the names of the cameras declared in [cameras] (never their specs, which may hold credentials),
    # so a dashboard can offer them for start_webcam; empty: only the default camera
    cameras: list[str] = Field(default_factory=list)
    requests_refused: dict[str, int] = Field(default_factory=dict)  # Extension: {too_large, busy} (413, 429)


class Response(Payload):
    transaction: Any = None
    status: Literal["ok", "error"]
    code: int = Field(description=(
        "HTTP-like: 200 ok, 400 invalid request (field named), 403 path outside the allowed directories, "
        "404 unknown command/section/session/file, 409 busy or wrong state, 500 internal error, "
        "507 insufficient storage (a start refused: free space on the data directory below daemon.min_free_mb)"))
    data: Any = Field(default_factory=dict)
    error: str | None = None


# ---- clients -> daemon ---------------------------------------------------------------------------
# Strict types: "true" is not a bool and "3" is not an int, so a wrong type is named, never coerced.


class Request(Payload):
    transaction: Any = None


class StartBase(Request):
    section: LookupText
    session_name: SafeId | None = None
    export: StrictBool = False
    client: DisplayName | None = None  # Extension: the starter's name (a browser tab, a tool), shown as started_by


class StartMp4(StartBase):
    media: MediaName | None = None  # Extension: a media library name, instead of `path`
    path: PathText | None = Field(None, validate_default=True)  # v1: a file under the media directory

    @field_validator("path")
    @classmethod
    def _one_source(cls, path: str | None, info: ValidationInfo) -> str | None:
        """Exactly one of `path` and `media`, named with the other fields' errors (checked as a field of its own)."""
        if (path is None) == (info.data.get("media") is None):
            raise ValueError("give exactly one of path (a file under the media directory) and media (a name from "
                             "the media library)")
        return path


class StartWebcam(StartBase):
    camera: Annotated[StrictStr, Field(min_length=1, max_length=MAX_PATH)] | StrictInt | None = None
    duration_s: float | None = Field(None, gt=0)


class SessionGuard(Request):
    session_id: LookupText | None = None


class Empty(Request):
    pass


class SectionRequest(Request):
    section: LookupText


class UploadedImage(Payload):
    """An enrollment photo sent in the request (Extension): `name` is only echoed in `rejected`."""

    name: SafeId
    data: Annotated[StrictStr, Field(min_length=1)]  # base64 JPEG or PNG; bounded in transfer.decode_image


class EnrollRequest(Request):
    section: SafeId
    student_id: SafeId
    name: DisplayName
    images: list[PathText] | None = Field(None, min_length=1)
    images_b64: list[UploadedImage] | None = Field(None, min_length=1)  # Extension: exactly one of the two


class EnrollCaptureRequest(Request):
    section: SafeId
    student_id: SafeId
    name: DisplayName
    seconds: float = Field(10.0, gt=0, le=60)
    max_photos: StrictInt = Field(20, ge=1, le=20)
    camera: Annotated[StrictStr, Field(min_length=1, max_length=MAX_PATH)] | StrictInt | None = None
    client: DisplayName | None = None


class RemoveStudentRequest(Request):
    section: LookupText
    student_id: LookupText


class SessionsRequest(Request):
    section: LookupText | None = None
    since: ShortText | None = None
    until: ShortText | None = None
    status: SessionStatus | None = None
    record: RecordStage | None = None
    limit: StrictInt = Field(50, ge=1, le=1000)


class SessionRequest(Request):
    session_id: LookupText


class ReportRequest(Request):
    session_id: LookupText
    format: Literal["csv", "pdf"] = "csv"
    content: StrictBool = False  # Extension: also answer the report itself (CSV text, PDF base64)


# ---- remote operations (issue 8): fetch, remote enrollment, erasure ---------------------------------------

PositiveId = Annotated[StrictInt, Field(ge=1, le=2**62)]


class FaceRequest(Request):
    face_id: PositiveId


class DismissRequest(Request):
    face_id: PositiveId
    dismissed: StrictBool = True  # false takes a dismissal back


class AssignUnknownRequest(Request):
    face_id: PositiveId
    section: SafeId
    student_id: SafeId
    name: DisplayName | None = None


class StudentRequest(Request):
    section: LookupText
    student_id: LookupText


class PhotoRequest(StudentRequest):
    photo_id: PositiveId


class ForgetStudentRequest(Request):
    student_id: LookupText
    section: LookupText | None = None
    attendance: Literal["anonymise", "remove"] = "anonymise"


# ---- timetable and attendance over time (Extension, issue 8) ------------------------------------------

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ClockText = Annotated[StrictStr, Field(min_length=5, max_length=8, pattern=r"^\d{2}:\d{2}(:\d{2})?$")]
MAX_LESSONS = 200  # a week of ten lessons a day is 70


class LessonEntry(Payload):
    """One weekly lesson: times of day (24 h) in the box's zone; `camera` a declared camera (None: the default)."""

    lesson_id: SafeId
    weekday: Weekday
    start: ClockText
    end: ClockText
    section: SafeId
    camera: SafeId | None = None
    name: DisplayName | None = None


class NextLesson(Payload):
    """A lesson occurrence: `start`/`end` in the box's zone with the offset."""

    lesson_id: str
    name: str | None
    section: str
    camera: str | None
    start: str
    end: str


class Schedule(Payload):
    timezone: str
    source: Literal["config", "mqtt"]
    lessons: list[LessonEntry]
    current: NextLesson | None
    next_lesson: NextLesson | None


class ScheduleSet(Request):
    lessons: list[LessonEntry] = Field(max_length=MAX_LESSONS)


class ScheduleAdd(Request, LessonEntry):
    pass


class ScheduleRemove(Request):
    lesson_id: LookupText


State.model_rebuild()
Info.model_rebuild()
