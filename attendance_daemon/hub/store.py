"""The hub's PostgreSQL store (psycopg 3): migrations, exactly-once session rows, fleet, rosters, reports.

One connection in autocommit mode, one lock: the hub's ingest and request threads share it; every write that
touches several rows is one transaction."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb

from . import forgets
from .fleet_queries import HubFleetQueries
from .record import student_status
from .roster_queries import HubRosterQueries

Outcome = Literal["inserted", "duplicate", "revised", "stale"]


def student_digest(student_id: str) -> str:
    return hashlib.sha256(student_id.encode()).hexdigest()


def canonical(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def payload_digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(payload).encode()).hexdigest()


@dataclass(frozen=True)
class ForgetCounts:
    sessions: int
    attendance_rows: int
    roster_students: int
    sections: list[str]
    events: int = 0
    devices: list[str] = field(default_factory=list)  # boxes whose stored sessions held the student


class HubStore(HubRosterQueries, HubFleetQueries):
    """Fleet, exactly-once session rows, reports and forgetting, on top of the rosters, the assignments and
    quarantine, and the connection."""

    # ---- fleet ------------------------------------------------------------------------------------

    def device(self, device_id: str, **fields: Any) -> None:
        """Upserts what the hub knows of a box (availability, bridge, info, state)."""
        cols = [k for k in ("availability", "bridge", "info", "state") if k in fields]
        values = [Jsonb(fields[k]) if k in ("info", "state") else fields[k] for k in cols]
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols)
        with self._tx() as db:
            db.execute(
                f"INSERT INTO devices (device_id{''.join(', ' + c for c in cols)}) "
                f"VALUES (%s{', %s' * len(cols)}) ON CONFLICT (device_id) DO UPDATE SET "
                f"{sets + ', ' if sets else ''}last_seen = now()",
                (device_id, *values))

    def devices(self) -> list[dict[str, Any]]:
        with self._read() as db:
            return db.execute("SELECT * FROM devices ORDER BY device_id").fetchall()

    def device_ids(self) -> list[str]:
        with self._read() as db:
            return [r["device_id"] for r in db.execute("SELECT device_id FROM devices ORDER BY 1").fetchall()]

    # ---- sessions ---------------------------------------------------------------------------------

    def store_results(self, device_id: str, results: dict[str, Any]) -> Outcome:
        """Exactly once per (device_id, session_id). The same payload again (a retained replay, a bridge
        re-send) only counts a delivery. A changed payload for the same session (a box re-publishing after
        recovery, a teacher's correction) replaces the row when it is no older by (ended_at, revision) than the
        stored one (revised); an older one, e.g. a correction re-sent after a newer one, is kept out (stale)."""
        results = self._scrub_forgotten(results)
        text = canonical(results)  # made once: the digest and the stored jsonb
        digest = hashlib.sha256(text.encode()).hexdigest()
        row = _session_values(device_id, results, text, digest)
        with self._tx() as db:
            inserted = db.execute(
                "INSERT INTO sessions (device_id, session_id, name, section, status, started_at, ended_at, "
                "present_count, total, payload, digest, record, revision) VALUES (%(device_id)s, %(session_id)s, "
                "%(name)s, %(section)s, %(status)s, %(started_at)s, %(ended_at)s, %(present_count)s, %(total)s, "
                "%(payload)s::jsonb, %(digest)s, %(record)s, %(revision)s) "
                "ON CONFLICT (device_id, session_id) DO NOTHING RETURNING 1", row).fetchone()
            if inserted:
                _insert_attendance(db, device_id, results)
                return "inserted"
            old = db.execute("SELECT digest, ended_at, revision FROM sessions WHERE device_id=%s AND session_id=%s "
                             "FOR UPDATE", (device_id, row["session_id"])).fetchone()
            assert old is not None
            if old["digest"] == digest:
                db.execute("UPDATE sessions SET deliveries = deliveries + 1 WHERE device_id=%s AND session_id=%s",
                           (device_id, row["session_id"]))
                return "duplicate"
            newer = db.execute("SELECT (%s::timestamptz, %s::integer) >= (COALESCE(%s::timestamptz, '-infinity'), "
                               "%s::integer) AS newer", (row["ended_at"] or "infinity", row["revision"],
                                                         old["ended_at"], old["revision"])).fetchone()
            if not (newer and newer["newer"]):
                db.execute("UPDATE sessions SET deliveries = deliveries + 1 WHERE device_id=%s AND session_id=%s",
                           (device_id, row["session_id"]))
                return "stale"
            db.execute(
                "UPDATE sessions SET name=%(name)s, section=%(section)s, status=%(status)s, "
                "started_at=%(started_at)s, ended_at=%(ended_at)s, present_count=%(present_count)s, "
                "total=%(total)s, payload=%(payload)s::jsonb, digest=%(digest)s, record=%(record)s, "
                "revision=%(revision)s, deliveries=deliveries + 1, "
                "revisions=revisions + 1, stored_at=clock_timestamp() "
                "WHERE device_id=%(device_id)s AND session_id=%(session_id)s", row)
            db.execute("DELETE FROM attendance WHERE device_id=%s AND session_id=%s", (device_id, row["session_id"]))
            _insert_attendance(db, device_id, results)
            return "revised"

    def session_rows(self, device_id: str | None = None, session_id: str | None = None) -> list[dict[str, Any]]:
        where, args = [], []
        for col, value in (("device_id", device_id), ("session_id", session_id)):
            if value is not None:
                where.append(f"{col} = %s")
                args.append(value)
        sql = ("SELECT device_id, session_id, name, section, status, started_at, ended_at, present_count, total, "
               "record, revision, deliveries, revisions, stored_at, quarantined FROM sessions")
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._read() as db:
            return db.execute(sql + " ORDER BY started_at", args).fetchall()

    def add_event(self, device_id: str, event: dict[str, Any]) -> bool:
        """Stored once: a re-sent event (same content) is a no-op, and so is one about a student sent before a
        forget of them (forgets.event_is_forgotten). True when new."""
        with self._tx() as db:
            if any(forgets.event_is_forgotten(db, device_id, student_digest(s), event)
                   for s in forgets.named_students(event)):
                return False
            return db.execute(
                "INSERT INTO events (device_id, digest, type, at, payload) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING RETURNING 1",
                (device_id, payload_digest(event), str(event.get("type", ""))[:64], str(event.get("at", ""))[:64],
                 Jsonb(event))).fetchone() is not None

    # ---- reports ----------------------------------------------------------------------------------

    def student_report(self, student_id: str, since: str | None, until: str | None,
                       limit: int) -> list[dict[str, Any]]:
        """Every session of every room where the student was on the roster (present or absent)."""
        sql, args = _report_sql("a.student_id = %s", [student_id], since, until, limit)
        with self._read() as db:
            return db.execute(sql, args).fetchall()

    def section_report(self, section: str, since: str | None, until: str | None,
                       limit: int) -> list[dict[str, Any]]:
        sql, args = _report_sql("s.section = %s", [section], since, until, limit)
        with self._read() as db:
            return db.execute(sql, args).fetchall()

    def record_payloads(self, section: str, since: str, until: str, device_id: str | None, include_drafts: bool,
                        max_sessions: int, max_bytes: int) -> tuple[int, int, list[dict[str, Any]]]:
        """(sessions, bytes of their payloads, [{device_id, session_id, payload}] oldest first) of the section's
        sessions that started from `since` to `until`, out of quarantine, final ones only unless
        `include_drafts`. The payloads are read only when both figures are within the bounds (else [])."""
        where = ["section = %s", "NOT quarantined", "started_at >= %s", "started_at <= %s"]
        args: list[Any] = [section, since, until]
        if device_id is not None:
            where.append("device_id = %s")
            args.append(device_id)
        if not include_drafts:
            where.append("record = 'final'")
        sql = " WHERE " + " AND ".join(where)
        with self._read() as db:
            size = db.execute("SELECT count(*) AS n, COALESCE(sum(octet_length(payload::text)), 0) AS bytes "
                              "FROM sessions" + sql, args).fetchone()
            assert size is not None
            n, total = int(size["n"]), int(size["bytes"])
            if n > max_sessions or total > max_bytes:
                return n, total, []
            return n, total, db.execute("SELECT device_id, session_id, payload FROM sessions" + sql +
                                        " ORDER BY started_at, device_id, session_id LIMIT %s",
                                        [*args, max_sessions]).fetchall()

    # ---- forgetting ---------------------------------------------------------------------------------

    def forget(self, student_id: str, section: str | None, mode: Literal["anonymise", "remove"]) -> ForgetCounts:
        """Erases a student from the hub in one transaction: roster entries (with their encodings), and the
        attendance of the sessions (removed, or kept under a random pseudonym with the name dropped); the stored
        results payloads are scrubbed the same way; the events naming them are deleted. Remembered (as a hash, with
        its time) so later replays of what was recorded before it are scrubbed too, and nothing recorded after it
        (a new student given the same id is a new person)."""
        alias = f"forgotten-{secrets.token_hex(4)}"
        with self._tx() as db:
            sec_clause, sec_args = ("AND section = %s", [section]) if section else ("", [])
            sections = [r["section"] for r in db.execute(
                f"DELETE FROM roster_students WHERE student_id = %s {sec_clause} RETURNING section",
                [student_id, *sec_args]).fetchall()]
            sessions = db.execute(
                "SELECT s.device_id, s.session_id, s.payload FROM sessions s JOIN attendance a USING "
                f"(device_id, session_id) WHERE a.student_id = %s {sec_clause.replace('section', 's.section')} "
                "FOR UPDATE OF s", [student_id, *sec_args]).fetchall()
            rows = 0
            for s in sessions:
                payload = _scrub(s["payload"], {student_id}, mode, alias)
                db.execute("UPDATE sessions SET payload=%s, digest=%s, present_count=%s, total=%s "
                           "WHERE device_id=%s AND session_id=%s",
                           (Jsonb(payload), payload_digest(payload), int(payload.get("present_count", 0)),
                            int(payload.get("total", 0)), s["device_id"], s["session_id"]))
                if mode == "remove":
                    cur = db.execute("DELETE FROM attendance WHERE device_id=%s AND session_id=%s AND student_id=%s",
                                     (s["device_id"], s["session_id"], student_id))
                else:
                    cur = db.execute("UPDATE attendance SET student_id=%s, name=%s WHERE device_id=%s AND "
                                     "session_id=%s AND student_id=%s",
                                     (alias, alias, s["device_id"], s["session_id"], student_id))
                rows += cur.rowcount
            # with `section`, remembered for that section only (the same id elsewhere may be someone else)
            forgets.record(db, student_digest(student_id), section, mode, alias)
            events = forgets.delete_events(db, student_id, section)
        return ForgetCounts(len(sessions), rows, len(sections), sorted(set(sections)), events,
                            sorted({s["device_id"] for s in sessions}))

    def _scrub_forgotten(self, results: dict[str, Any]) -> dict[str, Any]:
        ids = {str(p.get("student_id")) for key in ("present", "absent") for p in results.get(key, [])
               if isinstance(p, dict)}
        if not ids:
            return results
        digests = {student_digest(i): i for i in ids}
        with self._read() as db:
            rows = forgets.applicable(db, list(digests), str(results.get("section")), str(results.get("started_at")))
        for digest, r in rows.items():  # the forget's own alias: a replay scrubs to the stored payload (a duplicate)
            results = _scrub(results, {digests[digest]}, r["mode"], r["alias"])
        return results

    def newest_results(self, device_id: str) -> dict[str, Any] | None:
        with self._read() as db:
            return forgets.newest_results(db, device_id)

    def record_forget_sent(self, student_id: str, device_id: str, request: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO forget_deliveries (digest, device_id, request) VALUES (%s, %s, %s) "
                       "ON CONFLICT (digest, device_id) DO UPDATE SET request = EXCLUDED.request, sent_at = now(), "
                       "answered_at = NULL, answer = NULL", (student_digest(student_id), device_id, Jsonb(request)))

    def record_forget_answer(self, device_id: str, transaction: str, answer: dict[str, Any]) -> bool:
        """The box answered. `ok`: done, the stored request (which names the student) is dropped. An error (e.g.
        404 from a box too old to know the command) is kept with the request, which goes out again when the box
        next comes online."""
        done = answer.get("status") == "ok"
        if isinstance(answer.get("data"), dict):  # the box's answer names the student: not kept
            answer = {**answer, "data": {k: v for k, v in answer["data"].items() if k != "student_id"}}
        with self._tx() as db:
            cur = db.execute(
                "UPDATE forget_deliveries SET answer = %s, answered_at = CASE WHEN %s THEN now() END, "
                "request = CASE WHEN %s THEN '{}'::jsonb ELSE request END "
                "WHERE device_id = %s AND request->>'transaction' = %s",
                (Jsonb(answer), done, done, device_id, transaction))
            return cur.rowcount > 0

    def pending_forgets(self, device_id: str) -> list[dict[str, Any]]:
        with self._read() as db:
            rows = db.execute("SELECT request FROM forget_deliveries WHERE device_id = %s AND "
                                    "answered_at IS NULL ORDER BY sent_at", (device_id,)).fetchall()
        return [r["request"] for r in rows]

    def forget_deliveries(self) -> list[dict[str, Any]]:
        with self._read() as db:
            return db.execute("SELECT device_id, sent_at, answered_at, answer FROM forget_deliveries "
                                    "ORDER BY sent_at").fetchall()


def _session_values(device_id: str, r: dict[str, Any], text: str, digest: str) -> dict[str, Any]:
    return {"device_id": device_id, "session_id": r["session_id"], "name": r["name"], "section": r["section"],
            "status": r["status"], "started_at": r["started_at"], "ended_at": r.get("ended_at"),
            "present_count": int(r["present_count"]), "total": int(r["total"]), "payload": text,
            "digest": digest, "record": r.get("record", "final"), "revision": int(r.get("revision", 0))}


def _insert_attendance(db: psycopg.Connection[dict[str, Any]], device_id: str, r: dict[str, Any]) -> None:
    """COPY (a large room's thousands of rows in one go); a student listed twice keeps the first entry. Times
    are null for a student a correction marked present whom the camera never saw (`recognised_status` absent:
    the box sends the session's start for them, v1's types)."""
    rows = [(device_id, r["session_id"], p["student_id"], p["name"], True, p["seen_s"], p["late"], p["left_early"],
             *((None, None) if p.get("recognised_status") == "absent" else (p["arrived_at"], p["left_at"])),
             *student_status(p, True)) for p in r["present"]]
    rows += [(device_id, r["session_id"], a["student_id"], a["name"], False, None, None, None, None, None,
              *student_status(a, False)) for a in r["absent"]]
    seen: set[str] = set()
    with db.cursor() as cur, cur.copy("COPY attendance (device_id, session_id, student_id, name, present, seen_s, "
                                      "late, left_early, arrived_at, left_at, status, recognised_status, corrected) "
                                      "FROM STDIN") as copy:
        for row in rows:
            if row[2] not in seen:
                seen.add(row[2])
                copy.write_row(row)


def _scrub(results: dict[str, Any], ids: set[str], mode: str, alias: str) -> dict[str, Any]:
    out = dict(results)
    for key in ("present", "absent"):
        kept = []
        for p in results.get(key, []):
            if isinstance(p, dict) and p.get("student_id") in ids:
                if mode == "remove":
                    continue
                scrubbed = {**p, "student_id": alias, "name": alias}
                if isinstance(p.get("correction"), dict):  # a teacher's note may say why they were away
                    scrubbed["correction"] = {**p["correction"], "note": ""}
                kept.append(scrubbed)
                continue
            kept.append(p)
        out[key] = kept
    if mode == "remove":
        out["present_count"] = len(out.get("present", []))
        out["total"] = len(out.get("present", [])) + len(out.get("absent", []))
    return out


def _report_sql(where: str, args: list[Any], since: str | None, until: str | None,
                limit: int) -> tuple[str, list[Any]]:
    clauses = [where, "NOT s.quarantined"]  # a box's results for a section it does not teach (fleet_queries.py)
    if since is not None:
        clauses.append("s.started_at >= %s")
        args.append(since)
    if until is not None:
        clauses.append("s.started_at <= %s")
        args.append(until)
    sql = ("SELECT a.student_id, a.name, a.present, a.seen_s, a.late, a.left_early, a.arrived_at, a.left_at, "
           "a.status AS attendance_status, a.recognised_status, a.corrected, s.record, "
           "s.device_id, s.session_id, s.name AS session, s.section, s.status, s.started_at, s.ended_at "
           f"FROM attendance a JOIN sessions s USING (device_id, session_id) WHERE {' AND '.join(clauses)} "
           "ORDER BY s.started_at, s.device_id, a.student_id LIMIT %s")
    return sql, [*args, limit]
