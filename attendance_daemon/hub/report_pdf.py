"""The hub's cross-room report as a PDF (one row per student and session), with the box reports' fonts."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from ..reports import _fit, set_up_fonts
from ..timeutil import iso

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
    from fpdf import FPDF

    table = [[_text(r, c) for c, _ in COLUMNS] for r in rows]
    lines = [title, f"{len(rows)} rows, {len(summary)} students; present in "
             + "; ".join(f"{sid} {s['present']}/{s['sessions']}" for sid, s in list(summary.items())[:20])
             + (" ..." if len(summary) > 20 else "")]
    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_auto_page_break(True, margin=12)
    pdf.add_page()
    family, clean, note = set_up_fonts(pdf, "\n".join([*lines, *(c for row in table for c in row)]), title)
    if note:
        lines.append(note)

    def cell(width: float, height: float, text: str, border: Literal[0, 1] = 0) -> None:
        pdf.current_font_is_set_on_page = False  # see reports._pdf: fpdf2 2.8 and fallback fonts
        pdf.cell(width, height, _fit(pdf, clean(text), width) if width else clean(text), border=border)

    pdf.set_font(family, "B", 14)
    cell(0, 10, lines[0])
    pdf.ln()
    pdf.set_font(family, size=9)
    for line in lines[1:]:
        cell(0, 6, line)
        pdf.ln()
    pdf.ln(3)
    pdf.set_font(family, "B", 9)
    for name, width in COLUMNS:
        cell(width, 7, name, border=1)
    pdf.ln()
    pdf.set_font(family, size=9)
    for row in table:
        for (_, width), value in zip(COLUMNS, row, strict=True):
            cell(width, 6, value, border=1)
        pdf.ln()
    return bytes(pdf.output())
