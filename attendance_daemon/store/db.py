"""The Store: every durable read and write, serialised by one lock over one WAL connection."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..common.errors import Conflict, NotFound, StoreError
from ..common.names import check_display_name, check_id
from ..common.timeutil import now_iso
from .records import AttendanceRow, Erasure, LessonRow, PhotoRow, SessionRow, StudentRow, UnknownRow
from .schema import MIGRATIONS, SCHEMA_VERSION

ENCODING_DIM = 128
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


class Store:
    """Thread-safe: the daemon's MQTT dispatcher and the session worker share one instance."""

    def __init__(self, path: Path, allow_init: bool = False) -> None:
        """Opens (or, in a fresh data directory or with `allow_init`, creates) the database at `path`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() and not allow_init:
            used = earlier_use(path.parent)
            if used:
                raise StoreError(
                    f"database {path} is missing although the data directory was used before ({used}); "
                    "restore a backup (see README) or pass --init (daemon.allow_init = true) to start empty"
                )
        self.path = path
        self._lock = threading.RLock()
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

    # ---- roster -------------------------------------------------------------------------------

    def sections(self) -> list[tuple[str, int]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT s.name, COUNT(st.id) FROM sections s LEFT JOIN students st ON st.section = s.name "
                "GROUP BY s.name ORDER BY s.name"
            ).fetchall()
        return [(r[0], int(r[1])) for r in rows]

    def section_exists(self, section: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM sections WHERE name=?", (section,)).fetchone() is not None

    def require_section(self, section: str) -> None:
        if not self.section_exists(section):
            raise NotFound(f"section: unknown section '{section}'")

    def remove_section(self, section: str) -> list[str]:
        """Deletes a section with its students; returns their stored photos' file names (for the caller to
        delete: the rows go, the files would stay)."""
        self.require_section(section)
        with self._tx() as db:
            photos = _stored_photos(db, "st.section=?", (section,))
            db.execute("DELETE FROM sections WHERE name=?", (section,))
        self.purge_wal()  # their encodings are biometric data: no copy of the old pages stays in the WAL
        return photos

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

    def remove_student(self, section: str, student_id: str) -> list[str]:
        """Deletes a student with their encodings; returns their stored photos' file names (for the caller)."""
        self.require_section(section)
        with self._tx() as db:
            photos = _stored_photos(db, "st.section=? AND st.student_id=?", (section, student_id))
            cur = db.execute("DELETE FROM students WHERE section=? AND student_id=?", (section, student_id))
            if cur.rowcount == 0:
                raise NotFound(f"student_id: no student '{student_id}' in section '{section}'")
        self.purge_wal()  # their encodings are biometric data: no copy of the old pages stays in the WAL
        return photos

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

    # ---- hub rosters (roster_sync.py) ------------------------------------------------------------

    def roster_versions(self) -> dict[str, tuple[int, str]]:
        """section -> (version, hash) of the hub rosters applied here."""
        with self._lock:
            rows = self._db.execute("SELECT section, version, hash FROM roster_versions ORDER BY section").fetchall()
        return {str(r[0]): (int(r[1]), str(r[2])) for r in rows}

    def replace_roster(self, section: str, version: int, digest: str,
                       students: list[tuple[str, str, list[list[float]]]]) -> list[str] | None:
        """The section becomes exactly `students` (id, name, encodings) in one transaction, unless a version
        as new or newer is already applied (then None, nothing changes). A student the roster still lists keeps
        their row and so their enrollment date (history counts the sessions since then); their encodings are
        replaced. Returns the stored photo file names of the encodings replaced, for the caller to delete."""
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
        return photos

    # ---- sessions -----------------------------------------------------------------------------

    def create_session(self, row: SessionRow) -> None:
        check_id(row.name, "session_name")
        with self._tx() as db:
            if db.execute("SELECT 1 FROM sessions WHERE name=?", (row.name,)).fetchone():
                raise Conflict(f"session_name: a session named '{row.name}' already exists")
            db.execute(
                "INSERT INTO sessions(id, name, section, mode, source, export, status, started_at, "
                "total_frames, roster_total, lesson, lesson_start) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.id, row.name, row.section, row.mode, row.source, int(row.export), row.status,
                    row.started_at, row.total_frames, row.roster_total, row.lesson, row.lesson_start,
                ),
            )

    def session_name_taken(self, name: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM sessions WHERE name=?", (name,)).fetchone() is not None

    def update_session(self, session_id: str, **fields: object) -> None:
        allowed = {"status", "ended_at", "frames_processed", "total_frames", "export_path", "error", "warnings"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot update session fields {sorted(bad)}")
        if not fields:
            return
        if "warnings" in fields:
            fields["warnings"] = json.dumps(fields["warnings"])
        cols = ", ".join(f"{k}=?" for k in fields)
        with self._tx() as db:
            db.execute(f"UPDATE sessions SET {cols} WHERE id=?", (*fields.values(), session_id))

    def get_session(self, session_id: str) -> SessionRow:
        with self._lock:
            r = self._db.execute("SELECT * FROM sessions WHERE id=?", (session_id,)).fetchone()
        if r is None:
            raise NotFound(f"session_id: unknown session '{session_id}'")
        return _session_row(r)

    def list_sessions(
        self,
        section: str | None = None,
        since: str | None = None,
        until: str | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> list[SessionRow]:
        where, args = [], []
        for clause, value in (
            ("section = ?", section), ("started_at >= ?", since), ("started_at <= ?", until), ("status = ?", status)
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = "SELECT * FROM sessions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, rowid DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*args, limit)).fetchall()
        return [_session_row(r) for r in rows]

    def mark_interrupted(self) -> list[str]:
        """Sessions left running by a crash become `interrupted`; returns their ids, oldest first.

        They ended at their last flush (the attendance recorded is up to then), not now."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT id FROM sessions WHERE status IN (?, ?) ORDER BY started_at, rowid", ACTIVE_STATUSES
            ).fetchall()
            ids = [r[0] for r in rows]
            for sid in ids:
                db.execute(
                    "UPDATE sessions SET status='interrupted', ended_at=COALESCE(flushed_at, started_at), "
                    "error='the daemon stopped during the session' WHERE id=?",
                    (sid,),
                )
        return ids

    # ---- attendance ---------------------------------------------------------------------------

    def save_attendance(self, session_id: str, rows: list[AttendanceRow], frames_processed: int,
                        video_s: float | None = None) -> None:
        """Replace the session's attendance in one transaction, so a crash leaves the last full flush."""
        with self._tx() as db:
            db.execute("DELETE FROM attendance WHERE session_id=?", (session_id,))
            db.executemany(
                "INSERT INTO attendance(session_id, student_id, name, first_seen_s, last_seen_s, seen_s, intervals) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (session_id, a.student_id, a.name, a.first_seen_s, a.last_seen_s, a.seen_s,
                     json.dumps(a.intervals))
                    for a in rows
                ],
            )
            db.execute("UPDATE sessions SET frames_processed=?, flushed_at=?, video_s=COALESCE(?, video_s) "
                       "WHERE id=?", (frames_processed, now_iso(), video_s, session_id))

    def attendance(self, session_id: str) -> list[AttendanceRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM attendance WHERE session_id=? ORDER BY first_seen_s, student_id", (session_id,)
            ).fetchall()
        return [
            AttendanceRow(
                r["student_id"], r["name"], r["first_seen_s"], r["last_seen_s"], r["seen_s"],
                [tuple(i) for i in json.loads(r["intervals"])],
            )
            for r in rows
        ]

    def present_counts(self, session_ids: list[str], min_seen_s: float) -> dict[str, int]:
        """Students seen at least `min_seen_s`, per session (sessions without any are left out)."""
        if not session_ids:
            return {}
        marks = ",".join("?" * len(session_ids))
        with self._lock:
            rows = self._db.execute(
                f"SELECT session_id, COUNT(*) FROM attendance WHERE session_id IN ({marks}) AND seen_s >= ? "
                "GROUP BY session_id", (*session_ids, min_seen_s),
            ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def add_unknown(self, session_id: str, track_id: int, crop_path: str, at_s: float,
                    vector: np.ndarray | None = None) -> int:
        """Records an unknown visitor (with the track's mean encoding when known); returns its face id."""
        blob = None if vector is None else np.asarray(vector, dtype=np.float32).reshape(-1).tobytes()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO unknown_faces(session_id, track_id, crop_path, at_s, created_at, vector) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (session_id, track_id, crop_path, at_s, now_iso(), blob),
            )
        return int(cur.lastrowid or 0)

    def remove_unknown(self, session_id: str, track_id: int) -> list[str]:
        """Forgets a track's unknown-face record; returns the crop paths it had (for the caller to delete)."""
        with self._tx() as db:
            rows = db.execute("SELECT crop_path FROM unknown_faces WHERE session_id=? AND track_id=?",
                              (session_id, track_id)).fetchall()
            db.execute("DELETE FROM unknown_faces WHERE session_id=? AND track_id=?", (session_id, track_id))
        return [str(r[0]) for r in rows]

    def unknowns(self, session_id: str) -> list[tuple[int, str, float]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT track_id, crop_path, at_s FROM unknown_faces WHERE session_id=? ORDER BY at_s", (session_id,)
            ).fetchall()
        return [(int(r[0]), r[1], float(r[2])) for r in rows]

    # ---- remote operations: photos, unknown faces, erasure (issue 8) ----------------------------------

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

    def photos(self, section: str, student_id: str) -> list[PhotoRow]:
        """Every encoding of a student: its id, the image it came from, the stored photo's file name if any."""
        rowid = self.student_rowid(section, student_id)
        with self._lock:
            rows = self._db.execute("SELECT id, source, photo, created_at FROM encodings WHERE student=? ORDER BY id",
                                    (rowid,)).fetchall()
        return [PhotoRow(int(r[0]), r[1], r[2], r[3]) for r in rows]

    def remove_photo(self, section: str, student_id: str, photo_id: int) -> str | None:
        """Deletes one encoding of a student; returns its stored photo's file name (for the caller to delete)."""
        rowid = self.student_rowid(section, student_id)
        with self._tx() as db:
            row = db.execute("SELECT photo FROM encodings WHERE id=? AND student=?", (photo_id, rowid)).fetchone()
            if row is None:
                raise NotFound(f"photo_id: student '{student_id}' has no photo {photo_id}")
            db.execute("DELETE FROM encodings WHERE id=?", (photo_id,))
        return None if row[0] is None else str(row[0])

    def unknown_faces(self, session_id: str) -> list[UnknownRow]:
        self.get_session(session_id)  # 404 for an unknown session
        with self._lock:
            rows = self._db.execute(
                "SELECT u.id, u.session_id, u.track_id, u.crop_path, u.at_s, u.vector, st.student_id "
                "FROM unknown_faces u LEFT JOIN encodings e ON e.id = u.assigned_to "
                "LEFT JOIN students st ON st.id = e.student WHERE u.session_id=? ORDER BY u.at_s, u.id",
                (session_id,)).fetchall()
        return [_unknown_row(r) for r in rows]

    def unknown_face(self, face_id: int) -> UnknownRow:
        with self._lock:
            r = self._db.execute(
                "SELECT u.id, u.session_id, u.track_id, u.crop_path, u.at_s, u.vector, st.student_id "
                "FROM unknown_faces u LEFT JOIN encodings e ON e.id = u.assigned_to "
                "LEFT JOIN students st ON st.id = e.student WHERE u.id=?", (face_id,)).fetchone()
        if r is None:
            raise NotFound(f"face_id: no unknown face {face_id}")
        return _unknown_row(r)

    def mark_assigned(self, face_id: int, encoding_id: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE unknown_faces SET assigned_to=? WHERE id=?", (encoding_id, face_id))

    def expire_unknown_crops(self, crop_paths: list[str]) -> int:
        """Retention deleted these crops: their visitors' encodings go too (biometric data), the rows stay so
        past sessions keep their `unknowns` count. Returns how many rows were touched."""
        with self._tx() as db:
            return sum(db.execute("UPDATE unknown_faces SET vector=NULL WHERE crop_path=?", (p,)).rowcount
                       for p in crop_paths)

    def forget_student(self, student_id: str, section: str | None, remove_rows: bool,
                       placeholder: str) -> Erasure:
        """Erases a student in one transaction: their student rows and encodings, the unknown faces assigned
        to them, and their attendance rows (deleted, or given `placeholder` as id and name). Returns what the
        caller must delete on disk. Then truncates the WAL, so no copy of the old pages stays beside the file."""
        out = Erasure()
        where, args = ("st.student_id=?", [student_id]) if section is None else (
            "st.student_id=? AND st.section=?", [student_id, section])
        with self._tx() as db:
            students = db.execute(f"SELECT st.id, st.section FROM students st WHERE {where}", args).fetchall()
            for rowid, sec in students:
                out.sections.add(str(sec))
                encs = db.execute("SELECT id, photo FROM encodings WHERE student=?", (rowid,)).fetchall()
                out.encodings += len(encs)
                out.photos += [str(e[1]) for e in encs if e[1]]
                for (enc_id, _photo) in encs:
                    crops = db.execute("SELECT crop_path FROM unknown_faces WHERE assigned_to=?", (enc_id,)).fetchall()
                    out.crops += [str(c[0]) for c in crops]
                    db.execute("DELETE FROM unknown_faces WHERE assigned_to=?", (enc_id,))
                db.execute("DELETE FROM students WHERE id=?", (rowid,))
            scope = "a.student_id=?" + ("" if section is None else " AND s.section=?")
            rows = db.execute(f"SELECT a.session_id, s.section FROM attendance a JOIN sessions s ON s.id = "
                              f"a.session_id WHERE {scope}", [student_id] + ([] if section is None else [section])
                              ).fetchall()
            out.sessions = sorted({str(r[0]) for r in rows})
            out.sections |= {str(r[1]) for r in rows}
            out.attendance_rows = len(rows)
            for sid in out.sessions:
                if remove_rows:
                    db.execute("DELETE FROM attendance WHERE session_id=? AND student_id=?", (sid, student_id))
                else:
                    db.execute("UPDATE attendance SET student_id=?, name=? WHERE session_id=? AND student_id=?",
                               (placeholder, placeholder, sid, student_id))
        self.purge_wal()
        return out

    def delete_session(self, session_id: str) -> tuple[SessionRow, list[str]]:
        """Deletes a session with its attendance and unknown faces; returns the row and its crop paths."""
        row = self.get_session(session_id)
        with self._tx() as db:
            crops = [str(r[0]) for r in db.execute("SELECT crop_path FROM unknown_faces WHERE session_id=?",
                                                    (session_id,)).fetchall()]
            db.execute("DELETE FROM sessions WHERE id=?", (session_id,))  # attendance, unknowns: ON DELETE CASCADE
        self.purge_wal()
        return row, crops

    def clear_export(self, session_ids: list[str]) -> None:
        """The sessions' export videos were deleted: their Results say so (export_path null)."""
        with self._tx() as db:
            db.executemany("UPDATE sessions SET export_path=NULL WHERE id=?", [(s,) for s in session_ids])

    def clear_export_paths(self, paths: list[str]) -> None:
        with self._tx() as db:
            db.executemany("UPDATE sessions SET export_path=NULL WHERE export_path=?", [(p,) for p in paths])

    def purge_wal(self) -> None:
        """Checkpoints and truncates the write-ahead log: erased rows must not survive there either."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


    # ---- timetable ----------------------------------------------------------------------------

    def timetable(self) -> list[LessonRow]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM timetable ORDER BY weekday, start, lesson_id").fetchall()
        return [LessonRow(r["lesson_id"], int(r["weekday"]), r["start"], r["end"], r["section"], r["camera"],
                          r["name"]) for r in rows]

    def replace_timetable(self, lessons: list[LessonRow]) -> None:
        """The whole table in one transaction: readers see the old or the new timetable, never a mix."""
        with self._tx() as db:
            db.execute("DELETE FROM timetable")
            db.executemany("INSERT INTO timetable(lesson_id, weekday, start, end, section, camera, name) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [(x.lesson_id, x.weekday, x.start, x.end, x.section, x.camera, x.name) for x in lessons])

    def lesson_statuses(self, keys: list[str]) -> dict[str, list[tuple[str, str | None]]]:
        """(status, error) of the sessions started for each of these lessons (`<lesson_id>@<date>`)."""
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        with self._lock:
            rows = self._db.execute(f"SELECT lesson, status, error FROM sessions WHERE lesson IN ({marks})",
                                    keys).fetchall()
        found: dict[str, list[tuple[str, str | None]]] = {}
        for r in rows:
            found.setdefault(str(r[0]), []).append((str(r[1]), r[2]))
        return found

    # ---- attendance over time -----------------------------------------------------------------

    def enrolled(self, section: str) -> dict[str, tuple[str, str]]:
        """student id -> (name, enrolled at) for the section's roster (404 for an unknown section)."""
        self.require_section(section)
        with self._lock:
            rows = self._db.execute("SELECT student_id, name, created_at FROM students WHERE section=?",
                                    (section,)).fetchall()
        return {str(r[0]): (str(r[1]), str(r[2])) for r in rows}

    def section_history(self, section: str, statuses: tuple[str, ...], since: str | None = None,
                        until: str | None = None, limit: int = 10_000,
                        ) -> tuple[list[SessionRow], dict[tuple[str, str], tuple[float, float]]]:
        """The section's sessions with these statuses (oldest first, at most `limit`, the newest kept) and, per
        (session id, student id), the seconds seen and the first sighting."""
        where, args = ["section = ?", f"status IN ({','.join('?' * len(statuses))})"], [section, *statuses]
        for clause, value in (("started_at >= ?", since), ("started_at <= ?", until)):
            if value is not None:
                where.append(clause)
                args.append(value)
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM sessions WHERE {' AND '.join(where)} "
                                    "ORDER BY started_at DESC, rowid DESC LIMIT ?", (*args, limit)).fetchall()
            sessions = [_session_row(r) for r in reversed(rows)]
            seen: dict[tuple[str, str], tuple[float, float]] = {}
            for chunk in range(0, len(sessions), 500):
                ids = [x.id for x in sessions[chunk:chunk + 500]]
                for r in self._db.execute(
                        "SELECT session_id, student_id, seen_s, first_seen_s FROM attendance WHERE session_id IN "
                        f"({','.join('?' * len(ids))})", ids):
                    seen[(str(r[0]), str(r[1]))] = (float(r[2]), float(r[3]))
        return sessions, seen


def _stored_photos(db: sqlite3.Connection, where: str, args: tuple[str, ...]) -> list[str]:
    return [str(r[0]) for r in db.execute(
        f"SELECT e.photo FROM encodings e JOIN students st ON st.id = e.student WHERE {where} AND e.photo IS NOT NULL",
        args)]


def _unknown_row(r: sqlite3.Row) -> UnknownRow:
    vector = None if r[5] is None else np.frombuffer(r[5], dtype=np.float32).copy()
    return UnknownRow(int(r[0]), str(r[1]), int(r[2]), str(r[3]), float(r[4]), vector, r[6])


def _session_row(r: sqlite3.Row) -> SessionRow:
    return SessionRow(
        id=r["id"], name=r["name"], section=r["section"], mode=r["mode"], source=r["source"],
        export=bool(r["export"]), status=r["status"], started_at=r["started_at"], ended_at=r["ended_at"],
        frames_processed=int(r["frames_processed"]), total_frames=r["total_frames"],
        roster_total=int(r["roster_total"]), export_path=r["export_path"], error=r["error"],
        video_s=r["video_s"],
        warnings=list(json.loads(r["warnings"] or "[]")),
        lesson=r["lesson"], lesson_start=r["lesson_start"],
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
