"""Retention of evidence files (face data is biometric data): a pure plan of what has expired, and the
I/O edge that lists, deletes and logs. The daemon's housekeeper runs it at start-up and once a day."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..store import Store

log = logging.getLogger(__name__)

DAY_S = 86400.0
# The kinds of file retention applies to; enrollment photos are not among them (they are the roster).
KINDS = ("unknowns", "exports", "frames", "reports")


@dataclass(frozen=True)
class Found:
    kind: str
    path: Path
    mtime: float


def expired(files: Iterable[Found], now: float, days: int) -> list[Found]:
    """The files older than `days` days at `now` (none when `days` is 0: keep forever)."""
    if days <= 0:
        return []
    cutoff = now - days * DAY_S
    return [f for f in files if f.mtime < cutoff]


def scan(cfg: Config) -> list[Found]:
    """Every regular file under the evidence directories (symlinks are not followed)."""
    found = []
    for kind in KINDS:
        root = getattr(cfg.paths, kind)
        for folder, _dirs, names in os.walk(root):
            for name in names:
                path = Path(folder) / name
                try:
                    st = path.lstat()
                except OSError:
                    continue
                if path.is_file() and not path.is_symlink():
                    found.append(Found(kind, path, st.st_mtime))
    return found


def clean(cfg: Config, store: Store, now: float | None = None) -> Counter[str]:
    """Deletes the expired files; the encodings of deleted crops' visitors go too (their rows stay, so a
    session's `unknowns` count holds), and a deleted export is no longer named by its session. Returns how
    many files of each kind were deleted (logged, without names)."""
    gone = expired(scan(cfg), time.time() if now is None else now, cfg.retention.days)
    counts: Counter[str] = Counter()
    crops, exports = [], []
    for f in gone:
        try:
            f.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.error("retention: cannot delete a %s file: %s", f.kind, exc.strerror)
            continue
        counts[f.kind] += 1
        if f.kind == "unknowns":
            crops.append(str(f.path))
        elif f.kind == "exports":
            exports.append(str(f.path))
    if crops:
        store.expire_unknown_crops(crops)
    if exports:
        store.clear_export_paths(exports)
    for folder in sorted({f.path.parent for f in gone if f.kind == "unknowns"}, reverse=True):
        if folder != cfg.paths.unknowns:
            with contextlib.suppress(OSError):
                folder.rmdir()  # a session's crop folder, once empty
    if counts:
        log.info("retention (%d days): deleted %s", cfg.retention.days,
                 ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())))
    return counts


class RetentionTimer:
    """Due at the first call and then every `every_s`; the caller (the housekeeper thread) runs `clean`."""

    def __init__(self, every_s: float = DAY_S) -> None:
        self.every_s = every_s
        self._next = 0.0

    def due(self, now: float) -> bool:
        if now < self._next:
            return False
        self._next = now + self.every_s
        return True
