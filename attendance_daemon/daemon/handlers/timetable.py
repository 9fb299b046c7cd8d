"""Timetable requests: read it, set it whole, add or remove a lesson (refused while the config file sets it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...common.errors import Conflict, InvalidRequest, NotFound
from ...common.timeutil import utcnow
from ...contract import api
from ...sessions.cameras import resolve_camera
from ...timetable.entries import entry_of, lessons_of, next_lesson, row_of
from ...timetable.week import current, next_after
from ..registry import command

if TYPE_CHECKING:
    from ..services import Services


def _schedule(ctx: Services) -> api.Schedule:
    zone_name, zone = ctx.cfg.attendance.zone()
    lessons = ctx.scheduler.lessons()
    now = utcnow()
    return api.Schedule(timezone=zone_name, source="config" if ctx.cfg.timetable is not None else "mqtt",
                        lessons=[entry_of(r) for r in ctx.store.timetable()],
                        current=next_lesson(current(lessons, zone, now), zone),
                        next_lesson=next_lesson(next_after(lessons, zone, now), zone))


def _set_timetable(ctx: Services, entries: list[api.LessonEntry]) -> api.Schedule:
    """Checks the whole table (times, overlaps, sections, cameras), then stores it in one transaction."""
    if ctx.cfg.timetable is not None:
        raise Conflict("timetable: set by [[timetable]] in the config file; change it there and restart the daemon")
    try:
        lessons_of(entries)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    for e in entries:
        ctx.store.require_section(e.section)
        resolve_camera(ctx.cfg, e.camera)  # the same rules as start_webcam's camera (declared names)
    ctx.store.replace_timetable([row_of(e) for e in entries])
    ctx.scheduler.changed()
    return _schedule(ctx)


@command("schedule", api.Empty)
def schedule(ctx: Services, r: api.Empty) -> api.Schedule:
    return _schedule(ctx)


@command("schedule_set", api.ScheduleSet)
def schedule_set(ctx: Services, r: api.ScheduleSet) -> api.Schedule:
    return _set_timetable(ctx, r.lessons)


@command("schedule_add", api.ScheduleAdd)
def schedule_add(ctx: Services, r: api.ScheduleAdd) -> api.Schedule:
    entries = [entry_of(x) for x in ctx.store.timetable()]
    if any(e.lesson_id == r.lesson_id for e in entries):
        raise Conflict(f"lesson_id: lesson '{r.lesson_id}' exists; remove it first or use schedule_set")
    if len(entries) >= api.MAX_LESSONS:
        raise InvalidRequest(f"lessons: the timetable holds at most {api.MAX_LESSONS} lessons")
    return _set_timetable(ctx, [*entries, api.LessonEntry.model_validate(r.model_dump(exclude={"transaction"}))])


@command("schedule_remove", api.ScheduleRemove)
def schedule_remove(ctx: Services, r: api.ScheduleRemove) -> api.Schedule:
    entries = [entry_of(x) for x in ctx.store.timetable()]
    if not any(e.lesson_id == r.lesson_id for e in entries):
        raise NotFound(f"lesson_id: no lesson '{r.lesson_id}' in the timetable")
    return _set_timetable(ctx, [e for e in entries if e.lesson_id != r.lesson_id])
