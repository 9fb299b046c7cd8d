"""The timetable's pure core and the lesson planner, driven by plain datetimes (a fake clock: no sleeping)."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from attendance_daemon.config import Config
from attendance_daemon.contract.api import LessonEntry
from attendance_daemon.timetable.entries import entry_of, lessons_of, row_of
from attendance_daemon.timetable.planner import LessonPlanner, Running
from attendance_daemon.timetable.week import (
    Lesson,
    check_timetable,
    current,
    ended_today,
    next_after,
    occurrence,
    parse_clock,
)

REPO = Path(__file__).resolve().parent.parent
WARSAW = ZoneInfo("Europe/Warsaw")
MON = date(2026, 11, 23)  # a Monday


def at(day: date, hh: int, mm: int, ss: int = 0, zone: ZoneInfo = WARSAW) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=zone).astimezone(UTC)


def lesson(lid: str, weekday: int, start: str, end: str, section: str = "demo") -> Lesson:
    return Lesson(lid, weekday, parse_clock(start, "start"), parse_clock(end, "end"), section)


def test_clock_texts_and_table_rules() -> None:
    assert parse_clock("08:05", "start") == time(8, 5)
    assert parse_clock("23:59:59", "end") == time(23, 59, 59)
    for bad in ("8:05", "24:00", "12:60", "12:00:60", "12:00:00.5", "noon"):
        with pytest.raises(ValueError, match=r"^start: "):
            parse_clock(bad, "start")
    a, b = lesson("a", 0, "08:00", "08:45"), lesson("b", 0, "08:45", "09:30")  # back to back is fine
    assert [x.lesson_id for x in check_timetable([b, a])] == ["a", "b"]
    with pytest.raises(ValueError, match=r"lesson 'c' .* overlaps lesson 'a'"):
        check_timetable([a, b, lesson("c", 0, "08:30", "08:50")])
    check_timetable([a, lesson("c", 1, "08:30", "08:50")])  # another weekday
    with pytest.raises(ValueError, match=r"^lesson_id: 'a' is used twice"):
        check_timetable([a, lesson("a", 2, "08:00", "08:45")])
    with pytest.raises(ValueError, match=r"^end: lesson 'x' ends"):
        check_timetable([lesson("x", 0, "09:00", "09:00")])


def test_current_next_and_week_wrap() -> None:
    lessons = [lesson("math", 0, "08:00", "08:45"), lesson("bio", 4, "13:00", "14:30")]
    occ = current(lessons, WARSAW, at(MON, 8, 10))
    assert occ is not None and occ.key == "math@2026-11-23"
    assert current(lessons, WARSAW, at(MON, 8, 45)) is None  # the end is exclusive
    nxt = next_after(lessons, WARSAW, at(MON, 8, 10))
    assert nxt is not None and nxt.key == "bio@2026-11-27" and nxt.start == at(MON + timedelta(days=4), 13, 0)
    sunday = MON + timedelta(days=6)
    nxt = next_after(lessons, WARSAW, at(sunday, 22, 0))  # wraps into the next week
    assert nxt is not None and nxt.key == "math@2026-11-30"
    assert next_after([], WARSAW, at(MON, 8, 0)) is None
    assert [o.key for o in ended_today(lessons, WARSAW, at(MON, 9, 0))] == ["math@2026-11-23"]
    assert ended_today(lessons, WARSAW, at(MON, 8, 30)) == []


def test_daylight_saving_time_keeps_wall_clock() -> None:
    """Warsaw goes from +01:00 to +02:00 on Sunday 2026-03-29 at 02:00 and back on 2026-10-25 at 03:00."""
    spring, autumn = date(2026, 3, 29), date(2026, 10, 25)
    eight = lesson("s", 6, "08:00", "09:00")
    assert occurrence(eight, spring - timedelta(days=7), WARSAW).start == datetime(2026, 3, 22, 7, 0, tzinfo=UTC)
    assert occurrence(eight, spring, WARSAW).start == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)
    assert occurrence(eight, autumn, WARSAW).start == datetime(2026, 10, 25, 7, 0, tzinfo=UTC)
    gap = occurrence(lesson("g", 6, "02:30", "04:00"), spring, WARSAW)  # 02:30 does not exist that night
    assert gap.start == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # = 03:00 CEST, the first instant after the jump
    assert (gap.end - gap.start) == timedelta(hours=1)
    twice = occurrence(lesson("t", 6, "02:30", "04:00"), autumn, WARSAW)  # 02:30 happens twice: the first
    assert twice.start == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    # "what runs now" follows: at 06:30 UTC on the spring Sunday (08:30 local) the lesson is on
    occ = current([eight], WARSAW, datetime(2026, 3, 29, 6, 30, tzinfo=UTC))
    assert occ is not None and occ.key == "s@2026-03-29"


# (zone, spring-forward date, autumn-back date): the jump is 02:00 -> 03:00 and the repeat 02:00-03:00 in all three
DST_ZONES = (("Europe/Berlin", date(2026, 3, 29), date(2026, 10, 25)),
             ("America/New_York", date(2026, 3, 8), date(2026, 11, 1)),
             ("Australia/Sydney", date(2026, 10, 4), date(2026, 4, 5)))


@pytest.mark.parametrize(("name", "spring", "autumn"), DST_ZONES)
def test_lessons_across_both_dst_transitions_run(name: str, spring: date, autumn: date) -> None:
    """A lesson inside the skipped hour starts at the first valid instant (and keeps its length when it lies wholly
    inside), the planner starts it and next_after agrees; a lesson in the repeated hour runs once, from the first."""
    zone = ZoneInfo(name)
    inside = lesson("gap", spring.weekday(), "02:15", "02:45")
    occ = occurrence(inside, spring, zone)
    jump = datetime.combine(spring, time(3, 0), tzinfo=zone).astimezone(UTC)
    assert occ.start == jump and occ.end - occ.start == timedelta(minutes=30)
    assert occ.start.astimezone(zone).strftime("%H:%M") == "03:00"
    before = jump - timedelta(minutes=5)
    nxt = next_after([inside], zone, before)
    assert nxt is not None and nxt.key == occ.key and nxt.start == occ.start
    planner = LessonPlanner()
    assert planner.step([inside], zone, before, None) == []
    [start] = planner.step([inside], zone, jump + timedelta(seconds=1), None)
    assert start.kind == "start" and start.occ.key == occ.key and not start.late_start
    assert current([inside], zone, jump + timedelta(minutes=29)) == occ
    across = occurrence(lesson("across", spring.weekday(), "01:30", "02:30"), spring, zone)
    assert across.end == jump and across.end - across.start == timedelta(minutes=30)  # the clock skipped 30 min
    twice = occurrence(lesson("twice", autumn.weekday(), "02:15", "02:45"), autumn, zone)
    assert twice.end - twice.start == timedelta(minutes=30)
    assert twice.start.astimezone(zone).fold == 0 and twice.start.astimezone(zone).strftime("%H:%M") == "02:15"
    first_of_two = datetime.combine(autumn, time(2, 15), tzinfo=zone).astimezone(UTC)
    assert twice.start == first_of_two  # the first 02:15, not the repeat an hour later
    p = LessonPlanner()
    [began] = p.step([twice.lesson], zone, twice.start + timedelta(seconds=1), None)
    assert began.kind == "start"
    assert p.step([twice.lesson], zone, twice.start + timedelta(hours=1, seconds=1), None) == []  # not again


def test_planner_starts_once_and_stops_at_the_end() -> None:
    lessons = [lesson("math", 0, "09:00", "09:45")]
    p = LessonPlanner()
    assert p.step(lessons, WARSAW, at(MON, 8, 59, 59), None) == []
    [start] = p.step(lessons, WARSAW, at(MON, 9, 0, 1), None)
    assert start.kind == "start" and start.occ.key == "math@2026-11-23" and not start.late_start
    mine = Running("s1", "math@2026-11-23")
    assert p.step(lessons, WARSAW, at(MON, 9, 10), mine) == []
    assert p.step(lessons, WARSAW, at(MON, 9, 20), None) == []  # stopped by hand: not started again
    p2 = LessonPlanner()
    p2.step(lessons, WARSAW, at(MON, 9, 0), None)
    assert p2.step(lessons, WARSAW, at(MON, 9, 45, 5), mine) == []  # its own duration ends it normally
    [stop] = p2.step(lessons, WARSAW, at(MON, 9, 45, 10), mine)  # still running (e.g. it was paused)
    assert stop.kind == "stop" and stop.session_id == "s1"


def test_planner_waits_for_a_manual_session_or_skips() -> None:
    lessons = [lesson("math", 0, "09:00", "09:45")]
    manual = Running("m1", None)
    p = LessonPlanner()
    [wait] = p.step(lessons, WARSAW, at(MON, 9, 0), manual)
    assert wait.kind == "wait" and wait.session_id == "m1"
    assert p.step(lessons, WARSAW, at(MON, 9, 5), manual) == []  # said once
    [start] = p.step(lessons, WARSAW, at(MON, 9, 20), None)  # the camera is free and the lesson still on
    assert start.kind == "start" and start.late_start
    p = LessonPlanner()
    p.step(lessons, WARSAW, at(MON, 9, 0), manual)
    [skip] = p.step(lessons, WARSAW, at(MON, 9, 45), manual)
    assert skip.kind == "skip" and "until the lesson ended" in skip.reason
    assert p.step(lessons, WARSAW, at(MON, 9, 46), None) == []


def test_planner_after_a_reboot_and_back_to_back() -> None:
    lessons = [lesson("a", 0, "09:00", "09:45"), lesson("b", 0, "09:45", "10:30")]
    [late] = LessonPlanner().step(lessons, WARSAW, at(MON, 9, 20), None)  # the box was off at 09:00
    assert late.kind == "start" and late.late_start and late.occ.key == "a@2026-11-23"
    settled = LessonPlanner()
    settled.settle({"a@2026-11-23"})  # the store shows it ran (and was stopped by hand) before the reboot
    assert settled.step(lessons, WARSAW, at(MON, 9, 20), None) == []
    p = LessonPlanner()
    p.step(lessons, WARSAW, at(MON, 9, 0), None)
    for t in (at(MON, 9, 44, 59), at(MON, 9, 45), at(MON, 9, 45, 3)):  # a's session ends itself: b waits, silently
        assert p.step(lessons, WARSAW, t, Running("s1", "a@2026-11-23")) == []
    [start] = p.step(lessons, WARSAW, at(MON, 9, 45, 4), None)
    assert start.kind == "start" and start.occ.key == "b@2026-11-23" and not start.late_start  # seen at 09:45
    p2 = LessonPlanner()
    p2.step(lessons, WARSAW, at(MON, 9, 0), None)
    stop, start = p2.step(lessons, WARSAW, at(MON, 9, 45, 10), Running("s1", "a@2026-11-23"))  # a overran: stopped
    assert (stop.kind, stop.session_id, start.kind, start.occ.key) == ("stop", "s1", "start", "b@2026-11-23")
    assert start.late_start  # it waited for a's overrunning session
    p.refused(start.occ)  # a manual start won the race for the camera: the lesson waits
    assert p.step(lessons, WARSAW, at(MON, 9, 46), Running("m", None)) == []
    assert p.step(lessons, WARSAW, at(MON, 9, 50), None)[0].kind == "start"
    # memory stays bounded: a week later only the new occurrences are remembered
    p.step(lessons, WARSAW, at(MON + timedelta(days=7), 9, 0), None)
    assert set(p.started) == {"a@2026-11-30"} and p.done == set()


def test_entries_round_trip_and_config_validation() -> None:
    entry = LessonEntry.model_validate({"lesson_id": "math-1a", "weekday": "tue", "start": "08:00",
                                        "end": "08:45:30", "section": "demo", "name": "Maths 1A"})
    assert entry_of(row_of(entry)) == entry
    assert lessons_of([entry])[0].weekday == 1
    cfg = Config.model_validate({"timetable": [entry.model_dump()]})
    assert cfg.timetable == [entry]
    with pytest.raises(ValueError, match="overlaps"):
        Config.model_validate({"timetable": [entry.model_dump(), {**entry.model_dump(), "lesson_id": "b"}]})
    with pytest.raises(ValueError, match=r"timetable\[0\]\.camera: 'front' is not a name in \[cameras\]"):
        Config.model_validate({"timetable": [{**entry.model_dump(), "camera": "front"}]})
    example = (REPO / "config" / "attendance-daemon.toml").read_text()  # the shipped example, uncommented
    example = example.replace("# [cameras]\n# front", "[cameras]\nfront").replace("# [[timetable]]", "[[timetable]]")
    example = re.sub(r"(?m)^# (\w+ = .*)$", r"\1", example.split("[[timetable]]", 1)[1])
    shipped = Config.model_validate({"cameras": {"front": "/dev/video0"}, **tomllib.loads("[[timetable]]" + example)})
    assert shipped.timetable and shipped.timetable[0].lesson_id == "cs101-mon"
    with pytest.raises(ValueError, match="weekday"):
        LessonEntry.model_validate({**entry.model_dump(), "weekday": "Tuesday"})
