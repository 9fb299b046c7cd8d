"""What a forget at the hub leaves behind it, as queries on the hub's connection (store.py calls them inside its
transactions): each forget kept with its time, so it scrubs what was recorded before it and never a student given
the same id later; the student's events; and which boxes' retained messages on the central broker to replace."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg

from ..common.timeutil import parse_iso

Db = psycopg.Connection[dict[str, Any]]


def record(db: Db, digest: str, section: str | None, mode: str, alias: str) -> None:
    db.execute("INSERT INTO forgets (digest, section, mode, alias) VALUES (%s, %s, %s, %s)",
               (digest, section, mode, alias))


def applicable(db: Db, digests: list[str], section: str, started_at: str) -> dict[str, dict[str, Any]]:
    """digest -> {mode, alias} of the first forget (of every section, or of `section`) made after a session of
    `section` started at `started_at`: its results were recorded before that forget, so they are scrubbed as it
    scrubbed the stored ones. A session that started after every forget of an id is a new person's."""
    rows = db.execute(
        "SELECT DISTINCT ON (digest) digest, mode, alias FROM forgets WHERE digest = ANY(%s) AND "
        "(section IS NULL OR section = %s) AND at > %s::timestamptz ORDER BY digest, at",
        (digests, section, started_at)).fetchall()
    return {r["digest"]: r for r in rows}


def event_is_forgotten(db: Db, device_id: str, digest: str, event: dict[str, Any]) -> bool:
    """An event about a student (`student_id`) sent before a forget of them that covers its section (its own
    `section`, else its session's; unknown counts as covered): the forget deleted its like, so it is not stored.
    An event whose time cannot be read counts as before."""
    try:
        at: datetime | None = parse_iso(str(event.get("at")))
    except ValueError:
        at = None
    section = event.get("section") if isinstance(event.get("section"), str) else None
    return db.execute(
        "SELECT 1 FROM forgets f WHERE f.digest = %s AND (%s::timestamptz IS NULL OR f.at > %s::timestamptz) AND "
        "(f.section IS NULL OR f.section = COALESCE(%s, (SELECT s.section FROM sessions s WHERE s.device_id = %s "
        "AND s.session_id = %s), f.section)) LIMIT 1",
        (digest, at, at, section, device_id, str(event.get("session_id")))).fetchone() is not None


# An event names a student by its `student_id` (student_present, attendance_low, ...) or in the lists of an
# `absences` notice (whose subject and text name them too: the whole notice goes)
_NAMES = ("(e.payload->>'student_id' = %(id)s OR e.payload->'absent' @> %(listed)s::jsonb "
          "OR e.payload->'late' @> %(listed)s::jsonb)")


def named_students(event: dict[str, Any]) -> list[str]:
    """The students an event names: its `student_id`, and the absent and late students of an `absences` notice."""
    found = [event["student_id"]] if isinstance(event.get("student_id"), str) else []
    for key in ("absent", "late"):
        entries = event.get(key)
        if isinstance(entries, list):
            found += [str(s["student_id"]) for s in entries if isinstance(s, dict) and "student_id" in s]
    return found


def delete_events(db: Db, student_id: str, section: str | None) -> int:
    """Deletes the events naming the student (`student_present`, `attendance_low`, an `absences` notice ...); with
    `section`, those of that section (their own `section`, else their session's), and those whose section the hub
    cannot tell."""
    args = {"id": student_id, "listed": json.dumps([{"student_id": student_id}]), "section": section}
    if section is None:
        return db.execute(f"DELETE FROM events e WHERE {_NAMES}", args).rowcount
    return db.execute(
        f"DELETE FROM events e WHERE {_NAMES} AND COALESCE(e.payload->>'section', "
        "(SELECT s.section FROM sessions s WHERE s.device_id = e.device_id AND s.session_id = "
        "e.payload->>'session_id'), %(section)s) = %(section)s", args).rowcount


def newest_results(db: Db, device_id: str) -> dict[str, Any] | None:
    """The stored results of the device's newest session (as the box republishes after an erasure)."""
    row = db.execute("SELECT payload FROM sessions WHERE device_id = %s ORDER BY started_at DESC LIMIT 1",
                     (device_id,)).fetchone()
    return None if row is None else dict(row["payload"])
