"""Durable state in one SQLite file (WAL): roster, encodings, sessions, attendance, unknowns."""

from .db import Store
from .records import AttendanceRow, Erasure, LessonRow, LogRow, MediaRow, PhotoRow, SessionRow, StudentRow, UnknownRow

__all__ = ["AttendanceRow", "Erasure", "LessonRow", "LogRow", "MediaRow", "PhotoRow", "SessionRow", "Store",
           "StudentRow", "UnknownRow"]
