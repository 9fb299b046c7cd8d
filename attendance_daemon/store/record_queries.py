"""The teacher's record of a session: corrections and their undos, finalising and reopening, each one audited
row of `record_log` committed with the session's new revision; and the outbox of records and absence notices
still to hand to the broker."""

from __future__ import annotations

import sqlite3

from ..common.errors import Conflict, NotFound
from ..common.timeutil import now_iso
from ..contract.record_api import ATTENDED
from .connection import ACTIVE_STATUSES, Database, session_row
from .records import LogRow, SessionRow

_ACTIVE = ("SELECT 1 FROM record_log u WHERE u.action = 'undo' AND u.undoes = c.id")


def _log_row(r: sqlite3.Row, undone_by: int | None = None) -> LogRow:
    return LogRow(int(r["id"]), str(r["session_id"]), str(r["action"]), r["student_id"], r["status"], r["undoes"],
                  str(r["note"]), r["client"], r["mqtt_user"], str(r["at"]), undone_by)


class RecordQueries(Database):
    """Corrections, undos, finalising and reopening, the audit trail and the publication outbox.
    One family of the Store's queries."""

    def correct(self, session_id: str, student_id: str, status: str, note: str, client: str | None,
                user: str | None) -> LogRow:
        """A correction of one student's status in an ended draft record (409 while running or once final; 404
        for a student neither on the record's roster nor seen in the session: the section's, or the one a record
        finalised before keeps)."""
        with self._tx() as db:
            row = self._changeable(db, session_id)
            roster = ("SELECT 1 FROM session_roster WHERE session_id=? AND student_id=?", (session_id, student_id)) \
                if row.roster_frozen else ("SELECT 1 FROM students WHERE section=? AND student_id=?",
                                           (row.section, student_id))
            on_roster = db.execute(f"{roster[0]} UNION ALL SELECT 1 FROM attendance WHERE session_id=? AND "
                                   "student_id=?", (*roster[1], session_id, student_id)).fetchone()
            if on_roster is None:
                raise NotFound(f"student_id: '{student_id}' is not on the roster of section '{row.section}'")
            return self._log(db, session_id, "correct", student_id, status, None, note, client, user)

    def undo_correction(self, session_id: str, student_id: str, note: str, client: str | None,
                        user: str | None) -> LogRow:
        """Takes back the student's newest correction still in force (the one before it, if any, applies again;
        else what recognition saw). 404 when there is none."""
        with self._tx() as db:
            self._changeable(db, session_id)
            last = db.execute(
                f"SELECT c.id FROM record_log c WHERE c.session_id=? AND c.student_id=? AND c.action='correct' "
                f"AND NOT EXISTS ({_ACTIVE}) ORDER BY c.id DESC LIMIT 1", (session_id, student_id)).fetchone()
            if last is None:
                raise NotFound(f"student_id: no correction of '{student_id}' in this session to undo")
            return self._log(db, session_id, "undo", student_id, None, int(last[0]), note, client, user)

    def finalize(self, session_id: str, note: str, client: str | None, user: str | None,
                 ) -> tuple[SessionRow, LogRow]:
        """Draft -> final, with an absence notice to send (`notice_pending`). 409 while running or when final.
        The first finalisation keeps the section's roster of now with the record (`frozen_roster`); a section
        removed before keeps the record as it was (its size at the start)."""
        with self._tx() as db:
            row = self._ended(db, session_id)
            if row.record == "final":
                raise Conflict(f"session_id: the record of session '{row.name}' is already final (since "
                               f"{row.finalized_at})")
            change = self._log(db, session_id, "finalize", None, None, None, note, client, user)
            db.execute("UPDATE sessions SET record='final', finalized_at=?, finalized_by=?, notice_pending=revision "
                       "WHERE id=?", (now_iso(), client, session_id))  # the notice owed is this finalisation's
            section_kept = db.execute("SELECT 1 FROM sections WHERE name=?", (row.section,)).fetchone()
            if section_kept and not row.roster_frozen:  # a removed section: its size at the start
                db.execute("INSERT OR IGNORE INTO session_roster(session_id, student_id, name) SELECT ?, student_id, "
                           "name FROM students WHERE section=?", (session_id, row.section))
                db.execute("UPDATE sessions SET roster_frozen=1 WHERE id=?", (session_id,))
            return session_row(db.execute("SELECT * FROM sessions WHERE id=?", (session_id,)).fetchone()), change

    def reopen(self, session_id: str, note: str, client: str | None, user: str | None,
               ) -> tuple[SessionRow, LogRow]:
        """Final -> draft again (audited); a notice not sent yet is dropped with it."""
        with self._tx() as db:
            row = self._ended(db, session_id)
            if row.record != "final":
                raise Conflict(f"session_id: the record of session '{row.name}' is a draft: nothing to reopen")
            change = self._log(db, session_id, "reopen", None, None, None, note, client, user)
            db.execute("UPDATE sessions SET record='draft', finalized_at=NULL, finalized_by=NULL, notice_pending=0 "
                       "WHERE id=?", (session_id,))
            return session_row(db.execute("SELECT * FROM sessions WHERE id=?", (session_id,)).fetchone()), change

    def frozen_roster(self, session: SessionRow) -> dict[str, str] | None:
        """student id -> name of the roster a final record keeps (since its first finalisation, through reopening
        too), or None for a record that follows the section's roster as it is (a draft never finalised)."""
        if not session.roster_frozen:
            return None
        with self._lock:
            rows = self._db.execute("SELECT student_id, name FROM session_roster WHERE session_id=? ORDER BY "
                                    "student_id", (session.id,)).fetchall()  # as `students` lists a section
        return {str(r[0]): str(r[1]) for r in rows}

    def record_log(self, session_id: str, after_id: int = 0, limit: int = 2**62,
                   ) -> tuple[SessionRow, list[LogRow]]:
        """The session (404 when unknown) and its trail after `after_id`, oldest first, at most `limit` entries,
        read together; each correction says which undo took it back."""
        with self._lock:
            r = self._db.execute("SELECT * FROM sessions WHERE id=?", (session_id,)).fetchone()
            if r is None:
                raise NotFound(f"session_id: unknown session '{session_id}'")
            rows = self._db.execute("SELECT l.*, (SELECT u.id FROM record_log u WHERE u.action = 'undo' AND "
                                    "u.undoes = l.id) AS undone_by FROM record_log l WHERE l.session_id=? AND l.id > ? "
                                    "ORDER BY l.id LIMIT ?", (session_id, after_id, limit)).fetchall()
        return session_row(r), [_log_row(x, x["undone_by"]) for x in rows]

    def corrections_in(self, session_ids: list[str]) -> dict[tuple[str, str], LogRow]:
        """(session id, student id) -> the correction in force (the newest not undone) in these sessions."""
        found: dict[tuple[str, str], LogRow] = {}
        with self._lock:
            for chunk in range(0, len(session_ids), 500):
                ids = session_ids[chunk:chunk + 500]
                for r in self._db.execute(
                        "SELECT * FROM record_log WHERE id IN (SELECT MAX(c.id) FROM record_log c WHERE "
                        f"c.action='correct' AND c.session_id IN ({','.join('?' * len(ids))}) AND NOT EXISTS "
                        f"({_ACTIVE}) GROUP BY c.session_id, c.student_id)", ids):
                    found[(str(r["session_id"]), str(r["student_id"]))] = _log_row(r)
        return found

    def attended_counts(self, session_ids: list[str], min_seen_s: float) -> dict[str, int]:
        """Students whose effective status is present, late or left_early, per session (as its Results count
        them; sessions without any are left out)."""
        found: dict[str, int] = {}
        seen: set[tuple[str, str]] = set()
        with self._lock:
            for chunk in range(0, len(session_ids), 500):
                ids = session_ids[chunk:chunk + 500]
                seen |= {(str(r[0]), str(r[1])) for r in self._db.execute(
                    f"SELECT session_id, student_id FROM attendance WHERE session_id IN ({','.join('?' * len(ids))}) "
                    "AND seen_s >= ?", (*ids, min_seen_s))}
        corrections = self.corrections_in(session_ids)
        for key in seen | set(corrections):
            row = corrections.get(key)
            if (row.status in ATTENDED) if row is not None else key in seen:
                found[key[0]] = found.get(key[0], 0) + 1
        return found

    def due_for_finalize(self, before: str) -> list[str]:
        """Draft records of sessions that ended, and were last reopened, before this instant (UTC ISO), oldest
        first. Left to the teacher: a `failed` session (the camera or the disk gave out) and an `interrupted` one
        whose lesson was resumed by a later session: finalised by themselves, their notices would call absent
        everybody the camera did not see in them."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM sessions s WHERE record='draft' AND status NOT IN (?, ?, 'failed') AND "
                "COALESCE(ended_at, started_at) < ? AND NOT EXISTS (SELECT 1 FROM record_log l WHERE "
                "l.session_id = s.id AND l.action = 'reopen' AND l.at >= ?) AND NOT (s.status = 'interrupted' AND "
                "s.lesson IS NOT NULL AND EXISTS (SELECT 1 FROM sessions r WHERE r.lesson = s.lesson AND "
                "r.started_at > s.started_at)) ORDER BY started_at",
                (*ACTIVE_STATUSES, before, before)).fetchall()
        return [str(r[0]) for r in rows]

    def outbox(self) -> list[tuple[str, int, int]]:
        """(session id, revision, the revision of the finalisation whose absence notice is owed or 0) of records
        the broker has not taken yet, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT id, revision, notice_pending FROM sessions WHERE published_revision < "
                                    "revision OR notice_pending > 0 ORDER BY started_at").fetchall()
        return [(str(r[0]), int(r[1]), int(r[2])) for r in rows]

    def mark_published(self, session_id: str, revision: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE sessions SET published_revision = MAX(published_revision, ?) WHERE id=?",
                       (revision, session_id))

    def mark_noticed(self, session_id: str, finalisation: int) -> None:
        """The notice of that finalisation was taken; a later finalisation's (reopened and finalised again
        meanwhile) is still owed."""
        with self._tx() as db:
            db.execute("UPDATE sessions SET notice_pending = 0 WHERE id=? AND notice_pending=?",
                       (session_id, finalisation))

    # ---- inside a transaction --------------------------------------------------------------------------------

    def _ended(self, db: sqlite3.Connection, session_id: str) -> SessionRow:
        r = db.execute("SELECT * FROM sessions WHERE id=?", (session_id,)).fetchone()
        if r is None:
            raise NotFound(f"session_id: unknown session '{session_id}'")
        row = session_row(r)
        if row.status in ACTIVE_STATUSES:
            raise Conflict(f"session_id: session '{row.name}' is still {row.status}: its record is kept once it ends")
        return row

    def _changeable(self, db: sqlite3.Connection, session_id: str) -> SessionRow:
        row = self._ended(db, session_id)
        if row.record == "final":
            raise Conflict(f"session_id: the record of session '{row.name}' is final: reopen it (request/reopen) "
                           "to correct it")
        return row

    @staticmethod
    def _log(db: sqlite3.Connection, session_id: str, action: str, student_id: str | None, status: str | None,
             undoes: int | None, note: str, client: str | None, user: str | None) -> LogRow:
        """One audited row, and the session's next revision (what the outbox hands to the broker)."""
        cur = db.execute("INSERT INTO record_log(session_id, action, student_id, status, undoes, note, client, "
                         "mqtt_user, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (session_id, action, student_id, status, undoes, note, client, user, now_iso()))
        db.execute("UPDATE sessions SET revision = revision + 1 WHERE id=?", (session_id,))
        r = db.execute("SELECT * FROM record_log WHERE id=?", (cur.lastrowid,)).fetchone()
        return _log_row(r)
