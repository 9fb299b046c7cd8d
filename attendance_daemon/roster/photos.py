"""Enrollment photos the box keeps (sent over MQTT, or an unknown face assigned to a student): stored as
`<data>/photos/<photo id>.<ext>`, where the photo id is the id of the encoding made from it, so a photo and
its encoding are listed and removed together. The file name carries no name or student id."""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

from ..common.errors import Conflict, InvalidRequest, NotFound
from ..store import Store, UnknownRow
from .enrollment import Enroller, EnrollOutcome

_PHOTO_NAME = re.compile(r"[0-9]{1,18}\.(jpg|png)")


def photo_path(photos: Path, name: str) -> Path | None:
    """The stored photo `name` (from the database) as a path, or None when it is not one of ours."""
    return photos / name if _PHOTO_NAME.fullmatch(name) else None


def clear_incoming(photos: Path) -> int:
    """Deletes uploads an enrollment left behind when the daemon died during it (photos of faces that were
    never stored, listed or erasable); at start-up, before any enrollment runs. Returns how many."""
    stale = [d for d in photos.glob(".incoming-*") if d.is_dir() and not d.is_symlink()]
    for d in stale:
        shutil.rmtree(d, ignore_errors=True)
    return len(stale)


def clear_orphans(photos: Path, named: set[str]) -> int:
    """Deletes stored photos that no encoding names (`named`): the daemon died between keeping a photo and
    recording it, so nothing would ever list or erase it. At start-up, before any enrollment runs."""
    if not photos.is_dir():
        return 0
    orphans = [p for p in photos.iterdir() if _PHOTO_NAME.fullmatch(p.name) and p.name not in named
               and p.is_file() and not p.is_symlink()]
    for p in orphans:
        p.unlink()
    return len(orphans)


def enroll_uploads(enroller: Enroller, store: Store, photos: Path, section: str, student_id: str, name: str,
                   uploads: list[tuple[str, bytes, str]]) -> EnrollOutcome:
    """Enrolls (client name, bytes, suffix) images with the same rules as files in the enrollment directory;
    each accepted one is kept as the photo of its encoding, rejected ones are not kept. `rejected[].image` is
    the client's name."""
    incoming = photos / f".incoming-{uuid.uuid4().hex}"
    incoming.mkdir(parents=True)
    try:
        shown: dict[Path, str] = {}
        suffixes: dict[Path, str] = {}
        for client_name, data, suffix in uploads:  # named as the client did (a safe id): the encoding's source
            path = incoming / client_name
            path.write_bytes(data)
            shown[path], suffixes[path] = client_name, suffix
        outcome = enroller.enroll(section, student_id, name, list(shown))
        for image, encoding_id in outcome.accepted:
            stored = f"{encoding_id}{suffixes[image]}"
            image.replace(photos / stored)
            store.set_encoding_photo(encoding_id, stored)
        for r in outcome.rejected:
            r["image"] = shown.get(Path(r["image"]), r["image"])
        return outcome
    finally:
        shutil.rmtree(incoming, ignore_errors=True)


def assign_unknown(enroller: Enroller, store: Store, photos: Path, face: UnknownRow, section: str,
                   student_id: str, name: str | None) -> tuple[int, list[str]]:
    """Turns an unknown face into an encoding (and photo) of a student, created when `name` is given and the
    student is new. Uses the track's mean encoding recorded in the session, else encodes the crop.
    Returns (photo id, near-duplicate warnings)."""
    if face.assigned_to is not None:
        raise Conflict(f"face_id: unknown face {face.id} is already assigned to '{face.assigned_to}'")
    try:
        store.student_rowid(section, student_id)
    except NotFound:
        if name is None:
            raise InvalidRequest(f"name: required to enroll the new student '{student_id}'") from None
    crop = Path(face.crop_path)
    vector = face.vector
    if vector is None:
        if not crop.is_file():
            raise NotFound(f"face_id: the crop of unknown face {face.id} is no longer on the box")
        encoded = enroller.encode_image(crop)
        if isinstance(encoded, str):
            raise InvalidRequest(f"face_id: the crop of unknown face {face.id} cannot be enrolled: {encoded}")
        vector = encoded
    warnings, (photo_id,) = enroller.add_encodings(section, student_id, name, [(f"unknown-face-{face.id}", vector)])
    if crop.is_file():
        shutil.copyfile(crop, photos / f"{photo_id}.jpg")
        store.set_encoding_photo(photo_id, f"{photo_id}.jpg")
    store.mark_assigned(face.id, photo_id)
    return photo_id, warnings
