"""Erasure on the box: forgetting a student everywhere, deleting a session with its files.

The database part is one transaction in the store (with secure_delete and the WAL truncated); this module
deletes the files that held the same person: stored photos, assigned crops, the enrollment directory's
`<section>/<student_id>__<name>/` folders, and the reports, export videos and kept frames of the sessions
they were recorded in (those show their name and face)."""

from __future__ import annotations

import contextlib
import logging
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..common.names import safe_file_stem
from ..config import Config
from ..roster.photos import remove_photo_file
from ..store import SessionRow, Store

log = logging.getLogger(__name__)

MAX_SESSIONS = 1_000_000  # every session of a section, for the reports that name a forgotten student


@dataclass
class Forgotten:
    sections: list[str]
    encodings: int
    photos: int
    crops: int
    attendance_rows: int
    sessions: list[str]


def placeholder() -> str:
    """A stable (the same in every row of one erasure) and non-reversible stand-in for an id and a name."""
    return f"forgotten-{secrets.token_hex(6)}"


def forget_student(cfg: Config, store: Store, student_id: str, section: str | None, remove_rows: bool) -> Forgotten:
    erased = store.forget_student(student_id, section, remove_rows, placeholder())
    photos = sum(remove_photo_file(cfg.paths.photos, p) for p in erased.photos)
    photos += _enrollment_folders(cfg.paths.enrollment, student_id, section)
    crops = sum(_unlink_inside(cfg.paths.unknowns, Path(c)) for c in erased.crops)
    files = 0
    for sid in erased.sessions:
        row = store.get_session(sid)
        files += sum(_unlink_inside(root, path) for root, path in session_files(cfg, row))
    if erased.sessions:
        store.clear_export(erased.sessions)
    # The reports of their sections' other sessions list them as absent, by name (`report` writes them anew)
    for sec in erased.sections:
        for row in store.list_sessions(section=sec, limit=MAX_SESSIONS):
            if row.id not in erased.sessions:
                files += sum(_unlink_inside(root, path) for root, path in session_files(cfg, row)
                             if root == cfg.paths.reports)
    log.info("forget_student: %d encodings, %d photos, %d crops, %d attendance rows (%s) in %d sessions; "
             "%d reports, exports and frames of those sessions deleted", erased.encodings, photos, crops,
             erased.attendance_rows, "removed" if remove_rows else "anonymised", len(erased.sessions), files)
    return Forgotten(sorted(erased.sections), erased.encodings, photos, crops, erased.attendance_rows,
                     erased.sessions)


def delete_session(cfg: Config, store: Store, session_id: str) -> tuple[SessionRow, int]:
    """Deletes the session's rows, then its crops, reports, export and kept frame; returns (row, files)."""
    row, crops = store.delete_session(session_id)
    files = sum(_unlink_inside(cfg.paths.unknowns, Path(c)) for c in crops)
    files += sum(_unlink_inside(root, path) for root, path in session_files(cfg, row))
    crop_dir = cfg.paths.unknowns / row.name  # as the session runner names it
    if crop_dir.is_dir() and not crop_dir.is_symlink() and crop_dir.resolve().parent == cfg.paths.unknowns.resolve():
        with contextlib.suppress(OSError):
            crop_dir.rmdir()
    log.info("delete_session: session %s and %d files deleted", row.name, files)
    return row, files


def session_files(cfg: Config, row: SessionRow) -> list[tuple[Path, Path]]:
    """(directory it must be in, path) of a session's reports, export video and kept annotated frame."""
    stem = safe_file_stem(row.name, row.id)
    p = cfg.paths
    out = [(p.reports, p.reports / f"{stem}.{fmt}") for fmt in ("csv", "pdf")]
    out.append((p.frames, p.frames / f"{row.id}.jpg"))
    if row.export_path:
        out.append((p.exports, Path(row.export_path)))
    return out


def _unlink_inside(root: Path, path: Path) -> bool:
    """Deletes `path` when it is a file inside `root` (paths come from our own database, checked anyway)."""
    try:
        full = path.resolve()
        if root.resolve() not in full.parents or not full.is_file():
            return False
        full.unlink()
    except OSError as exc:
        log.error("cannot delete a file: %s", exc.strerror)
        return False
    return True


def _enrollment_folders(root: Path, student_id: str, section: str | None) -> int:
    """Deletes `<section>/<student_id>__<name>/` folders (the bulk layout) in the enrollment directory;
    returns how many files they held."""
    if not root.is_dir():
        return 0
    count = 0
    sections = [root / section] if section is not None else [d for d in root.iterdir() if d.is_dir()]
    for sec in sections:
        if not sec.is_dir() or sec.is_symlink() or sec.resolve().parent != root.resolve():
            continue
        for folder in sec.iterdir():
            if folder.is_dir() and not folder.is_symlink() and folder.name.partition("__")[0] == student_id \
                    and "__" in folder.name:
                count += sum(1 for f in folder.rglob("*") if f.is_file())
                shutil.rmtree(folder)
    return count
