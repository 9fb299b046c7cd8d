"""Request parsing and command handlers: every request gets exactly one Response, whatever it holds."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from ..attendance.history_report import section_attendance as attendance_of
from ..attendance.history_report import student_history as history_of
from ..attendance.reports import write_report
from ..attendance.results import build_results, summaries
from ..common.errors import AttendanceError, Conflict, InvalidRequest, NotFound, PayloadTooLarge, public_error
from ..common.paths import resolve_inside
from ..common.timeutil import iso_field, utcnow
from ..config import format_validation_error
from ..contract import api
from ..media.transfer import outgoing
from ..mqtt.link import Incoming
from ..roster.enrollment import EnrollOutcome, too_large
from ..roster.photos import remove_photo_file
from ..sessions.cameras import resolve_camera
from ..sessions.planning import plan_mp4, plan_webcam
from ..timetable.entries import entry_of, lessons_of, next_lesson, row_of
from ..timetable.week import current, next_after

if TYPE_CHECKING:
    from .service import Daemon

log = logging.getLogger(__name__)

R = TypeVar("R", bound=api.Request)
Handler = Callable[["Daemon", Any], Any]
COMMANDS: dict[str, tuple[type[api.Request], Handler]] = {}
# Commands that take seconds (enrollment decodes and encodes photos): the dispatcher hands them to a
# background worker and keeps answering everything else meanwhile.
BACKGROUND: set[str] = set()


def command(name: str, model: type[R], background: bool = False,
            ) -> Callable[[Callable[[Daemon, R], Any]], Callable[[Daemon, R], Any]]:
    def register(fn: Callable[[Daemon, R], Any]) -> Callable[[Daemon, R], Any]:
        COMMANDS[name] = (model, fn)
        if background:
            BACKGROUND.add(name)
        return fn

    return register


MAX_TRANSACTION_CHARS = 1024
# A request is read whole before anything else: the largest legitimate one is an `enroll` with photos (20 MiB
# decoded, 4/3 of that in base64, plus JSON).
MAX_REQUEST_BYTES = 32 * 1024 * 1024


class _Refused(InvalidRequest):
    """A refusal that could still read the request's transaction, to echo it."""

    def __init__(self, message: str, transaction: Any) -> None:
        super().__init__(message)
        self.transaction = transaction


def runs_in_background(name: str | None) -> bool:
    return name in BACKGROUND


def refuse(daemon: Daemon, incoming: Incoming, error: AttendanceError) -> tuple[str, api.Response]:
    """An error answer without running the command (e.g. its queue is full); the transaction is echoed."""
    name = daemon.topics.command_of(incoming.topic) or "?"
    try:
        transaction, _ = parse(incoming)
    except _Refused as exc:
        transaction = exc.transaction
    except AttendanceError:
        transaction = None
    if not _json_scalar(transaction):
        transaction = None
    return name, api.Response(transaction=transaction, status="error", code=error.code, error=error.message,
                              data=error.data)


def parse(incoming: Incoming) -> tuple[Any, dict[str, Any]]:
    """(transaction, request object); raises InvalidRequest (a _Refused carrying the transaction when it could
    be read)."""
    if len(incoming.payload) > MAX_REQUEST_BYTES:
        raise PayloadTooLarge(f"payload: {len(incoming.payload)} bytes; at most {MAX_REQUEST_BYTES}")
    if not incoming.payload.strip():
        if incoming.retain:
            raise _Refused(_RETAINED, None)
        return None, {}
    try:
        obj = json.loads(incoming.payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"payload: not UTF-8 text ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"payload: invalid JSON ({exc.msg} at position {exc.pos})") from exc
    except RecursionError as exc:
        raise InvalidRequest("payload: JSON nested too deeply") from exc
    if not isinstance(obj, dict):
        raise InvalidRequest(f"payload: must be a JSON object, got {type(obj).__name__}")
    transaction = obj.get("transaction")
    if not _json_scalar(transaction):
        raise InvalidRequest("transaction: must be a string, number, boolean or null")
    if isinstance(transaction, str) and len(transaction) > MAX_TRANSACTION_CHARS:
        raise InvalidRequest(f"transaction: must be at most {MAX_TRANSACTION_CHARS} characters")
    if incoming.retain:
        raise _Refused(_RETAINED, transaction)
    return transaction, obj


_RETAINED = "request must not be retained (it would replay on every reconnect)"


F = TypeVar("F")


def validated(registry: dict[str, tuple[type[api.Request], F]], name: str, obj: Any) -> tuple[F, api.Request]:
    """A registry's handler and its strict model of the request (box and hub): 404 listing the known commands,
    400 naming each bad field."""
    if name not in registry:
        raise NotFound(f"unknown command '{name[:64]}' (known: {', '.join(sorted(registry))})")
    model, fn = registry[name]
    try:
        return fn, model.model_validate(obj)
    except ValidationError as exc:
        raise InvalidRequest(format_validation_error(exc)) from exc


def handle(daemon: Daemon, incoming: Incoming) -> tuple[str, api.Response]:
    """Never raises: malformed input, unknown commands and internal faults all become a Response."""
    name = daemon.topics.command_of(incoming.topic) or "?"
    transaction: Any = None
    try:
        try:
            transaction, obj = parse(incoming)
        except _Refused as exc:
            transaction = exc.transaction
            raise
        fn, request = validated(COMMANDS, name, obj)
        data = fn(daemon, request)
        return name, api.Response(transaction=transaction, status="ok", code=200, data=_dump(data))
    except AttendanceError as exc:
        return name, api.Response(transaction=transaction, status="error", code=exc.code,
                                  error=_public(daemon, exc.message), data=exc.data)
    except Exception as exc:
        log.exception("internal error handling %s", name[:64])
        return name, api.Response(transaction=transaction, status="error", code=500,
                                  error=_public(daemon, f"internal error: {type(exc).__name__}: {exc}"))


def _public(daemon: Daemon, message: str) -> str:
    """Error texts leave the box: no absolute paths of it, no credentials, at most 300 characters."""
    return public_text(daemon, message)


def public_text(daemon: Daemon, message: str) -> str:
    """The same filter for texts the daemon publishes on its own (a lesson that could not start)."""
    p = daemon.cfg.paths
    return public_error(message, [(p.media, "<media>"), (p.enrollment, "<enrollment>"), (p.data_dir, "<data>")])


def _json_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _dump(data: Any) -> Any:
    if isinstance(data, api.Payload):
        return data.model_dump(mode="json")
    if isinstance(data, list):
        return [_dump(d) for d in data]
    return data


# ---- sessions ---------------------------------------------------------------------------------------


@command("start_mp4", api.StartMp4)
def start_mp4(d: Daemon, r: api.StartMp4) -> api.State:
    d.sm.ensure_idle()
    plan = plan_mp4(d.cfg, d.store, r.path, r.section, r.session_name, r.export)
    return d.start_session(plan)


@command("start_webcam", api.StartWebcam)
def start_webcam(d: Daemon, r: api.StartWebcam) -> api.State:
    d.sm.ensure_idle()
    camera = resolve_camera(d.cfg, r.camera)
    plan = plan_webcam(d.cfg, d.store, r.section, r.session_name, r.export, camera, r.duration_s)
    return d.start_session(plan)


@command("pause", api.SessionGuard)
def pause(d: Daemon, r: api.SessionGuard) -> api.State:
    return d.pause(r.session_id)


@command("resume", api.SessionGuard)
def resume(d: Daemon, r: api.SessionGuard) -> api.State:
    return d.resume(r.session_id)


@command("stop", api.SessionGuard)
def stop(d: Daemon, r: api.SessionGuard) -> api.State:
    return d.stop(r.session_id)


@command("status", api.Empty)
def status(d: Daemon, r: api.Empty) -> api.State:
    return d.state()


# ---- roster -----------------------------------------------------------------------------------------


@command("sections", api.Empty)
def sections(d: Daemon, r: api.Empty) -> list[dict[str, Any]]:
    return [{"section": s, "students": n} for s, n in d.store.sections()]


@command("students", api.SectionRequest)
def students(d: Daemon, r: api.SectionRequest) -> list[dict[str, Any]]:
    return [{"student_id": s.student_id, "name": s.name, "encodings": s.encodings}
            for s in d.store.students(r.section)]


@command("enroll", api.EnrollRequest, background=True)
def enroll(d: Daemon, r: api.EnrollRequest) -> dict[str, Any]:
    refuse_hub_managed(d, r.section)
    if (r.images is None) == (r.images_b64 is None):
        raise InvalidRequest("images: give exactly one of images (paths on the box) and images_b64 (photos)")
    if r.images_b64 is not None:  # Extension: photos in the request (remote enrollment)
        outcome = commands_remote.upload_outcome(d, r)
    else:
        assert r.images is not None
        outcome = _enroll_files(d, r.section, r.student_id, r.name, r.images)
    d.publish_info()
    result: dict[str, Any] = {"student_id": r.student_id, "encodings_added": outcome.encodings_added,
                              "rejected": [{"image": x["image"], "reason": x["reason"]} for x in outcome.rejected]}
    if outcome.warnings:
        result["warnings"] = outcome.warnings
    if r.images_b64 is not None:
        result["photo_ids"] = [photo_id for _, photo_id in outcome.accepted]
    return result


def _enroll_files(d: Daemon, section: str, student_id: str, name: str, paths: list[str]) -> EnrollOutcome:
    limit = d.cfg.enrollment.max_images
    if len(paths) > limit:
        raise InvalidRequest(f"images: {len(paths)} images in one request; at most {limit} "
                             "(enrollment.max_images)")
    images = [resolve_inside(d.cfg.paths.enrollment, p, "images", "enrollment directory") for p in paths]
    for i, image in enumerate(images):  # refused as a whole before anything is decoded
        problem = too_large(image, d.cfg.enrollment.max_image_pixels) if image.is_file() else None
        if problem:
            raise InvalidRequest(f"images[{i}]: '{paths[i]}': {problem}")
    return d.enroller.enroll(section, student_id, name, images)


@command("remove_student", api.RemoveStudentRequest)
def remove_student(d: Daemon, r: api.RemoveStudentRequest) -> dict[str, Any]:
    refuse_hub_managed(d, r.section)
    for photo in d.store.remove_student(r.section, r.student_id):  # their stored photos go with them
        remove_photo_file(d.cfg.paths.photos, photo)
    d.publish_info()
    return {"removed": True}


def refuse_hub_managed(d: Daemon, section: str) -> None:
    """Sections in [roster] sections come from the hub: a local change would be overwritten (and diverge)."""
    if section in d.cfg.roster.sections:
        raise Conflict(f"section: '{section}' is managed by the hub (roster.sections); enroll at the hub")


# ---- history ----------------------------------------------------------------------------------------



@command("sessions", api.SessionsRequest)
def sessions(d: Daemon, r: api.SessionsRequest) -> list[api.SessionSummary]:
    rows = d.store.list_sessions(section=r.section, since=iso_field(r.since, "since"),
                                 until=iso_field(r.until, "until"), status=r.status, limit=r.limit)
    return summaries(d.store, rows, d.cfg)


@command("session", api.SessionRequest)
def session(d: Daemon, r: api.SessionRequest) -> api.Results:
    return build_results(d.store, d.store.get_session(r.session_id), d.cfg)


@command("report", api.ReportRequest)
def report(d: Daemon, r: api.ReportRequest) -> dict[str, Any]:
    results = build_results(d.store, d.store.get_session(r.session_id), d.cfg)
    path = write_report(results, d.cfg.paths.reports, r.format)
    if not r.content:
        return {"path": str(path)}
    f = outgoing(path, "report")  # Extension: the report itself, for clients off the box
    return {"path": str(path), "content_type": f.content_type, "encoding": f.encoding, "content": f.content,
            "bytes": f.bytes, "sha256": f.sha256}


# ---- timetable and attendance over time (issue 8) ----------------------------------------------------


def _schedule(d: Daemon) -> api.Schedule:
    zone_name, zone = d.cfg.attendance.zone()
    lessons = d.scheduler.lessons()
    now = utcnow()
    return api.Schedule(timezone=zone_name, source="config" if d.cfg.timetable is not None else "mqtt",
                        lessons=[entry_of(r) for r in d.store.timetable()],
                        current=next_lesson(current(lessons, zone, now), zone),
                        next_lesson=next_lesson(next_after(lessons, zone, now), zone))


def _set_timetable(d: Daemon, entries: list[api.LessonEntry]) -> api.Schedule:
    """Checks the whole table (times, overlaps, sections, cameras), then stores it in one transaction."""
    if d.cfg.timetable is not None:
        raise Conflict("timetable: set by [[timetable]] in the config file; change it there and restart the daemon")
    try:
        lessons_of(entries)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    for e in entries:
        d.store.require_section(e.section)
        resolve_camera(d.cfg, e.camera)  # the same rules as start_webcam's camera (declared names)
    d.store.replace_timetable([row_of(e) for e in entries])
    d.scheduler.changed()
    return _schedule(d)


@command("schedule", api.Empty)
def schedule(d: Daemon, r: api.Empty) -> api.Schedule:
    return _schedule(d)


@command("schedule_set", api.ScheduleSet)
def schedule_set(d: Daemon, r: api.ScheduleSet) -> api.Schedule:
    return _set_timetable(d, r.lessons)


@command("schedule_add", api.ScheduleAdd)
def schedule_add(d: Daemon, r: api.ScheduleAdd) -> api.Schedule:
    entries = [entry_of(x) for x in d.store.timetable()]
    if any(e.lesson_id == r.lesson_id for e in entries):
        raise Conflict(f"lesson_id: lesson '{r.lesson_id}' exists; remove it first or use schedule_set")
    if len(entries) >= api.MAX_LESSONS:
        raise InvalidRequest(f"lessons: the timetable holds at most {api.MAX_LESSONS} lessons")
    return _set_timetable(d, [*entries, api.LessonEntry.model_validate(r.model_dump(exclude={"transaction"}))])


@command("schedule_remove", api.ScheduleRemove)
def schedule_remove(d: Daemon, r: api.ScheduleRemove) -> api.Schedule:
    entries = [entry_of(x) for x in d.store.timetable()]
    if not any(e.lesson_id == r.lesson_id for e in entries):
        raise NotFound(f"lesson_id: no lesson '{r.lesson_id}' in the timetable")
    return _set_timetable(d, [e for e in entries if e.lesson_id != r.lesson_id])


@command("student_history", api.HistoryRequest)
def student_history(d: Daemon, r: api.HistoryRequest) -> api.StudentHistory:
    return history_of(d.store, d.cfg, r.section, r.student_id, iso_field(r.since, "since"),
                      iso_field(r.until, "until"), r.limit)


@command("section_attendance", api.SectionAttendanceRequest)
def section_attendance(d: Daemon, r: api.SectionAttendanceRequest) -> api.SectionAttendance:
    return attendance_of(d.store, d.cfg, r.section, iso_field(r.since, "since"), iso_field(r.until, "until"))


from . import commands_remote  # noqa: E402  (registers its commands; it imports `command` from here)
