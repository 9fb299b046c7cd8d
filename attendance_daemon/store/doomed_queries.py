"""Files whose rows are gone (doomed files): recorded in the very transaction that deletes the rows naming them,
and removed by the sweep (privacy/sweep.py) after the commit, again at start-up and in housekeeping. A crash
between the commit and the deletions therefore leaves a record, never an orphan file nothing lists."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from ..common.timeutil import now_iso
from .connection import Database

# The directories a doomed file may be in (named as in PathsConfig). `path` is a file inside that directory
# (absolute, as the database stores crops and exports, or relative to it, as photos and reports), except under
# ENROLLMENT, where it is `folders(section, student_id)`: the student's `<section>/<student_id>__<name>/` folders.
ROOTS = ("photos", "unknowns", "exports", "reports", "frames", "enrollment")
ENROLLMENT = "enrollment"


@dataclass(frozen=True)
class DoomedFile:
    id: int
    root: str
    path: str
    created_at: str


def folders(section: str | None, student_id: str) -> str:
    """The `path` of a student's enrollment folders (of one section, or of every section with None)."""
    return json.dumps([section, student_id])


def folders_of(path: str) -> tuple[str | None, str]:
    section, student_id = json.loads(path)
    return (None if section is None else str(section)), str(student_id)


def doom(db: sqlite3.Connection, files: Iterable[tuple[str, str]]) -> list[int]:
    """Records (root, path) pairs to delete, inside the caller's transaction; returns their ids."""
    now, ids = now_iso(), []
    for root, path in files:
        if root not in ROOTS:
            raise ValueError(f"doomed file under an unknown root: {root}")
        ids.append(int(db.execute("INSERT INTO doomed_files(root, path, created_at) VALUES (?, ?, ?)",
                                  (root, path, now)).lastrowid or 0))
    return ids


class DoomedQueries(Database):
    """The record of files to delete. One family of the Store's queries."""

    def doomed(self, ids: Iterable[int] | None = None, before: str | None = None) -> list[DoomedFile]:
        """Every recorded file (or those of `ids`, or those recorded before the time `before`), oldest first."""
        sql, args = "SELECT id, root, path, created_at FROM doomed_files", []
        if ids is not None:
            wanted = sorted(set(ids))
            if not wanted:
                return []
            sql += f" WHERE id IN ({','.join('?' * len(wanted))})"
            args = [str(i) for i in wanted]
        elif before is not None:
            sql += " WHERE created_at < ?"
            args = [before]
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        return [DoomedFile(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]

    def swept(self, ids: Iterable[int]) -> None:
        """The files are gone: their records go (zeroed by secure_delete, and not left in the WAL: a record may
        name a student's enrollment folder)."""
        done = [(i,) for i in set(ids)]
        if not done:
            return
        with self._tx() as db:
            db.executemany("DELETE FROM doomed_files WHERE id=?", done)
        self.purge_wal()
