"""The hub's cross-room report as a PDF (one row per student and session: the record's status, a corrected one
with what recognition saw, as on a box's report), with the box reports' fonts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..attendance.reports import table_pdf
from ..common.timeutil import iso

COLUMNS = (("student_id", 26), ("name", 40), ("status", 68), ("seen_s", 12), ("device_id", 26),
           ("session", 36), ("section", 20), ("started_at", 40))


def _status(row: dict[str, Any]) -> str:
    text = str(row["attendance_status"]).replace("_", " ")
    if row["corrected"]:
        return f"{text} (corrected; seen: {str(row['recognised_status']).replace('_', ' ')})"
    return text


def _text(row: dict[str, Any], column: str) -> str:
    if column == "status":
        return _status(row)
    value = row[column]
    if value is None:
        return ""
    if isinstance(value, datetime):
        return iso(value).replace("T", " ")
    return f"{value:.0f}" if isinstance(value, float) else str(value)


def _percent(s: dict[str, Any]) -> str:
    return "-" if s["percent"] is None else f"{s['percent']:g}%"


def render_pdf(title: str, rows: list[dict[str, Any]], summary: dict[str, dict[str, Any]]) -> bytes:
    """The summary line: attended of the sessions that count (excused ones do not) per student."""
    table = [[_text(r, c) for c, _ in COLUMNS] for r in rows]
    lines = [title, f"{len(rows)} rows, {len(summary)} students; attended (excused not counted): "
             + "; ".join(f"{sid} {s['present']}/{s['counted']} {_percent(s)}" for sid, s in list(summary.items())[:20])
             + (" ..." if len(summary) > 20 else "")]
    return bytes(table_pdf(lines, list(COLUMNS), table, title, line_size=9, gap=3).output())
