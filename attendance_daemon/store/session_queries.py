"""Sessions, their attendance rows and unknown faces, and the export and crop paths retention clears."""

from __future__ import annotations

import json

import numpy as np

from ..common.errors import Conflict, NotFound
from ..common.names import check_id
from ..common.timeutil import now_iso
from .connection import ACTIVE_STATUSES, Database, session_row, unknown_row
from .doomed_queries import doom
from .records import AttendanceRow, SessionRow, UnknownRow


class SessionQueries(Database):
    """Sessions, their attendance rows and unknown faces, and the export and crop paths retention clears.
    One family of the Store's queries."""

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

    def list_sessions(
        self,
        section: str | None = None,
        since: str | None = None,
        until: str | None = None,
        status: str | None = None,
        limit: int = 50,
        record: str | None = None,
    ) -> list[SessionRow]:
        """Newest first; `record` is `live` (running or paused), `draft` (ended, not final) or `final`."""
        where, args = [], []
        for clause, value in (
            ("section = ?", section), ("started_at >= ?", since), ("started_at <= ?", until), ("status = ?", status)
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        if record is not None:
            active = f"status IN ({', '.join('?' * len(ACTIVE_STATUSES))})"
            where.append(active if record == "live" else f"record = ? AND NOT {active}")
            args += [*([] if record == "live" else [record]), *ACTIVE_STATUSES]
        sql = "SELECT * FROM sessions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, rowid DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*args, limit)).fetchall()
        return [session_row(r) for r in rows]

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

    def remove_unknown(self, session_id: str, track_id: int) -> list[int]:
        """Forgets a track's unknown-face record; its crops are recorded as doomed in the same transaction
        (returned: the ids for the caller to sweep)."""
        with self._tx() as db:
            rows = db.execute("SELECT crop_path FROM unknown_faces WHERE session_id=? AND track_id=?",
                              (session_id, track_id)).fetchall()
            db.execute("DELETE FROM unknown_faces WHERE session_id=? AND track_id=?", (session_id, track_id))
            return doom(db, [("unknowns", str(r[0])) for r in rows])

    def unknowns(self, session_id: str) -> list[tuple[int, str, float]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT track_id, crop_path, at_s FROM unknown_faces WHERE session_id=? ORDER BY at_s", (session_id,)
            ).fetchall()
        return [(int(r[0]), r[1], float(r[2])) for r in rows]

    def unknown_faces(self, session_id: str) -> list[UnknownRow]:
        self.get_session(session_id)  # 404 for an unknown session
        with self._lock:
            rows = self._db.execute(
                "SELECT u.id, u.session_id, u.track_id, u.crop_path, u.at_s, u.vector, u.assigned_student, "
                "u.dismissed FROM unknown_faces u WHERE u.session_id=? ORDER BY u.at_s, u.id",
                (session_id,)).fetchall()
        return [unknown_row(r) for r in rows]

    def unknown_face(self, face_id: int) -> UnknownRow:
        with self._lock:
            r = self._db.execute(
                "SELECT u.id, u.session_id, u.track_id, u.crop_path, u.at_s, u.vector, u.assigned_student, "
                "u.dismissed FROM unknown_faces u WHERE u.id=?", (face_id,)).fetchone()
        if r is None:
            raise NotFound(f"face_id: no unknown face {face_id}")
        return unknown_row(r)

    def set_dismissed(self, face_id: int, dismissed: bool) -> None:
        with self._tx() as db:
            if db.execute("UPDATE unknown_faces SET dismissed=? WHERE id=?", (int(dismissed), face_id)).rowcount == 0:
                raise NotFound(f"face_id: no unknown face {face_id}")

    def mark_assigned(self, face_id: int, encoding_id: int) -> None:
        """The face became `encoding_id`: it stays tied to that encoding's student (id and section) even when the
        encoding is replaced or removed, so `forget_student` finds its crop."""
        with self._tx() as db:
            owner = db.execute("SELECT st.student_id, st.section FROM encodings e JOIN students st ON st.id = "
                               "e.student WHERE e.id=?", (encoding_id,)).fetchone()
            if owner is None:
                raise NotFound(f"photo_id: no encoding {encoding_id}")
            db.execute("UPDATE unknown_faces SET assigned_to=?, assigned_student=?, assigned_section=? WHERE id=?",
                       (encoding_id, owner[0], owner[1], face_id))

    def expire_unknown_crops(self, crop_paths: list[str]) -> int:
        """Retention deleted these crops: their visitors' encodings go too (biometric data), the rows stay so
        past sessions keep their `unknowns` count. Returns how many rows were touched."""
        with self._tx() as db:
            return sum(db.execute("UPDATE unknown_faces SET vector=NULL WHERE crop_path=?", (p,)).rowcount
                       for p in crop_paths)

    def clear_export(self, session_ids: list[str]) -> None:
        """The sessions' export videos were deleted: their Results say so (export_path null)."""
        with self._tx() as db:
            db.executemany("UPDATE sessions SET export_path=NULL WHERE id=?", [(s,) for s in session_ids])

    def clear_export_paths(self, paths: list[str]) -> None:
        with self._tx() as db:
            db.executemany("UPDATE sessions SET export_path=NULL WHERE export_path=?", [(p,) for p in paths])
