"""The one SQLite connection (WAL, secure_delete, migrations) behind one lock, with the lookups every family of
queries needs and the row helpers they share; backups through SQLite's online backup API."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..common.errors import NotFound, StoreError
from .records import SessionRow, UnknownRow
from .schema import MIGRATIONS, SCHEMA_VERSION

ACTIVE_STATUSES = ("running", "paused")
# Written beside the database when it is first created: its presence (or any export, unknown-face crop or
# report) shows that this data directory was used, so a missing database there is a loss, not a fresh box.
MARKER = ".attendance-daemon"
_EVIDENCE = ("exports", "unknowns", "reports")


def earlier_use(data_dir: Path) -> str | None:
    """What shows that `data_dir` held data before (None for a fresh directory)."""
    if (data_dir / MARKER).exists():
        return f"{MARKER} marks earlier use"
    for name in _EVIDENCE:
        sub = data_dir / name
        if sub.is_dir() and any(sub.iterdir()):
            return f"{name}/ is not empty"
    return None


class Database:
    """The connection and its lock: every query family builds on `_tx` (one IMMEDIATE transaction, nested ones
    join it) and `_lock`."""

    def __init__(self, path: Path, allow_init: bool = False) -> None:
        """Opens (or, in a fresh data directory or with `allow_init`, creates) the database at `path`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() and not allow_init:
            used = earlier_use(path.parent)
            if used:
                raise StoreError(
                    f"database {path} is missing although the data directory was used before ({used}); "
                    "restore a backup (docs/install.md, Backup and restore) or pass --init (daemon.allow_init = true) "
                    "to start empty"
                )
        self.path = path
        self._lock = threading.RLock()
        self.erasures = 0  # erasures started since opening: a reader that wrote a file from older rows checks it
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
            # Face data is biometric: deleted rows are overwritten with zeros, not left in free pages.
            self._db.execute("PRAGMA secure_delete=ON")
            self._migrate()
        except sqlite3.Error as exc:  # corrupt, read-only, not a database: one line for the admin
            raise StoreError(f"database {path}: {exc}") from exc
        self._identity = _file_identity(path)
        marker = path.parent / MARKER
        if not marker.exists():
            marker.write_text("this data directory holds an attendance-daemon database\n", encoding="utf-8")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def identity_problem(self) -> str | None:
        """Why the file at our path is no longer the database we opened (deleted or replaced), else None.

        A stat of the path: cheap enough for a periodic check, never on the frame path."""
        now = _file_identity(self.path)
        if now is None:
            return f"database file {self.path.name} was deleted while the daemon had it open"
        if now != self._identity:
            return f"database file {self.path.name} was replaced while the daemon had it open"
        return None

    def data_version(self) -> int:
        """Changes when another connection (e.g. a CLI `enroll-bulk`) committed; cheap to poll."""
        with self._lock:
            return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def backup(self, dest: Path) -> None:
        """A consistent copy through SQLite's online backup API (safe while sessions write)."""
        with self._lock:
            copy_database(self._db, dest)

    def _migrate(self) -> None:
        with self._lock:
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"database {self.path} has schema {version}, newer than this build ({SCHEMA_VERSION})"
                )
            for i in range(version, SCHEMA_VERSION):
                try:
                    self._db.executescript(f"BEGIN; {MIGRATIONS[i]}; PRAGMA user_version={i + 1}; COMMIT;")
                except sqlite3.Error:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            in_tx = self._db.in_transaction
            if not in_tx:
                self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            else:
                if self._db.in_transaction and not in_tx:
                    self._db.execute("COMMIT")

    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def section_exists(self, section: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM sections WHERE name=?", (section,)).fetchone() is not None

    def require_section(self, section: str) -> None:
        if not self.section_exists(section):
            raise NotFound(f"section: unknown section '{section}'")

    def get_session(self, session_id: str) -> SessionRow:
        with self._lock:
            r = self._db.execute("SELECT * FROM sessions WHERE id=?", (session_id,)).fetchone()
        if r is None:
            raise NotFound(f"session_id: unknown session '{session_id}'")
        return session_row(r)

    def purge_wal(self) -> None:
        """Checkpoints and truncates the write-ahead log: erased rows must not survive there either."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def stored_photos(db: sqlite3.Connection, where: str, args: tuple[str, ...]) -> list[str]:
    return [str(r[0]) for r in db.execute(
        f"SELECT e.photo FROM encodings e JOIN students st ON st.id = e.student WHERE {where} AND e.photo IS NOT NULL",
        args)]


def unknown_row(r: sqlite3.Row) -> UnknownRow:
    vector = None if r[5] is None else np.frombuffer(r[5], dtype=np.float32).copy()
    return UnknownRow(int(r[0]), str(r[1]), int(r[2]), str(r[3]), float(r[4]), vector, r[6], bool(r[7]))


def session_row(r: sqlite3.Row) -> SessionRow:
    return SessionRow(
        id=r["id"], name=r["name"], section=r["section"], mode=r["mode"], source=r["source"],
        export=bool(r["export"]), status=r["status"], started_at=r["started_at"], ended_at=r["ended_at"],
        frames_processed=int(r["frames_processed"]), total_frames=r["total_frames"],
        roster_total=int(r["roster_total"]), export_path=r["export_path"], error=r["error"],
        video_s=r["video_s"],
        warnings=list(json.loads(r["warnings"] or "[]")),
        lesson=r["lesson"], lesson_start=r["lesson_start"],
        record=r["record"], finalized_at=r["finalized_at"], finalized_by=r["finalized_by"],
        revision=int(r["revision"]), roster_frozen=bool(r["roster_frozen"]),
    )


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def copy_database(src: sqlite3.Connection, dest: Path) -> None:
    """Online backup into `dest` (written beside it, checked, then renamed: never a half-written backup)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    tmp.unlink(missing_ok=True)
    out = sqlite3.connect(str(tmp))
    try:
        src.backup(out)
        verdict = out.execute("PRAGMA quick_check").fetchone()[0]
        out.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
    finally:
        out.close()
    if verdict != "ok":
        tmp.unlink(missing_ok=True)
        raise StoreError(f"backup: the copy failed its integrity check: {verdict}")
    os.replace(tmp, dest)


def backup_file(database: Path, dest: Path) -> None:
    """`attendance-daemon backup`: copy the database at `database` without creating one if it is missing."""
    if not database.is_file():
        raise StoreError(f"backup: no database at {database}")
    try:
        src = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"backup: cannot open {database}: {exc}") from exc
    try:
        copy_database(src, dest)
    except sqlite3.Error as exc:
        raise StoreError(f"backup: {exc}") from exc
    finally:
        src.close()
