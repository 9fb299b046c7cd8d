"""The sweep: deletes the files the store recorded as doomed in the transaction that deleted their rows (see
store/doomed_queries.py), then drops the records. Erasures sweep their own files right after the commit; the
daemon sweeps everything left at start-up and in housekeeping, so a crash between a commit and its file deletions
(or half way through them) ends with the files gone after the restart.

TEST ONLY: the environment variable ATTENDANCE_DAEMON_TEST_KILL_AT_DELETION=<n> makes the process kill itself
(SIGKILL) just before its n-th file deletion (0: the first, that is right after the commit that recorded it). It is
read once, from the environment the process was started with; no request, message or config key reaches it. The
crash tests (tests/test_erasure_crash.py) use it to stop a real daemon at each deletion of an erasure."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from ..common.timeutil import iso, utcnow
from ..config import Config
from ..store import Store
from ..store.doomed_queries import ENROLLMENT, DoomedFile, folders_of

log = logging.getLogger(__name__)

KILL_ENV = "ATTENDANCE_DAEMON_TEST_KILL_AT_DELETION"
_KILL_AT = int(os.environ[KILL_ENV]) if os.environ.get(KILL_ENV, "").isdigit() else None
_deletions = itertools.count()  # file deletions so far in this process (for the test-only crash point)
_lock = threading.Lock()  # one sweep at a time: an erasure's and the housekeeper's never race for a file


@dataclass(frozen=True)
class Swept:
    file: DoomedFile
    deleted: int  # files removed (0: already gone, e.g. by a sweep a crash interrupted)


def roots(cfg: Config) -> dict[str, Path]:
    p = cfg.paths
    return {"photos": p.photos, "unknowns": p.unknowns, "exports": p.exports, "reports": p.reports,
            "frames": p.frames, ENROLLMENT: p.enrollment}


def sweep(cfg: Config, store: Store, ids: list[int] | None = None, min_age_s: float = 0.0) -> list[Swept]:
    """Deletes the doomed files (those of `ids`, or every one recorded at least `min_age_s` ago) and drops their
    records; one that cannot be deleted (an I/O error) keeps its record, for the next sweep."""
    with _lock:
        if ids is not None:
            pending = store.doomed(ids)
        else:
            pending = store.doomed(before=iso(utcnow() - timedelta(seconds=min_age_s)) if min_age_s else None)
        where = roots(cfg)
        out, done = [], []
        for f in pending:
            try:
                n = _delete_folders(where[ENROLLMENT], f.path) if f.root == ENROLLMENT else \
                    _delete_file(where[f.root], f.path, prune=f.root == "unknowns")
            except (OSError, KeyError, ValueError) as exc:
                log.error("cannot delete a doomed %s file (kept for the next sweep): %s", f.root,
                          getattr(exc, "strerror", None) or type(exc).__name__)
                continue
            out.append(Swept(f, n))
            done.append(f.id)
        store.swept(done)
    if ids is None and out:
        log.info("sweep: %d files of earlier erasures deleted", sum(s.deleted for s in out))
    return out


def sweep_count(cfg: Config, store: Store, ids: list[int]) -> int:
    """`sweep` of `ids`; returns how many files were deleted."""
    return sum(s.deleted for s in sweep(cfg, store, ids))


def _deleting() -> None:
    """Called before every file deletion: the test-only crash point (see the module's doc)."""
    if next(_deletions) == _KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)


def _delete_file(root: Path, name: str, prune: bool) -> int:
    """Deletes `name` (absolute, or relative to `root`) when it is a file inside `root`; with `prune` its folder
    goes too once empty (a session's crop folder)."""
    full = (root / name).resolve()
    base = root.resolve()
    if base not in full.parents or not full.is_file():
        return 0
    _deleting()
    full.unlink()
    if prune and full.parent != base:
        with contextlib.suppress(OSError):
            full.parent.rmdir()
    return 1


def _delete_folders(root: Path, path: str) -> int:
    """Deletes the `<section>/<student_id>__<name>/` folders of the enrollment directory that `path` names
    (store.doomed_queries.folders); returns how many files they held."""
    section, student_id = folders_of(path)
    if not root.is_dir():
        return 0
    base = root.resolve()
    sections = [root / section] if section is not None else sorted(d for d in root.iterdir() if d.is_dir())
    count = 0
    for sec in sections:
        if not sec.is_dir() or sec.is_symlink() or sec.resolve().parent != base:
            continue
        for folder in sorted(sec.iterdir()):
            name, sep, _ = folder.name.partition("__")
            if sep and name == student_id and folder.is_dir() and not folder.is_symlink():
                count += _delete_tree(folder)
    return count


def _delete_tree(folder: Path) -> int:
    count = 0
    for here, dirs, files in os.walk(folder, topdown=False):
        for f in files:
            _deleting()
            Path(here, f).unlink()
            count += 1
        for d in dirs:
            p = Path(here, d)
            if p.is_symlink():
                p.unlink()
            else:
                p.rmdir()
    folder.rmdir()
    return count
