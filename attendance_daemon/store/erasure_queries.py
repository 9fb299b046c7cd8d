"""Forgetting a student and deleting a session, each in one transaction."""

from __future__ import annotations

from .connection import Database
from .records import Erasure, SessionRow


class ErasureQueries(Database):
    """Forgetting a student and deleting a session, each in one transaction.
    One family of the Store's queries."""

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
