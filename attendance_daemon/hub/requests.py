"""The hub's own requests, `<base>/@hub/request/<command>` -> `<base>/@hub/response/<command>`, in the boxes'
style: one registry, strict pydantic models (unknown fields 400, no coercion), exactly one Response each."""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import Field, StrictInt

from ..attendance.reports import text_cell
from ..common.errors import AttendanceError, Conflict, InvalidRequest, NotFound, public_error
from ..common.names import DisplayName, LookupText, PathText, SafeId, ShortText
from ..common.paths import resolve_inside
from ..common.timeutil import iso, iso_field
from ..config import EnrollmentConfig
from ..contract import api
from ..contract.api import AttendanceStatus
from ..contract.record_api import MOODLE_ACRONYMS
from ..daemon.registry import parse, validated
from ..mqtt.link import Incoming
from ..mqtt.topics import Topics
from ..roster.enrollment import too_large
from .record import summary as record_summary

if TYPE_CHECKING:  # the models and the registry import without psycopg (docs/asyncapi.json is made from them)
    from .roster import RosterPublisher
    from .store import HubStore

log = logging.getLogger(__name__)
MAX_REPORT_ROWS = 20000


class HubSessionsRequest(api.Request):
    device_id: LookupText | None = None
    section: LookupText | None = None
    limit: StrictInt = Field(100, ge=1, le=MAX_REPORT_ROWS)


class _ReportRequest(api.Request):
    """What both cross-room reports take: a time window, a format and a row limit."""

    since: ShortText | None = None
    until: ShortText | None = None
    format: Literal["json", "csv", "pdf"] = "json"
    limit: StrictInt = Field(1000, ge=1, le=MAX_REPORT_ROWS)

    def window(self) -> tuple[str | None, str | None]:
        return iso_field(self.since, "since"), iso_field(self.until, "until")


class StudentReportRequest(_ReportRequest):
    student_id: LookupText


class SectionReportRequest(_ReportRequest):
    section: LookupText


class HubEnrollRequest(api.Request):
    section: SafeId
    student_id: SafeId
    name: DisplayName
    images: list[PathText] = Field(min_length=1)


class PublishRosterRequest(api.Request):
    section: SafeId


@dataclass
class HubContext:
    """What the handlers use, and nothing more."""

    store: HubStore
    rosters: RosterPublisher
    enrollment_dir: Path
    enrollment: EnrollmentConfig
    send_to_box: Callable[[str, str, dict[str, Any]], None]  # (device_id, command, request)
    # the hub's own health for `fleet`: database, inbox, refusals per box (BoxIntake.status)
    status: Callable[[], dict[str, Any]] = lambda: {}
    # Moodle's status acronyms for `export` (hub.moodle_acronyms)
    moodle_acronyms: dict[AttendanceStatus, str] = field(default_factory=lambda: dict(MOODLE_ACRONYMS))


Q = TypeVar("Q", bound=api.Request)
HubHandler = Callable[[HubContext, Any], Any]
HUB_COMMANDS: dict[str, tuple[type[api.Request], HubHandler]] = {}


def hub_command(name: str, model: type[Q],
                ) -> Callable[[Callable[[HubContext, Q], Any]], Callable[[HubContext, Q], Any]]:
    def register(fn: Callable[[HubContext, Q], Any]) -> Callable[[HubContext, Q], Any]:
        HUB_COMMANDS[name] = (model, fn)
        return fn

    return register


def handle(ctx: HubContext, name: str, incoming: Incoming) -> api.Response:
    """Never raises."""
    transaction: Any = None
    try:
        transaction, obj = parse(incoming)
        fn, request = validated(HUB_COMMANDS, name, obj)
        return api.Response(transaction=transaction, status="ok", code=200, data=plain(fn(ctx, request)))
    except AttendanceError as exc:
        return api.Response(transaction=getattr(exc, "transaction", transaction), status="error", code=exc.code,
                            error=public_error(exc.message, [(ctx.enrollment_dir, "<enrollment>")]), data=exc.data)
    except Exception as exc:
        log.exception("internal error handling hub request %s", name[:64])
        return api.Response(transaction=transaction, status="error", code=500,
                            error=f"internal error: {type(exc).__name__}")


def plain(value: Any) -> Any:
    """JSON-ready: datetimes as ISO text."""
    return json.loads(json.dumps(value, default=lambda v: iso(v) if isinstance(v, datetime) else str(v)))



# ---- sessions (`fleet`, assignments and quarantine: fleet_requests.py) -----------------------------------


@hub_command("sessions", HubSessionsRequest)
def sessions(ctx: HubContext, r: HubSessionsRequest) -> list[dict[str, Any]]:
    rows = ctx.store.session_rows(device_id=r.device_id)
    if r.section is not None:
        rows = [x for x in rows if x["section"] == r.section]
    return rows[-r.limit:]


# ---- reports ------------------------------------------------------------------------------------------

# `status` is the session's; `attendance_status` the student's in the record (a teacher's correction applied),
# `recognised_status` what recognition saw, `corrected` whether they differ by a correction, `record` the session's
REPORT_COLUMNS = ("student_id", "name", "present", "late", "left_early", "seen_s", "arrived_at", "left_at",
                  "device_id", "session", "section", "status", "started_at", "attendance_status",
                  "recognised_status", "corrected", "record")


def report_data(rows: list[dict[str, Any]], fmt: str, title: str = "Attendance") -> dict[str, Any]:
    summary = record_summary(rows)
    if fmt == "csv":
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(REPORT_COLUMNS)
        for row in rows:
            w.writerow([text_cell(str(row["student_id"])), text_cell(str(row["name"])),
                        *("" if row[c] is None else (iso(row[c]) if isinstance(row[c], datetime) else
                                                      text_cell(str(row[c]))) for c in REPORT_COLUMNS[2:])])
        return {"csv": out.getvalue(), "rows": len(rows), "summary": summary}
    if fmt == "pdf":
        from .report_pdf import render_pdf

        return {"pdf": base64.b64encode(render_pdf(title, rows, summary)).decode(), "rows": len(rows),
                "summary": summary}
    return {"rows": [{c: row[c] for c in REPORT_COLUMNS} for row in rows], "summary": summary}


@hub_command("student_report", StudentReportRequest)
def student_report(ctx: HubContext, r: StudentReportRequest) -> dict[str, Any]:
    """One student over every room and session."""
    return report_data(ctx.store.student_report(r.student_id, *r.window(), r.limit), r.format,
                       f"Attendance of student {r.student_id}")


@hub_command("section_report", SectionReportRequest)
def section_report(ctx: HubContext, r: SectionReportRequest) -> dict[str, Any]:
    """Every student of a section over every room and session."""
    return report_data(ctx.store.section_report(r.section, *r.window(), r.limit), r.format,
                       f"Attendance of section {r.section}")


# ---- roster -------------------------------------------------------------------------------------------


@hub_command("enroll", HubEnrollRequest)
def enroll(ctx: HubContext, r: HubEnrollRequest) -> dict[str, Any]:
    """The box's enrollment rules (limits, one face per photo, photos inside the enrollment directory), then a
    new roster version of the section."""
    if len(r.images) > ctx.enrollment.max_images:
        raise InvalidRequest(f"images: {len(r.images)} images in one request; at most {ctx.enrollment.max_images} "
                             "(enrollment.max_images)")
    images = [resolve_inside(ctx.enrollment_dir, p, "images", "enrollment directory") for p in r.images]
    for i, image in enumerate(images):
        problem = too_large(image, ctx.enrollment.max_image_pixels) if image.is_file() else None
        if problem:
            raise InvalidRequest(f"images[{i}]: '{r.images[i]}': {problem}")
    outcome = ctx.rosters.enroll(r.section, r.student_id, r.name, images)
    roster, problem = publish_after_change(ctx, r.section) if outcome.encodings_added else (None, None)
    return {"student_id": r.student_id, "encodings_added": outcome.encodings_added,
            "rejected": [{"image": Path(x["image"]).name, "reason": x["reason"]} for x in outcome.rejected],
            "skipped": [image.name for image in outcome.skipped], "warnings": outcome.warnings, "roster": roster,
            "roster_error": problem}


def publish_after_change(ctx: HubContext, section: str) -> tuple[dict[str, Any] | None, str | None]:
    """({version, hash}, None), or (None, why) when the section cannot be published (a student over the cap, from
    an older hub): the change made stands, and the answer says why no roster went out."""
    try:
        return ctx.rosters.publish(section), None
    except Conflict as exc:
        log.warning("%s", exc.message)
        return None, exc.message


@hub_command("remove_student", api.RemoveStudentRequest)
def remove_student(ctx: HubContext, r: api.RemoveStudentRequest) -> dict[str, Any]:
    if not ctx.store.remove_roster_student(r.section, r.student_id):
        raise NotFound(f"student_id: no student '{r.student_id}' in section '{r.section}' at the hub")
    roster, problem = publish_after_change(ctx, r.section)
    return {"removed": True, "roster": roster, "roster_error": problem}


@hub_command("student_photos", api.StudentRequest)
def student_photos(ctx: HubContext, r: api.StudentRequest) -> list[dict[str, Any]]:
    """The student's encodings at the hub, one per enrolled photo (the hub keeps no photo files)."""
    return ctx.store.student_encodings(r.section, r.student_id)


@hub_command("remove_photo", api.PhotoRequest)
def remove_photo(ctx: HubContext, r: api.PhotoRequest) -> dict[str, Any]:
    """Removes one encoding, then publishes the section; when the roster still cannot be published (a student
    over the cap), the removal stands and `roster_error` says why."""
    ctx.store.remove_encoding(r.section, r.student_id, r.photo_id)
    roster, problem = publish_after_change(ctx, r.section)
    return {"photo_id": r.photo_id, "removed": True, "roster": roster, "roster_error": problem}


@hub_command("rosters", api.Empty)
def rosters(ctx: HubContext, r: api.Empty) -> dict[str, Any]:
    return ctx.store.rosters()


@hub_command("publish_roster", PublishRosterRequest)
def publish_roster(ctx: HubContext, r: PublishRosterRequest) -> dict[str, Any]:
    """Publishes the section again as a new version (e.g. after `attendance-hub enroll` from the shell)."""
    if r.section not in ctx.store.roster_sections():
        raise NotFound(f"section: unknown section '{r.section}' at the hub")
    return ctx.rosters.publish(r.section)


# ---- forgetting ---------------------------------------------------------------------------------------


@hub_command("forget_student", api.ForgetStudentRequest)
def forget_student(ctx: HubContext, r: api.ForgetStudentRequest) -> dict[str, Any]:
    """Erases the student at the hub, publishes every affected roster without them, and sends the box command
    `forget_student` to every known box (offline ones get it from their bridge's queue, and again from the hub
    when they come back online until they answer)."""
    counts = ctx.store.forget(r.student_id, r.section, r.attendance)
    # a section that cannot be published (over the cap) must not hold back the boxes' forget below
    published = {s: publish_after_change(ctx, s) for s in counts.sections}
    versions = {s: roster["version"] if roster else None for s, (roster, _) in published.items()}
    errors = {s: problem for s, (_, problem) in published.items() if problem}
    # before the boxes get the request: a box's own republish after its forget then comes last
    for device in counts.devices:
        _replace_retained(ctx, device)
    request: dict[str, Any] = {"student_id": r.student_id, "attendance": r.attendance}
    if r.section is not None:
        request["section"] = r.section
    sent = []
    for device in ctx.store.device_ids():
        box_request = {**request, "transaction": f"hub-forget-{secrets.token_hex(8)}"}
        ctx.store.record_forget_sent(r.student_id, device, box_request)
        ctx.send_to_box(device, "forget_student", box_request)
        sent.append(device)
    return {"student_id": r.student_id, "sections": counts.sections, "sessions": counts.sessions,
            "attendance_rows": counts.attendance_rows, "events_removed": counts.events,
            "retained_replaced": counts.devices, "roster_versions": versions, "roster_errors": errors,
            "sent_to": sent}


def _replace_retained(ctx: HubContext, device: str) -> None:
    """The box's retained messages on the central broker may still name the student (a box that is away cannot
    republish them): its `results` become its newest stored session as the hub now holds it (scrubbed), or
    nothing; its live roster `attendance`, which the hub does not keep, is cleared. Both are topics the box's
    bridge only sends out, so nothing reaches the box."""
    topics = Topics(ctx.rosters.base, device)
    newest = ctx.store.newest_results(device)
    ctx.rosters.retain(topics.of("results"), b"" if newest is None else
                       json.dumps(newest, separators=(",", ":"), ensure_ascii=False).encode())
    ctx.rosters.retain(topics.of("attendance"), b"")
