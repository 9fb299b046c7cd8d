"""Plain row types returned by the store (no ORM: the queries are few and explicit)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class StudentRow:
    rowid: int
    section: str
    student_id: str
    name: str
    encodings: int


@dataclass
class SessionRow:
    id: str
    name: str
    section: str
    mode: str
    source: str
    export: bool
    status: str
    started_at: str
    ended_at: str | None = None
    frames_processed: int = 0
    total_frames: int | None = None
    roster_total: int = 0
    export_path: str | None = None
    error: str | None = None
    video_s: float | None = None  # video position reached (flushed with the attendance); None before schema 2
    warnings: list[str] = field(default_factory=list)
    lesson: str | None = None  # `<lesson_id>@<date>` when the scheduler started it for a lesson
    lesson_start: str | None = None  # when that lesson began (UTC); `late` counts from it
    record: str = "draft"  # `draft` until finalised, then `final` (corrections refused until reopened)
    finalized_at: str | None = None
    finalized_by: str | None = None  # the client that finalised it, `auto` after [attendance] finalize_after_h
    revision: int = 0  # bumped by every correction, undo, finalisation and reopening
    roster_frozen: bool = False  # the record keeps its roster (session_roster) since its first finalisation


@dataclass(frozen=True)
class LogRow:
    """One audited change of a session's record. `correct` sets `status` for `student_id`; `undo` takes back the
    correction `undoes`; `finalize` and `reopen` concern the whole record. `mqtt_user` is the broker's word on
    who sent it, when it gives one."""

    id: int
    session_id: str
    action: str
    student_id: str | None
    status: str | None
    undoes: int | None
    note: str
    client: str | None
    mqtt_user: str | None
    at: str
    undone_by: int | None = None  # for a correction: the undo that took it back


@dataclass(frozen=True)
class LessonRow:
    """A stored timetable entry (times as written, `HH:MM` or `HH:MM:SS`)."""

    lesson_id: str
    weekday: int
    start: str
    end: str
    section: str
    camera: str | None
    name: str | None


@dataclass
class AttendanceRow:
    student_id: str
    name: str
    first_seen_s: float
    last_seen_s: float
    seen_s: float
    intervals: list[tuple[float, float]] = field(default_factory=list)


@dataclass(frozen=True)
class PhotoRow:
    """One enrolled encoding: `photo` is the stored image's file name under <data>/photos (None when the
    encoding came from a path in the enrollment directory, whose file the box does not own)."""

    id: int
    source: str
    photo: str | None
    created_at: str


@dataclass(frozen=True)
class UnknownRow:
    id: int
    session_id: str
    track_id: int
    crop_path: str
    at_s: float
    vector: np.ndarray | None  # the track's mean encoding (None before schema 3)
    assigned_to: str | None  # the student_id it was assigned to
    dismissed: bool = False  # a teacher said it is nobody of theirs (hidden from galleries, kept as evidence)


@dataclass
class Erasure:
    """What `forget_student` erased from the database, and the files it recorded as doomed (the caller sweeps)."""

    sections: set[str] = field(default_factory=set)
    encodings: int = 0
    photos: list[str] = field(default_factory=list)
    crops: list[str] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)
    attendance_rows: int = 0
    doomed: list[int] = field(default_factory=list)  # ids of the doomed_files recorded with the rows


@dataclass
class MediaRow:
    """A video of the media library (file `<media dir>/<name>`)."""

    name: str
    bytes: int
    sha256: str
    duration_s: float
    frames: int
    fps: float
    width: int
    height: int
    uploaded_at: str
