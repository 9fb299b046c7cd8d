"""The hub's rosters in PostgreSQL: students and encodings per section (duck-typing the box Store for the
Enroller, so enrollment rules are the same at the hub), and each section's published roster versions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg

from ..common.errors import Conflict, NotFound
from ..common.names import check_display_name, check_id
from ..contract.roster_message import ENCODING_DIM, MAX_ROSTER_ENCODINGS
from ..roster.enrollment import cap_reason
from ..store.records import StudentRow
from .connection import HubConnection


class HubRosterQueries(HubConnection):
    """Enrollment and roster publication: one family of the hub store's queries."""

    def section_exists(self, section: str) -> bool:
        with self._read() as db:
            return db.execute("SELECT 1 FROM roster_students WHERE section=%s LIMIT 1",
                                    (section,)).fetchone() is not None

    def upsert_student(self, section: str, student_id: str, name: str) -> int:
        check_id(section, "section")
        check_id(student_id, "student_id")
        check_display_name(name)
        with self._tx() as db:
            row = db.execute(
                "INSERT INTO roster_students (section, student_id, name) VALUES (%s, %s, %s) "
                "ON CONFLICT (section, student_id) DO UPDATE SET name = EXCLUDED.name RETURNING id",
                (section, student_id, name)).fetchone()
        assert row is not None
        return int(row["id"])

    def add_encoding(self, student_rowid: int, vector: np.ndarray, source: str) -> int:
        with self._tx() as db:
            return _insert_encoding(db, student_rowid, vector, source, None)

    def add_student_encodings(self, section: str, student_id: str, name: str,
                              encodings: list[tuple[str, np.ndarray, str]]) -> list[int]:
        """Creates (or renames) the student and stores (source, encoding, photo sha256) in one transaction: a photo
        the student already has adds nothing (its encoding's id is returned), and beyond MAX_ROSTER_ENCODINGS the
        whole call is refused (409) with nothing stored."""
        with self._tx() as db:
            rowid = self.upsert_student(section, student_id, name)  # (a savepoint of this transaction)
            return [_insert_encoding(db, rowid, vector, source, digest) for source, vector, digest in encodings]

    def photo_digests(self, section: str, student_id: str) -> set[str]:
        with self._read() as db:
            rows = db.execute(
                "SELECT e.photo_sha256 FROM roster_encodings e JOIN roster_students st ON st.id = e.student "
                "WHERE st.section = %s AND st.student_id = %s AND e.photo_sha256 IS NOT NULL",
                (section, student_id)).fetchall()
        return {r["photo_sha256"] for r in rows}

    def student_encodings(self, section: str, student_id: str) -> list[dict[str, Any]]:
        """The student's encodings (the hub keeps no photo files): {photo_id, source, sha256, created_at}."""
        rowid = self.student_rowid(section, student_id)
        with self._read() as db:
            rows = db.execute("SELECT id, source, photo_sha256, created_at FROM roster_encodings "
                                    "WHERE student = %s ORDER BY id", (rowid,)).fetchall()
        return [{"photo_id": int(r["id"]), "source": r["source"], "sha256": r["photo_sha256"],
                 "created_at": r["created_at"]} for r in rows]

    def remove_encoding(self, section: str, student_id: str, encoding_id: int) -> None:
        rowid = self.student_rowid(section, student_id)
        with self._tx() as db:
            if not db.execute("DELETE FROM roster_encodings WHERE id = %s AND student = %s",
                              (encoding_id, rowid)).rowcount:
                raise NotFound(f"photo_id: student '{student_id}' has no photo {encoding_id} at the hub")

    def student_rowid(self, section: str, student_id: str) -> int:
        with self._read() as db:
            row = db.execute("SELECT id FROM roster_students WHERE section = %s AND student_id = %s",
                                   (section, student_id)).fetchone()
        if row is None:
            raise NotFound(f"student_id: no student '{student_id}' in section '{section}' at the hub")
        return int(row["id"])

    def students(self, section: str) -> list[StudentRow]:
        with self._read() as db:
            rows = db.execute(
                "SELECT st.id, st.section, st.student_id, st.name, COUNT(e.id) AS n FROM roster_students st "
                "LEFT JOIN roster_encodings e ON e.student = st.id WHERE st.section = %s "
                "GROUP BY st.id ORDER BY st.student_id", (section,)).fetchall()
        if not rows:
            raise NotFound(f"section: unknown section '{section}' at the hub")
        return [StudentRow(int(r["id"]), r["section"], r["student_id"], r["name"], int(r["n"])) for r in rows]

    def section_encodings(self, section: str) -> tuple[list[StudentRow], np.ndarray, np.ndarray]:
        roster = self.students(section)
        index = {s.rowid: i for i, s in enumerate(roster)}
        with self._read() as db:
            rows = db.execute(
                "SELECT e.student, e.vector FROM roster_encodings e JOIN roster_students st ON st.id = e.student "
                "WHERE st.section = %s ORDER BY e.id", (section,)).fetchall()
        if not rows:
            return roster, np.zeros((0, ENCODING_DIM), np.float32), np.zeros(0, np.int64)
        matrix = np.stack([np.frombuffer(r["vector"], dtype=np.float32) for r in rows])
        owners = np.array([index[int(r["student"])] for r in rows], dtype=np.int64)
        return roster, matrix, owners

    def remove_roster_student(self, section: str, student_id: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM roster_students WHERE section=%s AND student_id=%s",
                              (section, student_id)).rowcount > 0

    def roster_sections(self) -> list[str]:
        with self._read() as db:
            rows = db.execute("SELECT DISTINCT section FROM roster_students UNION "
                                    "SELECT section FROM rosters ORDER BY 1").fetchall()
        return [r["section"] for r in rows]

    def roster_content(self, section: str) -> list[dict[str, Any]]:
        """[{student_id, name, encodings}] of a section, in student_id order (empty when none left)."""
        try:
            roster, matrix, owners = self.section_encodings(section)
        except NotFound:
            return []
        return [{"student_id": s.student_id, "name": s.name,
                 "encodings": [[float(x) for x in matrix[j]] for j in np.flatnonzero(owners == i)]}
                for i, s in enumerate(roster)]

    @contextmanager
    def roster_publication(self, section: str) -> Iterator[None]:
        """Held while a section's next version is numbered, read, published and recorded: two publications (the
        hub's two workers, a CLI beside it) never share a version (a box would refuse the second as not newer)."""
        with self._tx() as db:
            db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"roster:{section}",))
            yield

    def next_roster_version(self, section: str) -> int:
        with self._read() as db:
            row = db.execute("SELECT version FROM rosters WHERE section=%s", (section,)).fetchone()
        return (int(row["version"]) if row else 0) + 1

    def record_roster(self, section: str, version: int, digest: str, message: bytes | None = None) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO rosters (section, version, hash, message) VALUES (%s, %s, %s, %s) ON CONFLICT "
                       "(section) DO UPDATE SET version = EXCLUDED.version, hash = EXCLUDED.hash, "
                       "message = EXCLUDED.message, published_at = now()", (section, version, digest, message))

    def roster_message(self, section: str) -> bytes | None:
        """The section's last published message (as sent to its boxes), or None."""
        with self._read() as db:
            row = db.execute("SELECT message FROM rosters WHERE section = %s", (section,)).fetchone()
        return bytes(row["message"]) if row and row["message"] is not None else None

    def rosters(self) -> dict[str, dict[str, Any]]:
        with self._read() as db:
            rows = db.execute("SELECT section, version, hash FROM rosters ORDER BY section").fetchall()
        return {r["section"]: {"version": int(r["version"]), "hash": r["hash"]} for r in rows}


def _insert_encoding(db: psycopg.Connection[dict[str, Any]], rowid: int, vector: np.ndarray, source: str,
                     digest: str | None) -> int:
    """One encoding of a student, inside the caller's transaction: the student's row is locked, so two
    enrollments at once still count right; the same photo (digest) again returns the encoding it made."""
    vec = np.asarray(vector, dtype=np.float32).reshape(-1)
    if vec.shape != (ENCODING_DIM,):
        raise ValueError(f"encoding must have {ENCODING_DIM} values, got {vec.shape}")
    student = db.execute("SELECT section, student_id FROM roster_students WHERE id = %s FOR UPDATE",
                         (rowid,)).fetchone()
    if student is None:
        raise NotFound(f"student_id: no student with row {rowid} at the hub")
    if digest is not None:
        same = db.execute("SELECT id FROM roster_encodings WHERE student = %s AND photo_sha256 = %s",
                          (rowid, digest)).fetchone()
        if same is not None:
            return int(same["id"])
    have = db.execute("SELECT count(*) AS n FROM roster_encodings WHERE student = %s", (rowid,)).fetchone()
    n = int(have["n"]) if have else 0
    if n >= MAX_ROSTER_ENCODINGS:
        raise Conflict(f"student_id: '{student['student_id']}' in section '{student['section']}': {cap_reason(n)}")
    row = db.execute("INSERT INTO roster_encodings (student, vector, source, photo_sha256) VALUES (%s, %s, %s, %s) "
                     "RETURNING id", (rowid, vec.tobytes(), source, digest)).fetchone()
    assert row is not None
    return int(row["id"])
