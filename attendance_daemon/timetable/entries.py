"""Timetable entries between their three forms: the API/config model, the stored row and the core's Lesson.
No I/O: the checks (times, overlaps, duplicate ids) are the core's, run once per change."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import tzinfo

from ..common.timeutil import local_iso
from ..contract.api import LessonEntry, NextLesson
from ..store import LessonRow
from .week import WEEKDAYS, Lesson, Occurrence, check_timetable, parse_clock


def lesson_of(entry: LessonEntry | LessonRow) -> Lesson:
    weekday = entry.weekday if isinstance(entry.weekday, int) else WEEKDAYS.index(entry.weekday)
    return Lesson(entry.lesson_id, weekday, parse_clock(entry.start, "start"), parse_clock(entry.end, "end"),
                  entry.section, entry.camera, entry.name)


def lessons_of(entries: Iterable[LessonEntry | LessonRow]) -> list[Lesson]:
    """Checked lessons in weekly order; ValueError naming the field and the lesson otherwise."""
    return check_timetable(lesson_of(e) for e in entries)


def row_of(entry: LessonEntry) -> LessonRow:
    return LessonRow(entry.lesson_id, WEEKDAYS.index(entry.weekday), entry.start, entry.end, entry.section,
                     entry.camera, entry.name)


def entry_of(row: LessonRow) -> LessonEntry:
    return LessonEntry.model_validate({"lesson_id": row.lesson_id, "weekday": WEEKDAYS[row.weekday],
                                       "start": row.start, "end": row.end, "section": row.section,
                                       "camera": row.camera, "name": row.name})


def next_lesson(occ: Occurrence | None, zone: tzinfo) -> NextLesson | None:
    if occ is None:
        return None
    x = occ.lesson
    return NextLesson(lesson_id=x.lesson_id, name=x.name, section=x.section, camera=x.camera,
                      start=local_iso(occ.start, zone), end=local_iso(occ.end, zone))
