"""Sections, students and their encodings and photos, and the hub's versioned rosters."""

from __future__ import annotations

import numpy as np

from ..common.errors import NotFound
from ..common.names import check_display_name, check_id
from ..common.timeutil import now_iso
from ..contract.roster_message import ENCODING_DIM
from .connection import Database, stored_photos
from .doomed_queries import doom
from .records import PhotoRow, StudentRow


class RosterQueries(Database):
    """Sections, students and their encodings and photos, and the hub's versioned rosters.
    One family of the Store's queries."""

    def sections(self) -> list[tuple[str, int]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT s.name, COUNT(st.id) FROM sections s LEFT JOIN students st ON st.section = s.name "
                "GROUP BY s.name ORDER BY s.name"
            ).fetchall()
        return [(r[0], int(r[1])) for r in rows]

    def remove_section(self, section: str) -> list[int]:
        """Deletes a section with its students; their stored photos are recorded as doomed in the same
        transaction (returned: the ids for the caller to sweep)."""
        self.require_section(section)
        with self._tx() as db:
            photos = stored_photos(db, "st.section=?", (section,))
            db.execute("DELETE FROM sections WHERE name=?", (section,))
            doomed = doom(db, [("photos", p) for p in photos])
        self.purge_wal()  # their encodings are biometric data: no copy of the old pages stays in the WAL
        return doomed

    def upsert_student(self, section: str, student_id: str, name: str) -> int:
        check_id(section, "section")  # new writes only: older rows with other names stay readable
        check_id(student_id, "student_id")
        check_display_name(name)
        now = now_iso()
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO sections(name, created_at) VALUES (?, ?)", (section, now))
            db.execute(
                "INSERT INTO students(section, student_id, name, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(section, student_id) DO UPDATE SET name=excluded.name",
                (section, student_id, name, now),
            )
            row = db.execute(
                "SELECT id FROM students WHERE section=? AND student_id=?", (section, student_id)
            ).fetchone()
        return int(row[0])

    def add_encoding(self, student_rowid: int, vector: np.ndarray, source: str) -> int:
        """Stores one encoding; returns its id (the photo id of remote operations)."""
        vec = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vec.shape != (ENCODING_DIM,):
            raise ValueError(f"encoding must have {ENCODING_DIM} values, got {vec.shape}")
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO encodings(student, vector, source, created_at) VALUES (?, ?, ?, ?)",
                (student_rowid, vec.tobytes(), source, now_iso()),
            )
        return int(cur.lastrowid or 0)

    def students(self, section: str) -> list[StudentRow]:
        self.require_section(section)
        with self._lock:
            rows = self._db.execute(
                "SELECT st.id, st.section, st.student_id, st.name, COUNT(e.id) FROM students st "
                "LEFT JOIN encodings e ON e.student = st.id WHERE st.section=? "
                "GROUP BY st.id ORDER BY st.student_id",
                (section,),
            ).fetchall()
        return [StudentRow(int(r[0]), r[1], r[2], r[3], int(r[4])) for r in rows]

    def remove_student(self, section: str, student_id: str) -> list[int]:
        """Deletes a student with their encodings; their stored photos are recorded as doomed in the same
        transaction (returned: the ids for the caller to sweep). Unknown faces assigned to them stay assigned to
        their id (session evidence, under retention; `forget_student` erases them)."""
        self.require_section(section)
        with self._tx() as db:
            photos = stored_photos(db, "st.section=? AND st.student_id=?", (section, student_id))
            cur = db.execute("DELETE FROM students WHERE section=? AND student_id=?", (section, student_id))
            if cur.rowcount == 0:
                raise NotFound(f"student_id: no student '{student_id}' in section '{section}'")
            doomed = doom(db, [("photos", p) for p in photos])
        self.purge_wal()  # their encodings are biometric data: no copy of the old pages stays in the WAL
        return doomed

    def section_encodings(self, section: str) -> tuple[list[StudentRow], np.ndarray, np.ndarray]:
        """Roster, an (N, 128) float32 matrix of every encoding, and the roster index of each row."""
        roster = self.students(section)
        index = {s.rowid: i for i, s in enumerate(roster)}
        with self._lock:
            rows = self._db.execute(
                "SELECT e.student, e.vector FROM encodings e JOIN students st ON st.id = e.student "
                "WHERE st.section=? ORDER BY e.id",
                (section,),
            ).fetchall()
        if not rows:
            return roster, np.zeros((0, ENCODING_DIM), np.float32), np.zeros(0, np.int64)
        matrix = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
        owners = np.array([index[int(r[0])] for r in rows], dtype=np.int64)
        return roster, matrix, owners

    def roster_versions(self) -> dict[str, tuple[int, str]]:
        """section -> (version, hash) of the hub rosters applied here."""
        with self._lock:
            rows = self._db.execute("SELECT section, version, hash FROM roster_versions ORDER BY section").fetchall()
        return {str(r[0]): (int(r[1]), str(r[2])) for r in rows}

    def replace_roster(self, section: str, version: int, digest: str,
                       students: list[tuple[str, str, list[list[float]]]]) -> list[int] | None:
        """The section becomes exactly `students` (id, name, encodings) in one transaction, unless a version
        as new or newer is already applied (then None, nothing changes). A student the roster still lists keeps
        their row and so their enrollment date (history counts the sessions since then); their encodings are
        replaced. The stored photos of the encodings replaced are recorded as doomed in the same transaction;
        returns their ids, for the caller to sweep."""
        now = now_iso()
        with self._tx() as db:
            row = db.execute("SELECT version FROM roster_versions WHERE section=?", (section,)).fetchone()
            if row is not None and int(row[0]) >= version:
                return None
            db.execute("INSERT OR IGNORE INTO sections(name, created_at) VALUES (?, ?)", (section, now))
            photos = [str(r[0]) for r in db.execute(
                "SELECT e.photo FROM encodings e JOIN students st ON st.id = e.student "
                "WHERE st.section=? AND e.photo IS NOT NULL", (section,))]
            existing = {str(r[1]): int(r[0]) for r in db.execute(
                "SELECT id, student_id FROM students WHERE section=?", (section,))}
            listed = {student_id for student_id, _, _ in students}
            db.executemany("DELETE FROM students WHERE id=?",
                           [(rowid,) for sid, rowid in existing.items() if sid not in listed])
            for student_id, name, encodings in students:
                rowid = existing.get(student_id)
                if rowid is None:
                    rowid = db.execute("INSERT INTO students(section, student_id, name, created_at) "
                                       "VALUES (?, ?, ?, ?)", (section, student_id, name, now)).lastrowid
                else:
                    db.execute("UPDATE students SET name=? WHERE id=?", (name, rowid))
                    db.execute("DELETE FROM encodings WHERE student=?", (rowid,))
                db.executemany("INSERT INTO encodings(student, vector, source, created_at) VALUES (?, ?, ?, ?)",
                               [(rowid, np.asarray(e, dtype=np.float32).tobytes(), f"hub v{version}", now)
                                for e in encodings])
            db.execute("INSERT INTO roster_versions(section, version, hash, applied_at) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT(section) DO UPDATE SET version=excluded.version, hash=excluded.hash, "
                       "applied_at=excluded.applied_at", (section, version, digest, now))
            doomed = doom(db, [("photos", p) for p in photos])
        if photos:
            self.purge_wal()
        return doomed

    def student_rowid(self, section: str, student_id: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT id FROM students WHERE section=? AND student_id=?",
                                   (section, student_id)).fetchone()
        if row is None:
            self.require_section(section)
            raise NotFound(f"student_id: no student '{student_id}' in section '{section}'")
        return int(row[0])

    def set_encoding_photo(self, encoding_id: int, photo: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE encodings SET photo=? WHERE id=?", (photo, encoding_id))

    def photo_names(self) -> set[str]:
        """Every stored photo's file name the encodings name."""
        with self._lock:
            return {str(r[0]) for r in self._db.execute("SELECT photo FROM encodings WHERE photo IS NOT NULL")}

    def photos(self, section: str, student_id: str) -> list[PhotoRow]:
        """Every encoding of a student: its id, the image it came from, the stored photo's file name if any."""
        rowid = self.student_rowid(section, student_id)
        with self._lock:
            rows = self._db.execute("SELECT id, source, photo, created_at FROM encodings WHERE student=? ORDER BY id",
                                    (rowid,)).fetchall()
        return [PhotoRow(int(r[0]), r[1], r[2], r[3]) for r in rows]

    def remove_photo(self, section: str, student_id: str, photo_id: int) -> list[int]:
        """Deletes one encoding of a student; its stored photo is recorded as doomed in the same transaction
        (returned: the ids for the caller to sweep)."""
        rowid = self.student_rowid(section, student_id)
        with self._tx() as db:
            row = db.execute("SELECT photo FROM encodings WHERE id=? AND student=?", (photo_id, rowid)).fetchone()
            if row is None:
                raise NotFound(f"photo_id: student '{student_id}' has no photo {photo_id}")
            db.execute("DELETE FROM encodings WHERE id=?", (photo_id,))
            doomed = doom(db, [] if row[0] is None else [("photos", str(row[0]))])
        self.purge_wal()
        return doomed
