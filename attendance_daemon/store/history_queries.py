"""The timetable, the lessons sessions ran for, and a section's attendance over time."""

from __future__ import annotations

from .connection import Database, session_row
from .records import LessonRow, SessionRow


class HistoryQueries(Database):
    """The timetable, the lessons sessions ran for, and a section's attendance over time.
    One family of the Store's queries."""

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
            sessions = [session_row(r) for r in reversed(rows)]
            seen: dict[tuple[str, str], tuple[float, float]] = {}
            for chunk in range(0, len(sessions), 500):
                ids = [x.id for x in sessions[chunk:chunk + 500]]
                for r in self._db.execute(
                        "SELECT session_id, student_id, seen_s, first_seen_s FROM attendance WHERE session_id IN "
                        f"({','.join('?' * len(ids))})", ids):
                    seen[(str(r[0]), str(r[1]))] = (float(r[2]), float(r[3]))
        return sessions, seen
