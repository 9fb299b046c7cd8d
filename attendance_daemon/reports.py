"""Attendance reports as CSV (for spreadsheets) and PDF (for printing), written under the data dir."""

from __future__ import annotations

import csv
from pathlib import Path

from .api import Results
from .names import safe_file_stem
from .paths import ensure_inside

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def write_report(results: Results, folder: Path, fmt: str) -> Path:
    """`<folder>/<session name>.<fmt>`; a name from before the naming rule gets a safe file name instead."""
    folder.mkdir(parents=True, exist_ok=True)
    path = ensure_inside(folder, folder / f"{safe_file_stem(results.name, results.session_id)}.{fmt}",
                         "reports directory")
    tmp = path.with_suffix(path.suffix + ".tmp")
    if fmt == "csv":
        _csv(results, tmp)
    elif fmt == "pdf":
        _pdf(results, tmp)
    else:
        raise ValueError(f"format: unknown report format '{fmt}'")
    tmp.replace(path)  # atomic: a reader never sees half a report
    return path


def _rows(results: Results) -> list[list[str]]:
    rows = [[p.student_id, p.name, "present", f"{p.first_seen_s:.1f}", f"{p.last_seen_s:.1f}", f"{p.seen_s:.1f}"]
            for p in results.present]
    rows += [[a.student_id, a.name, "absent", "", "", ""] for a in results.absent]
    return rows


HEADER = ["student_id", "name", "status", "first_seen_s", "last_seen_s", "seen_s"]


def text_cell(value: str) -> str:
    """OWASP's CSV-injection advice: a text cell that a spreadsheet would read as a formula gets a leading
    `'`, so `=HYPERLINK(...)` in a student's name is shown, never evaluated."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _csv(results: Results, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["# session", *map(text_cell, (results.name, results.section)), results.status,
                    results.started_at, results.ended_at or "", f"present {results.present_count}/{results.total}",
                    f"unknowns {results.unknowns}"])
        w.writerow(HEADER)
        # the first two columns are the ids and names clients chose; the rest are our numbers
        w.writerows([[text_cell(row[0]), text_cell(row[1]), *row[2:]] for row in _rows(results)])


def _pdf(results: Results, path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(0, 10, _latin1(f"Attendance: {results.name}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    for line in (
        f"Section {results.section}   Status {results.status}   Source {results.source}",
        f"Started {results.started_at}   Ended {results.ended_at or '-'}",
        f"Present {results.present_count} of {results.total}   Unknown faces {results.unknowns}",
    ):
        pdf.cell(0, 6, _latin1(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    widths = [25, 60, 20, 25, 25, 25]
    pdf.set_font("Helvetica", "B", 9)
    for w, h in zip(widths, HEADER, strict=True):
        pdf.cell(w, 7, h, border=1)
    pdf.ln()
    pdf.set_font("Helvetica", size=9)
    for row in _rows(results):
        for w, value in zip(widths, row, strict=True):
            pdf.cell(w, 6, _latin1(value), border=1)
        pdf.ln()
    pdf.output(str(path))


def _latin1(text: str) -> str:
    """The core PDF fonts are Latin-1; other characters are replaced rather than failing the report."""
    return text.encode("latin-1", "replace").decode("latin-1")
