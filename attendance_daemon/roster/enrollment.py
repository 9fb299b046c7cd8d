"""Enrollment: one face per image becomes a stored encoding; bad images are rejected with the reason."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from ..common.errors import Conflict
from ..contract.roster_message import MAX_ROSTER_ENCODINGS
from ..recognition.boxes import Box
from ..recognition.encode import Encoder, FaceEncoder
from ..store import StudentRow

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
_MAX_SIDE = 1600  # enrollment photos from phones are large; HOG on a downscaled copy is enough
DEFAULT_MAX_PIXELS = 40_000_000


def header_size(image: Path) -> tuple[int, int] | None:
    """(width, height) from the header alone (Pillow's open reads no pixel data); None if unreadable.

    Beyond Pillow's own bomb limit (about 179 MP) its open refuses even to say the size: taken as
    (pixels, 1) from the refusal, which is all the check below needs."""
    try:
        with Image.open(image) as im:
            return im.size
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        return (int(found.group(1)) if found else 2**31), 1
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def too_large(image: Path, max_pixels: int) -> str | None:
    """Why `image` must not be decoded: a 30000x30000 PNG is 876 KB on disk but 2.7 GB decoded."""
    size = header_size(image)
    if size is None or size[0] * size[1] <= max_pixels:
        return None
    width, height = size
    shape = f"{width}x{height} " if height > 1 else ""
    return (f"image is {shape}({width * height / 1e6:.0f} MP); at most {max_pixels / 1e6:g} MP "
            "(enrollment.max_image_pixels)")


class RosterStore(Protocol):
    """What enrollment needs of a store: the box's SQLite Store and the hub's PostgreSQL HubStore both have it."""

    def section_exists(self, section: str) -> bool: ...
    def upsert_student(self, section: str, student_id: str, name: str) -> int: ...
    def student_rowid(self, section: str, student_id: str) -> int: ...
    def add_encoding(self, student_rowid: int, vector: np.ndarray, source: str) -> int: ...
    def section_encodings(self, section: str) -> tuple[list[StudentRow], np.ndarray, np.ndarray]: ...
    def students(self, section: str) -> list[StudentRow]: ...


@dataclass
class EnrollOutcome:
    student_id: str
    encodings_added: int = 0
    rejected: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    accepted: list[tuple[Path, int]] = field(default_factory=list)  # (image, encoding id)
    skipped: list[Path] = field(default_factory=list)  # the hub: photos this student already has (idempotent)


def cap_reason(have: int) -> str:
    """Why one more encoding of a student who has `have` is refused (the roster's per-student cap)."""
    return (f"the student has {have} encodings: at most {MAX_ROSTER_ENCODINGS} per student "
            "(MAX_ROSTER_ENCODINGS); remove one (remove_photo) before adding another")


class Enroller:
    """Locates faces with dlib HOG (upsampled once: enrollment favours recall over speed)."""

    def __init__(self, store: RosterStore, encoder: FaceEncoder | None = None, duplicate_warn_distance: float = 0.4,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        import dlib

        self._hog = dlib.get_frontal_face_detector()  # not face_recognition: that would load all four dlib models
        self.store = store
        self.encoder: FaceEncoder = encoder or Encoder()
        self.dup_distance = duplicate_warn_distance
        self.max_pixels = max_pixels

    def encode_image(self, image: Path) -> np.ndarray | str:
        """The image's single face encoding, or the reason it is rejected."""
        if not image.is_file():
            return "file not found"
        if header_size(image) is None:
            return "not a readable image"
        problem = too_large(image, self.max_pixels)
        if problem:
            return problem
        bgr = cv2.imread(str(image), cv2.IMREAD_COLOR)
        if bgr is None:
            return "not a readable image"
        scale = min(1.0, _MAX_SIDE / max(bgr.shape[:2]))
        if scale < 1.0:
            bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        locations = self._hog(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), 1)
        if not locations:
            return "no face found"
        if len(locations) > 1:
            return f"{len(locations)} faces found; an enrollment image must show exactly one"
        r = locations[0]
        box = Box(float(r.left()), float(r.top()), float(r.right()), float(r.bottom())).clipped(*bgr.shape[1::-1])
        return self.encoder.encode(bgr, [box])[0]

    def enroll(self, section: str, student_id: str, name: str, images: Iterable[Path]) -> EnrollOutcome:
        out = EnrollOutcome(student_id)
        encodings: list[tuple[Path, np.ndarray]] = []
        for image in images:
            result = self.encode_image(image)
            if isinstance(result, str):
                out.rejected.append({"image": str(image), "reason": result})
            else:
                encodings.append((image, result))
        have = self.encoding_count(section, student_id)
        room = max(0, MAX_ROSTER_ENCODINGS - have)
        out.rejected += [{"image": str(image), "reason": cap_reason(max(have, MAX_ROSTER_ENCODINGS))}
                         for image, _ in encodings[room:]]
        encodings = encodings[:room]
        if not encodings:
            return out
        out.warnings, ids = self.add_encodings(section, student_id, name, [(i.name, e) for i, e in encodings])
        out.accepted = [(image, enc_id) for (image, _), enc_id in zip(encodings, ids, strict=True)]
        out.encodings_added = len(ids)
        return out

    def add_encodings(self, section: str, student_id: str, name: str | None,
                      encodings: list[tuple[str, np.ndarray]]) -> tuple[list[str], list[int]]:
        """Stores (source, encoding) pairs for a student (created when `name` is given); returns the
        near-duplicate warnings and the new encoding ids. `name` None keeps an existing student's name. More than
        MAX_ROSTER_ENCODINGS for the student is refused (409) before anything is stored."""
        have = self.encoding_count(section, student_id)
        if have + len(encodings) > MAX_ROSTER_ENCODINGS:
            raise Conflict(f"student_id: '{student_id}': {cap_reason(have)}")
        warnings = self.near_duplicates(section, student_id, [e for _, e in encodings])
        rowid = (self.store.upsert_student(section, student_id, name) if name is not None
                 else self.store.student_rowid(section, student_id))
        return warnings, [self.store.add_encoding(rowid, enc, source) for source, enc in encodings]

    def encoding_count(self, section: str, student_id: str) -> int:
        if not self.store.section_exists(section):
            return 0
        return next((s.encodings for s in self.store.students(section) if s.student_id == student_id), 0)

    def near_duplicates(self, section: str, student_id: str, new: list[np.ndarray]) -> list[str]:
        """Warn when a new face is this close to another student: matching would confuse the two."""
        if not self.store.section_exists(section):
            return []
        roster, known, owners = self.store.section_encodings(section)
        if len(known) == 0:
            return []
        dist = np.linalg.norm(np.stack(new)[:, None, :] - known[None, :, :], axis=2).min(axis=0)
        warnings = []
        for idx in sorted({int(o) for o in owners}):
            other = roster[idx]
            if other.student_id == student_id:
                continue
            d = float(dist[owners == idx].min())
            if d < self.dup_distance:
                warnings.append(
                    f"student {student_id} looks very close to {other.student_id} ({other.name}): distance {d:.2f}"
                )
        return warnings


def parse_student_folder(folder: Path) -> tuple[str, str] | None:
    """`<student_id>__<name>` -> (student_id, name with '_' as spaces); None if the name does not fit."""
    sid, sep, name = folder.name.partition("__")
    name = name.replace("_", " ").strip()
    return (sid, name) if sep and sid and name else None


def bulk_folders(root: Path) -> list[tuple[str, str, str, list[Path]]]:
    """(section, student_id, name, images) for each `<section>/<student_id>__<name>/` under root."""
    found = []
    for section_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for student_dir in sorted(p for p in section_dir.iterdir() if p.is_dir()):
            parsed = parse_student_folder(student_dir)
            if parsed is None:
                log.warning("skipping %s: folder name must be <student_id>__<name>", student_dir)
                continue
            images = sorted(p for p in student_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            found.append((section_dir.name, parsed[0], parsed[1], images))
    return found
