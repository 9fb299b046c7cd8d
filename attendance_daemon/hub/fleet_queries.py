"""Which sections each box teaches (assignments), and the results a box sent for a section it does not teach
(quarantined): one family of the hub store's queries.

An assignment decides two things: the hub sends a box the rosters of its sections only, and a box's results
count only for its sections. Results for any other section are stored with `quarantined` set, by a trigger at
insert (migration 3), whatever path inserts them: they are listed by `quarantine`, never in a report, and
enter the reports only when the operator releases them."""

from __future__ import annotations

from typing import Any

from .connection import HubConnection


class HubFleetQueries(HubConnection):
    # ---- assignments --------------------------------------------------------------------------------

    def assign(self, device_id: str, section: str) -> bool:
        """True when new."""
        with self._tx() as db:
            return db.execute("INSERT INTO assignments (device_id, section) VALUES (%s, %s) ON CONFLICT DO NOTHING "
                              "RETURNING 1", (device_id, section)).fetchone() is not None

    def unassign(self, device_id: str, section: str) -> bool:
        with self._tx() as db:
            return db.execute("DELETE FROM assignments WHERE device_id = %s AND section = %s",
                              (device_id, section)).rowcount > 0

    def assignments(self, device_id: str | None = None) -> dict[str, list[str]]:
        """device id -> its sections, sorted."""
        with self._read() as db:
            rows = db.execute("SELECT device_id, section FROM assignments WHERE %s::text IS NULL OR "
                                    "device_id = %s ORDER BY device_id, section", (device_id, device_id)).fetchall()
        out: dict[str, list[str]] = {}
        for r in rows:
            out.setdefault(r["device_id"], []).append(r["section"])
        return out

    def assigned_devices(self, section: str) -> list[str]:
        with self._read() as db:
            rows = db.execute("SELECT device_id FROM assignments WHERE section = %s ORDER BY 1",
                                    (section,)).fetchall()
        return [r["device_id"] for r in rows]

    # ---- quarantine ---------------------------------------------------------------------------------

    def quarantined(self, device_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        with self._read() as db:
            return db.execute(
                "SELECT device_id, session_id, name, section, status, started_at, ended_at, present_count, total, "
                "deliveries, stored_at FROM sessions WHERE quarantined AND (%s::text IS NULL OR device_id = %s) "
                "ORDER BY stored_at DESC LIMIT %s", (device_id, device_id, limit)).fetchall()

    def quarantine_counts(self) -> dict[str, int]:
        with self._read() as db:
            rows = db.execute("SELECT device_id, count(*) AS n FROM sessions WHERE quarantined "
                                    "GROUP BY device_id").fetchall()
        return {r["device_id"]: int(r["n"]) for r in rows}

    def release(self, device_id: str, session_id: str) -> bool:
        """The session enters the reports (the operator has checked it). False when no such quarantined one."""
        with self._tx() as db:
            return db.execute("UPDATE sessions SET quarantined = false WHERE device_id = %s AND session_id = %s "
                              "AND quarantined", (device_id, session_id)).rowcount > 0
