"""Durable state in one SQLite file (WAL): roster, encodings, sessions, attendance, unknowns."""

from .db import Store
from .records import AttendanceRow, LessonRow, SessionRow, StudentRow

__all__ = ["AttendanceRow", "LessonRow", "SessionRow", "Store", "StudentRow"]
