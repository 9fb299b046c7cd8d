"""The weekly timetable: lessons (weekday, start, end, section, camera) in the box's time zone. No I/O.

A lesson's times are wall-clock times in the zone of `[attendance] timezone` (the system's when unset); its
occurrences are real instants computed with zoneinfo, so daylight saving time is handled: a lesson at 08:00 is at
08:00 local on both sides of a change. A time inside the hour skipped in spring is the first instant after the
jump (02:30 on that night is 03:00); a lesson wholly inside it keeps its length from then (02:15-02:45 runs
03:00-03:30), so it runs, late, instead of never. A time that happens twice in autumn is its first occurrence.

The box has one camera lock (one session at a time), so lessons of one weekday may not overlap."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"(\d{2}):(\d{2})(?::(\d{2}))?")


def parse_clock(text: str, field: str) -> time:
    """`HH:MM` or `HH:MM:SS` (24 h); ValueError naming the field otherwise."""
    m = _CLOCK.fullmatch(text)
    if not m or int(m[1]) > 23 or int(m[2]) > 59 or int(m[3] or 0) > 59:
        raise ValueError(f"{field}: '{text[:20]}' is not a time of day HH:MM or HH:MM:SS (00:00 to 23:59:59)")
    return time(int(m[1]), int(m[2]), int(m[3] or 0))


def clock_text(t: time) -> str:
    return t.strftime("%H:%M:%S") if t.second else t.strftime("%H:%M")


@dataclass(frozen=True)
class Lesson:
    """One weekly timetable entry. `camera` None: the configured default camera."""

    lesson_id: str
    weekday: int  # 0 = Monday
    start: time
    end: time
    section: str
    camera: str | None = None
    name: str | None = None

    def overlaps(self, other: Lesson) -> bool:
        return self.weekday == other.weekday and self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class Occurrence:
    """A lesson on one date: real instants (UTC) and the key that names it (`<lesson_id>@<local date>`)."""

    lesson: Lesson
    day: date
    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        return f"{self.lesson.lesson_id}@{self.day.isoformat()}"


def check_timetable(lessons: Iterable[Lesson]) -> list[Lesson]:
    """The lessons in weekly order; ValueError for a duplicate id, an end not after the start, or two lessons
    that overlap (the box runs one session at a time)."""
    ordered = sorted(lessons, key=lambda x: (x.weekday, x.start, x.lesson_id))
    seen: set[str] = set()
    for i, lesson in enumerate(ordered):
        if lesson.lesson_id in seen:
            raise ValueError(f"lesson_id: '{lesson.lesson_id}' is used twice")
        seen.add(lesson.lesson_id)
        if lesson.end <= lesson.start:
            raise ValueError(f"end: lesson '{lesson.lesson_id}' ends ({clock_text(lesson.end)}) not after it "
                             f"starts ({clock_text(lesson.start)}); a lesson may not cross midnight")
        if i and ordered[i - 1].overlaps(lesson):
            prev = ordered[i - 1]
            raise ValueError(f"start: lesson '{lesson.lesson_id}' ({WEEKDAYS[lesson.weekday]} "
                             f"{clock_text(lesson.start)}-{clock_text(lesson.end)}) overlaps lesson "
                             f"'{prev.lesson_id}' ({clock_text(prev.start)}-{clock_text(prev.end)}); the box "
                             "runs one session at a time")
    return ordered


def instant(day: date, at: time, zone: tzinfo) -> datetime:
    """The real instant (UTC) of a wall-clock time: the first valid instant after a spring jump when the time does
    not exist that day, the first of two in autumn."""
    wall = datetime.combine(day, at)
    first = wall.replace(tzinfo=zone).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first  # it exists (fold 0 is the earlier of two)
    # In the gap: fold 1 reads it with the offset after the jump (an instant before it), fold 0 with the one before
    # (after it). The jump lies between: the first whole second whose local time is past `wall`.
    lo = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    hi = first
    while (hi - lo) > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0) + (timedelta(seconds=1) if hi.microsecond else timedelta())


def occurrence(lesson: Lesson, day: date, zone: tzinfo) -> Occurrence:
    start = instant(day, lesson.start, zone)
    end = instant(day, lesson.end, zone)
    if end <= start:  # wholly inside a spring jump: it keeps its length from the first valid instant
        end = start + (datetime.combine(day, lesson.end) - datetime.combine(day, lesson.start))
    return Occurrence(lesson, day, start, end)


def occurrences(lessons: Iterable[Lesson], zone: tzinfo, first: date, days: int) -> list[Occurrence]:
    """Every occurrence on the local dates `first` .. `first + days - 1`, in time order."""
    found = []
    for n in range(days):
        day = first + timedelta(days=n)
        found += [occurrence(x, day, zone) for x in lessons if x.weekday == day.weekday()]
    return sorted(found, key=lambda o: o.start)


def current(lessons: Iterable[Lesson], zone: tzinfo, now: datetime) -> Occurrence | None:
    """The lesson under way at `now` (start <= now < end), if any."""
    today = now.astimezone(zone).date()
    for occ in occurrences(list(lessons), zone, today - timedelta(days=1), 2):
        if occ.start <= now < occ.end:
            return occ
    return None


def next_after(lessons: Iterable[Lesson], zone: tzinfo, now: datetime) -> Occurrence | None:
    """The first lesson starting after `now` (within the next eight days), if any."""
    today = now.astimezone(zone).date()
    return next((o for o in occurrences(list(lessons), zone, today, 9) if o.start > now), None)


def ended_today(lessons: Iterable[Lesson], zone: tzinfo, now: datetime) -> list[Occurrence]:
    """Today's lessons (local date) that were over by `now`."""
    return [o for o in occurrences(list(lessons), zone, now.astimezone(zone).date(), 1) if o.end <= now]
