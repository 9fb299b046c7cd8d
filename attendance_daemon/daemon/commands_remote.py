"""Remote operations (issue 8): fetch files, enroll from photos in the request, assign unknown faces,
manage a student's photos, forget a student, delete a session. Registered in the one command registry."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..common.errors import Conflict, InvalidRequest, NotFound
from ..contract import api
from ..media.transfer import MAX_UPLOAD_TOTAL_BYTES, decode_image, outgoing
from ..privacy import erasure
from ..roster import photos
from ..roster.enrollment import EnrollOutcome
from ..store import StudentRow
from .commands import command, refuse_hub_managed

if TYPE_CHECKING:
    from .service import Daemon


def upload_outcome(d: Daemon, r: api.EnrollRequest) -> EnrollOutcome:
    """`enroll` with `images_b64`: every photo is checked (base64, size, format, pixels) before any is
    decoded into pixels; then the same one-face rules as for files."""
    assert r.images_b64 is not None
    limit = d.cfg.enrollment.max_images
    if len(r.images_b64) > limit:
        raise InvalidRequest(f"images_b64: {len(r.images_b64)} images in one request; at most {limit} "
                             "(enrollment.max_images)")
    if len({u.name for u in r.images_b64}) != len(r.images_b64):
        raise InvalidRequest("images_b64: each image needs its own name")
    uploads, total = [], 0
    for i, upload in enumerate(r.images_b64):
        data, suffix = decode_image(upload.data, f"images_b64[{i}].data", d.cfg.enrollment.max_image_pixels)
        total += len(data)
        if total > MAX_UPLOAD_TOTAL_BYTES:
            raise InvalidRequest(f"images_b64: more than {MAX_UPLOAD_TOTAL_BYTES} bytes of images in one request")
        uploads.append((upload.name, data, suffix))
    return photos.enroll_uploads(d.enroller, d.store, d.cfg.paths.photos, r.section, r.student_id, r.name,
                                 uploads)


def _refuse_running(d: Daemon, session_id: str | None = None, student_id: str | None = None,
                    section: str | None = None) -> None:
    """409 (with the running session's id) for the running session itself, or for a student on its roster:
    the session holds its rows and the roster's encodings in memory and would write them back."""
    session = d.sm.state().session
    if session is None:
        return
    if session_id == session.id:
        raise Conflict("session_id: the session is running; stop it first", data={"session_id": session.id})
    on_it = student_id is not None and section in (None, session.section) and (
        any(s.student_id == student_id for s in _roster(d, session.section))
        or any(a.student_id == student_id for a in d.store.attendance(session.id)))  # removed since its start
    if on_it:
        raise Conflict(f"student_id: '{student_id}' is on the roster of the running session; stop it first "
                       "(or retry when it has ended)", data={"session_id": session.id})


def _roster(d: Daemon, section: str) -> list[StudentRow]:
    try:
        return d.store.students(section)
    except NotFound:  # the section was removed while its session runs
        return []


# ---- fetch -----------------------------------------------------------------------------------------------


@command("unknown_faces", api.SessionRequest)
def unknown_faces(d: Daemon, r: api.SessionRequest) -> list[dict[str, Any]]:
    return [{"face_id": u.id, "track_id": u.track_id, "at_s": u.at_s, "assigned_to": u.assigned_to}
            for u in d.store.unknown_faces(r.session_id)]


@command("unknown_face_image", api.FaceRequest)
def unknown_face_image(d: Daemon, r: api.FaceRequest) -> dict[str, Any]:
    face = d.store.unknown_face(r.face_id)
    f = outgoing(_inside(d.cfg.paths.unknowns, face.crop_path), "face_id")
    return {"face_id": face.id, "session_id": face.session_id, "content_type": f.content_type,
            "encoding": f.encoding, "content": f.content, "bytes": f.bytes, "sha256": f.sha256}


@command("snapshot", api.SessionRequest)
def snapshot(d: Daemon, r: api.SessionRequest) -> dict[str, Any]:
    row = d.store.get_session(r.session_id)
    path = d.cfg.paths.frames / f"{row.id}.jpg"
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


# ---- enrollment from the box's own evidence --------------------------------------------------------------


@command("assign_unknown", api.AssignUnknownRequest, background=True)
def assign_unknown(d: Daemon, r: api.AssignUnknownRequest) -> dict[str, Any]:
    refuse_hub_managed(d, r.section)
    face = d.store.unknown_face(r.face_id)
    photo_id, warnings = photos.assign_unknown(d.enroller, d.store, d.cfg.paths.photos, face, r.section,
                                               r.student_id, r.name)
    d.publish_info()
    result: dict[str, Any] = {"face_id": face.id, "student_id": r.student_id, "photo_id": photo_id}
    if warnings:
        result["warnings"] = warnings
    return result


@command("student_photos", api.StudentRequest)
def student_photos(d: Daemon, r: api.StudentRequest) -> list[dict[str, Any]]:
    return [{"photo_id": p.id, "source": p.source, "stored": p.photo is not None, "created_at": p.created_at}
            for p in d.store.photos(r.section, r.student_id)]


@command("student_photo", api.PhotoRequest)
def student_photo(d: Daemon, r: api.PhotoRequest) -> dict[str, Any]:
    found = [p for p in d.store.photos(r.section, r.student_id) if p.id == r.photo_id]
    if not found:
        raise NotFound(f"photo_id: student '{r.student_id}' has no photo {r.photo_id}")
    path = photos.photo_path(d.cfg.paths.photos, found[0].photo) if found[0].photo else None
    if path is None:
        raise NotFound(f"photo_id: photo {r.photo_id} was enrolled from a file in the enrollment directory; "
                       "the box keeps no copy of it")
    f = outgoing(path, "photo_id")
    return {"photo_id": r.photo_id, "content_type": f.content_type, "encoding": f.encoding, "content": f.content,
            "bytes": f.bytes, "sha256": f.sha256}


@command("remove_photo", api.PhotoRequest)
def remove_photo(d: Daemon, r: api.PhotoRequest) -> dict[str, Any]:
    refuse_hub_managed(d, r.section)
    name = d.store.remove_photo(r.section, r.student_id, r.photo_id)
    photos.remove_photo_file(d.cfg.paths.photos, name)
    d.store.purge_wal()
    d.publish_info()
    return {"photo_id": r.photo_id, "removed": True}


# ---- erasure ---------------------------------------------------------------------------------------------


@command("forget_student", api.ForgetStudentRequest)
def forget_student(d: Daemon, r: api.ForgetStudentRequest) -> dict[str, Any]:
    _refuse_running(d, student_id=r.student_id, section=r.section)
    done = erasure.forget_student(d.cfg, d.store, r.student_id, r.section, r.attendance == "remove")
    d.publish_info()
    if done.sessions or done.sections:  # retained results and live roster list roster students absent, by name
        d.republish_after_erasure()
    return {"student_id": r.student_id, "sections": done.sections, "encodings_removed": done.encodings,
            "photos_removed": done.photos, "crops_removed": done.crops,
            "attendance": "removed" if r.attendance == "remove" else "anonymised",
            "attendance_rows": done.attendance_rows}


@command("delete_session", api.SessionRequest)
def delete_session(d: Daemon, r: api.SessionRequest) -> dict[str, Any]:
    _refuse_running(d, session_id=r.session_id)
    row, files = erasure.delete_session(d.cfg, d.store, r.session_id)
    d.republish_after_erasure()
    return {"session_id": row.id, "deleted": True, "files_removed": files}
