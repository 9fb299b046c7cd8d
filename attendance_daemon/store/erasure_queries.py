"""Forgetting a student and deleting a session, each in one transaction that also records the files to delete."""

from __future__ import annotations

from collections.abc import Callable

from .connection import Database, session_row
from .doomed_queries import ENROLLMENT, doom, folders
from .records import Erasure, SessionRow

# (root, path) of the files that show a session: its reports, export video and kept frame (privacy/erasure.py
# names them; the store only records them with the rows it deletes)
SessionFiles = Callable[[SessionRow], list[tuple[str, str]]]


def _none(row: SessionRow) -> list[tuple[str, str]]:
    return []


class ErasureQueries(Database):
    """Forgetting a student and deleting a session, each in one transaction.
    One family of the Store's queries."""

    def forget_student(self, student_id: str, section: str | None, remove_rows: bool, placeholder: str,
                       session_files: SessionFiles = _none) -> Erasure:
        """Erases a student in one transaction: their student rows and encodings, the unknown faces assigned
        to them, and their attendance rows (deleted, or given `placeholder` as id and name). The files that held
        them are recorded as doomed in the same transaction (`Erasure.doomed`; the caller sweeps them): stored
        photos, assigned crops, their enrollment folders, the files of the sessions they were recorded in, and
        the reports of their sections' other sessions (which list them as absent). Then truncates the WAL, so no
        copy of the old pages stays beside the file."""
        out = Erasure()
        where, args = ("student_id=?", [student_id]) if section is None else (
            "student_id=? AND section=?", [student_id, section])
        files: list[tuple[str, str]] = []
        with self._tx() as db:
            self.erasures += 1
            for rowid, sec in db.execute(f"SELECT id, section FROM students WHERE {where}", args).fetchall():
                out.sections.add(str(sec))
                encs = db.execute("SELECT id, photo FROM encodings WHERE student=?", (rowid,)).fetchall()
                out.encodings += len(encs)
                out.photos += [str(e[1]) for e in encs if e[1]]
                db.execute("DELETE FROM students WHERE id=?", (rowid,))
            # crops assigned to them: tied to the student, whether or not their row or that encoding still exists
            crop_where = "assigned_student=?" + ("" if section is None else " AND assigned_section=?")
            out.crops = [str(r[0]) for r in db.execute(f"SELECT crop_path FROM unknown_faces WHERE {crop_where}",
                                                       args).fetchall()]
            db.execute(f"DELETE FROM unknown_faces WHERE {crop_where}", args)
            files += [("photos", p) for p in out.photos] + [("unknowns", c) for c in out.crops]
            files.append((ENROLLMENT, folders(section, student_id)))
            scope = "a.student_id=?" + ("" if section is None else " AND s.section=?")
            rows = db.execute(f"SELECT a.session_id, s.section FROM attendance a JOIN sessions s ON s.id = "
                              f"a.session_id WHERE {scope}", args).fetchall()
            # and the sessions whose record a teacher corrected them in (never seen, or removed from the roster
            # since): their reports and exports list them too
            log_scope = "l.student_id=?" + ("" if section is None else " AND s.section=?")
            logged = db.execute(f"SELECT DISTINCT l.session_id, s.section FROM record_log l JOIN sessions s ON s.id = "
                                f"l.session_id WHERE {log_scope}", args).fetchall()
            out.sessions = sorted({str(r[0]) for r in rows} | {str(r[0]) for r in logged})
            out.sections |= {str(r[1]) for r in rows} | {str(r[1]) for r in logged}
            # the final records that keep them on their roster (absent there), removed from the section or not
            out.sections |= {str(r[0]) for r in db.execute(
                "SELECT DISTINCT s.section FROM session_roster r JOIN sessions s ON s.id = r.session_id WHERE "
                + log_scope.replace("l.", "r."), args)}
            out.attendance_rows = len(rows)
            # their corrections (a note may say why they were away): gone, or kept under the placeholder
            trail = "student_id=?" + ("" if section is None else
                                      " AND session_id IN (SELECT id FROM sessions WHERE section=?)")
            if remove_rows:  # final records' rosters: gone, or kept under the placeholder (one per session)
                db.execute(f"DELETE FROM session_roster WHERE {trail}", args)
                db.execute(f"DELETE FROM record_log WHERE {trail}", args)
            else:
                db.execute(f"UPDATE session_roster SET student_id=?, name=? WHERE {trail}",
                           [placeholder, placeholder, *args])
                db.execute(f"UPDATE record_log SET student_id=?, note='' WHERE {trail}", [placeholder, *args])
            for sid in out.sessions:
                if remove_rows:
                    db.execute("DELETE FROM attendance WHERE session_id=? AND student_id=?", (sid, student_id))
                else:
                    db.execute("UPDATE attendance SET student_id=?, name=? WHERE session_id=? AND student_id=?",
                               (placeholder, placeholder, sid, student_id))
            for sec in sorted(out.sections):  # their sessions show them; the section's others list them absent
                for r in db.execute("SELECT * FROM sessions WHERE section=?", (sec,)).fetchall():
                    row = session_row(r)
                    files += [f for f in session_files(row) if row.id in out.sessions or f[0] == "reports"]
            db.executemany("UPDATE sessions SET export_path=NULL WHERE id=?", [(s,) for s in out.sessions])
            out.doomed = doom(db, list(dict.fromkeys(files)))  # a section's range exports: once
        self.purge_wal()
        return out

    def delete_session(self, session_id: str, session_files: SessionFiles = _none) -> tuple[SessionRow, list[int]]:
        """Deletes a session with its attendance and unknown faces; its crops and `session_files` are recorded
        as doomed in the same transaction. Returns the row and the doomed ids (for the caller to sweep)."""
        with self._tx() as db:
            self.erasures += 1
            row = self.get_session(session_id)
            crops = [str(r[0]) for r in db.execute("SELECT crop_path FROM unknown_faces WHERE session_id=?",
                                                    (session_id,)).fetchall()]
            db.execute("DELETE FROM sessions WHERE id=?", (session_id,))  # attendance, unknowns: ON DELETE CASCADE
            doomed = doom(db, [("unknowns", c) for c in crops] + session_files(row))
        self.purge_wal()
        return row, doomed
