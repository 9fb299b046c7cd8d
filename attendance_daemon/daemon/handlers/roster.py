"""Roster requests: sections and students, enrollment from box files or photos in the request, a student's
photos, assigning an unknown face, removing a student. Sections the hub manages refuse local changes (409)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...common.errors import Conflict, InvalidRequest, NotFound
from ...common.paths import resolve_inside
from ...contract import api
from ...media.transfer import MAX_UPLOAD_TOTAL_BYTES, decode_image, outgoing
from ...privacy.sweep import sweep
from ...roster import photos
from ...roster.capture import CaptureRules, Selection, detect_faces, photo_jpeg
from ...roster.enrollment import EnrollOutcome, too_large
from ...sessions.cameras import resolve_camera
from ...sessions.enroll_capture import capture
from ...sessions.runner import SessionControl
from ..registry import command

if TYPE_CHECKING:
    from ..services import Services


@command("sections", api.Empty)
def sections(ctx: Services, r: api.Empty) -> list[dict[str, Any]]:
    return [{"section": s, "students": n} for s, n in ctx.store.sections()]


@command("students", api.SectionRequest)
def students(ctx: Services, r: api.SectionRequest) -> list[dict[str, Any]]:
    return [{"student_id": s.student_id, "name": s.name, "encodings": s.encodings}
            for s in ctx.store.students(r.section)]


@command("enroll", api.EnrollRequest, lane="slow")
def enroll(ctx: Services, r: api.EnrollRequest) -> dict[str, Any]:
    refuse_hub_managed(ctx, r.section)
    if (r.images is None) == (r.images_b64 is None):
        raise InvalidRequest("images: give exactly one of images (paths on the box) and images_b64 (photos)")
    if r.images_b64 is not None:  # Extension: photos in the request (remote enrollment)
        outcome = upload_outcome(ctx, r)
    else:
        assert r.images is not None
        outcome = _enroll_files(ctx, r.section, r.student_id, r.name, r.images)
    ctx.info.publish()
    result: dict[str, Any] = {"student_id": r.student_id, "encodings_added": outcome.encodings_added,
                              "rejected": [{"image": x["image"], "reason": x["reason"]} for x in outcome.rejected]}
    if outcome.warnings:
        result["warnings"] = outcome.warnings
    if r.images_b64 is not None:
        result["photo_ids"] = [photo_id for _, photo_id in outcome.accepted]
    return result


def _enroll_files(ctx: Services, section: str, student_id: str, name: str, paths: list[str]) -> EnrollOutcome:
    limit = ctx.cfg.enrollment.max_images
    if len(paths) > limit:
        raise InvalidRequest(f"images: {len(paths)} images in one request; at most {limit} "
                             "(enrollment.max_images)")
    images = [resolve_inside(ctx.cfg.paths.enrollment, p, "images", "enrollment directory") for p in paths]
    for i, image in enumerate(images):  # refused as a whole before anything is decoded
        problem = too_large(image, ctx.cfg.enrollment.max_image_pixels) if image.is_file() else None
        if problem:
            raise InvalidRequest(f"images[{i}]: '{paths[i]}': {problem}")
    return ctx.enroller.enroll(section, student_id, name, images)


@command("remove_student", api.RemoveStudentRequest)
def remove_student(ctx: Services, r: api.RemoveStudentRequest) -> dict[str, Any]:
    refuse_hub_managed(ctx, r.section)
    sweep(ctx.cfg, ctx.store, ctx.store.remove_student(r.section, r.student_id))  # their stored photos go too
    ctx.info.publish()
    return {"removed": True}


def refuse_hub_managed(ctx: Services, section: str) -> None:
    """Sections in [roster] sections come from the hub: a local change would be overwritten (and diverge)."""
    if section in ctx.cfg.roster.sections:
        raise Conflict(f"section: '{section}' is managed by the hub (roster.sections); enroll at the hub")




def upload_outcome(ctx: Services, r: api.EnrollRequest) -> EnrollOutcome:
    """`enroll` with `images_b64`: every photo is checked (base64, size, format, pixels) before any is
    decoded into pixels; then the same one-face rules as for files."""
    assert r.images_b64 is not None
    limit = ctx.cfg.enrollment.max_images
    if len(r.images_b64) > limit:
        raise InvalidRequest(f"images_b64: {len(r.images_b64)} images in one request; at most {limit} "
                             "(enrollment.max_images)")
    if len({u.name for u in r.images_b64}) != len(r.images_b64):
        raise InvalidRequest("images_b64: each image needs its own name")
    uploads, total = [], 0
    for i, upload in enumerate(r.images_b64):
        data, suffix = decode_image(upload.data, f"images_b64[{i}].data", ctx.cfg.enrollment.max_image_pixels)
        total += len(data)
        if total > MAX_UPLOAD_TOTAL_BYTES:
            raise InvalidRequest(f"images_b64: more than {MAX_UPLOAD_TOTAL_BYTES} bytes of images in one request")
        uploads.append((upload.name, data, suffix))
    return photos.enroll_uploads(ctx.enroller, ctx.store, ctx.cfg.paths.photos, r.section, r.student_id, r.name,
                                 uploads)


# ---- enrollment from the box's own evidence --------------------------------------------------------------


@command("assign_unknown", api.AssignUnknownRequest, lane="slow")
def assign_unknown(ctx: Services, r: api.AssignUnknownRequest) -> dict[str, Any]:
    refuse_hub_managed(ctx, r.section)
    face = ctx.store.unknown_face(r.face_id)
    photo_id, warnings = photos.assign_unknown(ctx.enroller, ctx.store, ctx.cfg.paths.photos, face, r.section,
                                               r.student_id, r.name)
    ctx.info.publish()
    result: dict[str, Any] = {"face_id": face.id, "student_id": r.student_id, "photo_id": photo_id}
    if warnings:
        result["warnings"] = warnings
    return result


@command("student_photos", api.StudentRequest)
def student_photos(ctx: Services, r: api.StudentRequest) -> list[dict[str, Any]]:
    return [{"photo_id": p.id, "source": p.source, "stored": p.photo is not None, "created_at": p.created_at}
            for p in ctx.store.photos(r.section, r.student_id)]


@command("student_photo", api.PhotoRequest)
def student_photo(ctx: Services, r: api.PhotoRequest) -> dict[str, Any]:
    found = [p for p in ctx.store.photos(r.section, r.student_id) if p.id == r.photo_id]
    if not found:
        raise NotFound(f"photo_id: student '{r.student_id}' has no photo {r.photo_id}")
    path = photos.photo_path(ctx.cfg.paths.photos, found[0].photo) if found[0].photo else None
    if path is None:
        raise NotFound(f"photo_id: photo {r.photo_id} was enrolled from a file in the enrollment directory; "
                       "the box keeps no copy of it")
    f = outgoing(path, "photo_id")
    return {"photo_id": r.photo_id, "content_type": f.content_type, "encoding": f.encoding, "content": f.content,
            "bytes": f.bytes, "sha256": f.sha256}


@command("remove_photo", api.PhotoRequest)
def remove_photo(ctx: Services, r: api.PhotoRequest) -> dict[str, Any]:
    refuse_hub_managed(ctx, r.section)
    sweep(ctx.cfg, ctx.store, ctx.store.remove_photo(r.section, r.student_id, r.photo_id))
    ctx.info.publish()
    return {"photo_id": r.photo_id, "removed": True}


# ---- enrollment from the box's camera --------------------------------------------------------------------------


@command("enroll_capture", api.EnrollCaptureRequest, lane="slow")
def enroll_capture(ctx: Services, r: api.EnrollCaptureRequest) -> dict[str, Any]:
    """Photos of a student from the box's camera (seconds of them turning their head), enrolled like uploaded
    photos. Holds the camera, and so the global lock, while it captures; runs on the slow-request worker."""
    refuse_hub_managed(ctx, r.section)
    camera = resolve_camera(ctx.cfg, r.camera)
    rules = CaptureRules(max_photos=min(r.max_photos, ctx.cfg.enrollment.max_images))
    daemon = ctx.cfg.daemon

    def work(control: SessionControl, beat: Callable[[], None]) -> Selection:
        return capture(camera, detect_faces, rules, r.seconds, control, beat, daemon.open_timeout_s,
                       daemon.camera_retry_s)

    selection = ctx.sessions.hold_camera(f"enroll-{r.student_id}", r.section, camera.label, r.client, work)
    uploads = [(f"capture-{i + 1:02d}", photo_jpeg(bgr, box), ".jpg") for i, (bgr, box) in enumerate(selection.kept)]
    outcome = (photos.enroll_uploads(ctx.enroller, ctx.store, ctx.cfg.paths.photos, r.section, r.student_id, r.name,
                                     uploads) if uploads else EnrollOutcome(r.student_id))
    ctx.info.publish()
    result: dict[str, Any] = {"student_id": r.student_id, "frames": selection.frames, "kept": len(selection.kept),
                              "dropped": {k: n for k, n in selection.dropped.items() if n},
                              "encodings_added": outcome.encodings_added,
                              "rejected": [{"image": x["image"], "reason": x["reason"]} for x in outcome.rejected],
                              "photo_ids": [photo_id for _, photo_id in outcome.accepted]}
    if outcome.warnings:
        result["warnings"] = outcome.warnings
    return result

