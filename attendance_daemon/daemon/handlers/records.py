"""Record requests: sessions, a session's results and report, attendance over time, and the evidence a session
kept (unknown faces, the annotated frame), fetched as bounded payloads."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...attendance.history_report import section_attendance as attendance_of
from ...attendance.history_report import student_history as history_of
from ...attendance.reports import write_report
from ...attendance.results import build_results, summaries
from ...common.errors import InvalidRequest, NotFound
from ...common.names import safe_file_stem
from ...common.timeutil import iso_field
from ...contract import api, history_api, media_api
from ...contract.record_api import SessionEntry
from ...media.downloads import piece
from ...media.transfer import outgoing
from ...roster.photos import photo_path
from ..registry import command

if TYPE_CHECKING:
    from ..services import Services


@command("sessions", api.SessionsRequest)
def sessions(ctx: Services, r: api.SessionsRequest) -> list[SessionEntry]:
    rows = ctx.store.list_sessions(section=r.section, since=iso_field(r.since, "since"),
                                 until=iso_field(r.until, "until"), status=r.status, limit=r.limit, record=r.record)
    return summaries(ctx.store, rows, ctx.cfg)


@command("session", api.SessionRequest)
def session(ctx: Services, r: api.SessionRequest) -> api.Results:
    return build_results(ctx.store, ctx.store.get_session(r.session_id), ctx.cfg)


@command("report", api.ReportRequest)
def report(ctx: Services, r: api.ReportRequest) -> dict[str, Any]:
    results = build_results(ctx.store, ctx.store.get_session(r.session_id), ctx.cfg)
    path = write_report(results, ctx.cfg.paths.reports, r.format)
    if not r.content:
        return {"path": str(path)}
    f = outgoing(path, "report")  # Extension: the report itself, for clients off the box
    return {"path": str(path), "content_type": f.content_type, "encoding": f.encoding, "content": f.content,
            "bytes": f.bytes, "sha256": f.sha256}




@command("student_history", history_api.HistoryRequest)
def student_history(ctx: Services, r: history_api.HistoryRequest) -> history_api.StudentHistory:
    return history_of(ctx.store, ctx.cfg, r.section, r.student_id, iso_field(r.since, "since"),
                      iso_field(r.until, "until"), r.limit)


@command("section_attendance", history_api.SectionAttendanceRequest)
def section_attendance(ctx: Services, r: history_api.SectionAttendanceRequest) -> history_api.SectionAttendance:
    return attendance_of(ctx.store, ctx.cfg, r.section, iso_field(r.since, "since"), iso_field(r.until, "until"))




# ---- fetch -----------------------------------------------------------------------------------------------


@command("unknown_faces", api.SessionRequest)
def unknown_faces(ctx: Services, r: api.SessionRequest) -> list[dict[str, Any]]:
    return [{"face_id": u.id, "track_id": u.track_id, "at_s": u.at_s, "assigned_to": u.assigned_to,
             "dismissed": u.dismissed} for u in ctx.store.unknown_faces(r.session_id)]


@command("dismiss_unknown", api.DismissRequest)
def dismiss_unknown(ctx: Services, r: api.DismissRequest) -> dict[str, Any]:
    """A face that is nobody of the section's (a visitor, a poster): hidden from galleries, its crop kept."""
    ctx.store.set_dismissed(r.face_id, r.dismissed)
    return {"face_id": r.face_id, "dismissed": r.dismissed}


@command("unknown_face_image", api.FaceRequest)
def unknown_face_image(ctx: Services, r: api.FaceRequest) -> dict[str, Any]:
    face = ctx.store.unknown_face(r.face_id)
    f = outgoing(_inside(ctx.cfg.paths.unknowns, face.crop_path), "face_id")
    return {"face_id": face.id, "session_id": face.session_id, "content_type": f.content_type,
            "encoding": f.encoding, "content": f.content, "bytes": f.bytes, "sha256": f.sha256}


@command("snapshot", api.SessionRequest)
def snapshot(ctx: Services, r: api.SessionRequest) -> dict[str, Any]:
    row = ctx.store.get_session(r.session_id)
    path = ctx.cfg.paths.frames / f"{row.id}.jpg"
    if not path.is_file():
        raise NotFound(f"session_id: no annotated frame kept for session '{row.name}' (it has not ended, showed "
                       "no frame, or the frame expired)")
    f = outgoing(path, "session_id")
    return {"session_id": row.id, "content_type": f.content_type, "encoding": f.encoding, "content": f.content,
            "bytes": f.bytes, "sha256": f.sha256}


def _inside(root: Path, stored: str) -> Path:
    """A path from our own database, refused (404) unless it is inside `root` (defence in depth)."""
    path = Path(stored).resolve()
    if root.resolve() not in path.parents:
        raise NotFound("face_id: the crop is not in the unknown-faces directory")
    return path


def _record_file(reports: Path, name: str) -> Path:
    """A record export `export` wrote: a plain name (validated) of a regular file right in the reports
    directory, else 404."""
    path = reports / name
    if path.is_symlink() or not path.is_file() or path.resolve().parent != reports.resolve():
        raise NotFound(f"name: no record export '{name}' on the box (not exported yet, or expired: export again)")
    return path


# ---- downloads in pieces ---------------------------------------------------------------------------------------


@command("download", media_api.DownloadRequest, lane="slow")
def download(ctx: Services, r: media_api.DownloadRequest) -> dict[str, Any]:
    """A piece of a file the box lets a client fetch (runs on the slow-request worker: hashing a large export
    for the first time takes seconds, and the dispatcher keeps answering meanwhile)."""
    path, name, known = _download_source(ctx, r)
    p = piece(path, name, r.offset, r.length, ctx.downloads, known)
    return {"kind": r.kind, "name": p.name, "bytes": p.bytes, "sha256": p.sha256, "offset": p.offset,
            "length": p.length, "content_type": p.content_type, "encoding": "base64", "content": p.content,
            "eof": p.eof}


def _required(value: Any, field: str, kind: str) -> Any:
    if value is None:
        raise InvalidRequest(f"{field}: required to download a{'n' if kind[0] in 'aeiou' else ''} {kind}")
    return value


def _download_source(ctx: Services, r: media_api.DownloadRequest) -> tuple[Path, str, str | None]:
    """(file, name for the client, its sha256 when already known) of what `r` asks for."""
    paths = ctx.cfg.paths
    if r.kind == "media":
        media = ctx.store.media_named(_required(r.name, "name", r.kind))
        return paths.media / media.name, media.name, media.sha256
    if r.kind == "unknown_face":
        face = ctx.store.unknown_face(_required(r.face_id, "face_id", r.kind))
        return _inside(paths.unknowns, face.crop_path), f"face-{face.id}.jpg", None
    if r.kind == "record":
        record = _record_file(paths.reports, _required(r.name, "name", r.kind))
        return record, record.name, None
    if r.kind == "photo":
        found = [p for p in ctx.store.photos(_required(r.section, "section", r.kind),
                                             _required(r.student_id, "student_id", r.kind))
                 if p.id == _required(r.photo_id, "photo_id", r.kind)]
        path = photo_path(paths.photos, found[0].photo) if found and found[0].photo else None
        if path is None:
            raise NotFound(f"photo_id: student '{r.student_id}' has no stored photo {r.photo_id}")
        return path, path.name, None
    row = ctx.store.get_session(_required(r.session_id, "session_id", r.kind))
    if r.kind == "export":
        if not row.export_path:
            raise NotFound(f"session_id: session '{row.name}' has no export video (not asked for, not finished, "
                           "or expired)")
        path = _inside(paths.exports, row.export_path)
        return path, path.name, None
    report = paths.reports / f"{safe_file_stem(row.name, row.id)}.{r.format}"
    if r.offset == 0 or not report.is_file():  # a new download gets the record as it is now
        report = write_report(build_results(ctx.store, row, ctx.cfg), paths.reports, r.format)
    return report, report.name, None

