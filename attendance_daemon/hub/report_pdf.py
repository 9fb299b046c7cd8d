"""The hub's cross-room report as a PDF (one row per student and session), with the box reports' fonts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..attendance.reports import table_pdf
from ..common.timeutil import iso

COLUMNS = (("student_id", 28), ("name", 50), ("status", 34), ("seen_s", 16), ("device_id", 30),
           ("session", 50), ("section", 24), ("started_at", 45))


def _status(row: dict[str, Any]) -> str:
    if not row["present"]:
        return "absent"
    return ", ".join(["present", *(["late"] if row["late"] else []), *(["left early"] if row["left_early"] else [])])


def _text(row: dict[str, Any], column: str) -> str:
    if column == "status":
        return _status(row)
    value = row[column]
    if value is None:
        return ""
    if isinstance(value, datetime):
        return iso(value).replace("T", " ")
    return f"{value:.0f}" if isinstance(value, float) else str(value)


def render_pdf(title: str, rows: list[dict[str, Any]], summary: dict[str, dict[str, int]]) -> bytes:
    table = [[_text(r, c) for c, _ in COLUMNS] for r in rows]
    lines = [title, f"{len(rows)} rows, {len(summary)} students; present in "
             + "; ".join(f"{sid} {s['present']}/{s['sessions']}" for sid, s in list(summary.items())[:20])
             + (" ..." if len(summary) > 20 else "")]
    return bytes(table_pdf(lines, list(COLUMNS), table, title, line_size=9, gap=3).output())
