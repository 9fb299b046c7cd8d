"""Erasure on the box: forgetting a student everywhere, deleting a session with its files.

The database part is one transaction in the store (with secure_delete and the WAL truncated) that also records
every file holding the same person as doomed: stored photos, assigned crops, the enrollment directory's
`<section>/<student_id>__<name>/` folders, and the reports, record exports, export videos and kept frames of the
sessions they were recorded in (those show their name and face). The sweep (sweep.py) then deletes them; a crash
before it finishes leaves the records, which the next sweep (at start-up) completes."""

from __future__ import annotations

import glob
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..attendance.record_export import section_stem
from ..common.names import safe_file_stem
from ..config import Config
from ..store import SessionRow, Store
from .sweep import Swept, sweep

log = logging.getLogger(__name__)


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
    erased = store.forget_student(student_id, section, remove_rows, placeholder(), session_files_of(cfg))
    swept = sweep(cfg, store, erased.doomed)
    photos = _count(swept, lambda s: s.file.root in ("photos", "enrollment"))
    crops = _count(swept, lambda s: s.file.root == "unknowns")
    files = _count(swept, lambda s: s.file.root in ("reports", "exports", "frames"))
    log.info("forget_student: %d encodings, %d photos, %d crops, %d attendance rows (%s) in %d sessions; "
             "%d reports, exports and frames of those sessions deleted", erased.encodings, photos, crops,
             erased.attendance_rows, "removed" if remove_rows else "anonymised", len(erased.sessions), files)
    return Forgotten(sorted(erased.sections), erased.encodings, photos, crops, erased.attendance_rows,
                     erased.sessions)


def delete_session(cfg: Config, store: Store, session_id: str) -> tuple[SessionRow, int]:
    """Deletes the session's rows, then its crops, reports, export and kept frame; returns (row, files)."""
    row, doomed = store.delete_session(session_id, session_files_of(cfg))
    files = _count(sweep(cfg, store, doomed), lambda s: True)
    log.info("delete_session: session %s and %d files deleted", row.name, files)
    return row, files


def session_files(cfg: Config, row: SessionRow, section_exports: list[Path] | None = None,
                  ) -> list[tuple[Path, Path]]:
    """(directory it must be in, path) of a session's reports, export video and kept annotated frame, and the
    record exports that may show it: its own, and its section's over date ranges (`section_exports`, listed
    here when not given)."""
    stem = safe_file_stem(row.name, row.id)
    p = cfg.paths
    out = [(p.reports, p.reports / f"{stem}.{fmt}") for fmt in ("csv", "pdf")]
    out += [(p.reports, p.reports / f"record-{stem}{kind}") for kind in ("-moodle.csv", ".csv", ".json")]
    out += [(p.reports, f) for f in (range_exports(p.reports, row.section) if section_exports is None
                                     else section_exports)]
    out.append((p.frames, p.frames / f"{row.id}.jpg"))
    if row.export_path:
        out.append((p.exports, Path(row.export_path)))
    return out


def range_exports(reports: Path, section: str) -> list[Path]:
    """The record exports of a section over date ranges now in the reports directory."""
    return sorted(reports.glob(f"records-{glob.escape(section_stem(section))}-*"))


def session_files_of(cfg: Config) -> Callable[[SessionRow], list[tuple[str, str]]]:
    """`session_files` as the store records doomed files: (root name, path); each section's range exports are
    listed once per erasure."""
    names = {cfg.paths.reports: "reports", cfg.paths.frames: "frames", cfg.paths.exports: "exports"}
    ranges: dict[str, list[Path]] = {}

    def files(row: SessionRow) -> list[tuple[str, str]]:
        if row.section not in ranges:
            ranges[row.section] = range_exports(cfg.paths.reports, row.section)
        return [(names[root], str(path)) for root, path in session_files(cfg, row, ranges[row.section])]

    return files


def _count(swept: list[Swept], which: Callable[[Swept], bool]) -> int:
    return sum(s.deleted for s in swept if which(s))
