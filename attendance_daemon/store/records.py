"""Plain row types returned by the store (no ORM: the queries are few and explicit)."""

from __future__ import annotations

from dataclasses import dataclass, field


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
