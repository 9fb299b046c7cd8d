"""Attendance reports as CSV (for spreadsheets) and PDF (for printing), written under the data dir."""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from ..common.names import safe_file_stem
from ..common.paths import ensure_inside
from ..common.timeutil import local_iso, parse_iso, zone_or_system
from ..contract.api import Results
from .pdffonts import MISSING_FONT_NOTE, plan_fonts, text_shaping_available

log = logging.getLogger(__name__)

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


def _when(iso_time: str) -> str:
    """`2026-11-26T09:05:00+01:00` -> `09:05:00` (the report's header gives the date and zone)."""
    return iso_time[11:19]


def _rows(results: Results) -> list[list[str]]:
    """One row per roster student: ids and names first (client text), then our facts. `status` is the record's
    (a teacher's correction applied); what recognition saw and whether it was corrected follow at the end."""
    rows = [[p.student_id, p.name, p.status, "yes" if p.late else "no", "yes" if p.left_early else "no",
             *(["", "", "", ""] if p.recognised_status == "absent" else  # never seen: a correction's, no times
               [p.arrived_at, p.left_at, _seconds(p.first_seen_s), _seconds(p.last_seen_s)]),
             f"{p.seen_s:.1f}", "; ".join(f"{i.start}/{i.end}" for i in p.intervals),
             "; ".join(f"{i.start_s:.1f}-{i.end_s:.1f}" for i in p.intervals), p.recognised_status,
             "yes" if p.corrected else "no"]
            for p in results.present]
    rows += [[a.student_id, a.name, a.status, "", "", "", "", "", "", "", "", "", a.recognised_status,
              "yes" if a.corrected else "no"] for a in results.absent]
    return rows


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


HEADER = ["student_id", "name", "status", "late", "left_early", "arrived_at", "left_at", "first_seen_s",
          "last_seen_s", "seen_s", "intervals", "intervals_s", "session", "section", "session_started_at",
          "recognised_status", "corrected", "record"]


def text_cell(value: str) -> str:
    """OWASP's CSV-injection advice: a text cell that a spreadsheet would read as a formula gets a leading
    `'`, so `=HYPERLINK(...)` in a student's name is shown, never evaluated."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _csv(results: Results, path: Path) -> None:
    """UTF-8 with a BOM (Excel then reads the names right) and the header as the first line (no metadata line
    before it: Excel, LibreOffice and pandas take the first line as the header). The session is named in the
    last columns of every row instead."""
    session = [text_cell(results.name), text_cell(results.section), _session_start(results)]
    with path.open("w", newline="", encoding="utf-8-sig") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        # the first two columns are the ids and names clients chose; the rest are our numbers and times
        w.writerows([[text_cell(row[0]), text_cell(row[1]), *row[2:12], *session, *row[12:], results.record]
                     for row in _rows(results)])


def _local(results: Results, utc_time: str) -> str:
    """A UTC time of the results in their zone (the zone of `arrived_at`), like `arrived_at`."""
    return local_iso(parse_iso(utc_time), zone_or_system(results.timezone))


def _session_start(results: Results) -> str:
    return _local(results, results.started_at)


PDF_HEADER = ["ID", "Name", "Status", "Arrived", "Left", "Seen s", "Presence (wall clock)"]
PDF_WIDTHS = [24, 50, 76, 18, 18, 14, 77]  # A4 landscape: 277 mm between the margins


def _pdf(results: Results, path: Path) -> None:
    started = _session_start(results)
    lines = [
        f"Attendance: {results.name}",
        f"Section {results.section}   Status {results.status}   Source {results.source}   "
        f"Box {results.device_id or '-'}",
        f"Started {started.replace('T', ' ')} ({results.timezone})   Ended "
        f"{_ended(results)}   Late after {results.late_after_s:g} s, left early "
        f"{results.left_early_before_s:g} s before the end",
        f"Present {results.present_count} of {results.total}   Late {sum(p.late for p in results.present)}   "
        f"Left early {sum(p.left_early for p in results.present)}   Excused {results.counts.get('excused', 0)}   "
        f"Unknown faces {results.unknowns}",
        f"Record {results.record}" + (f" (finalised {_local(results, results.finalized_at)[:16].replace('T', ' ')})"
                                      if results.finalized_at else "")
        + f"   Corrected {sum(p.corrected for p in results.present) + sum(a.corrected for a in results.absent)}",
    ]
    if results.mode == "mp4":
        lines.append("Times are the session's start plus the position in the video file.")
    rows = [[r[0], r[1], _status_text(r), _when(r[5]) if r[5] else "", _when(r[6]) if r[6] else "", r[9],
             ", ".join(f"{_when(a)}-{_when(b)}" for a, b in (i.split("/") for i in r[10].split("; ") if i))]
            for r in _rows(results)]
    pdf = table_pdf(lines, list(zip(PDF_HEADER, PDF_WIDTHS, strict=True)), rows, results.name, line_size=10, gap=4)
    pdf.output(str(path))


def table_pdf(lines: list[str], columns: list[tuple[str, float]], rows: list[list[str]], what: str,
              line_size: int, gap: float) -> Any:
    """An A4 landscape page set: a bold title (`lines[0]`), the other lines, then a bordered table whose cells are
    cut to their column's width; the fonts print every name (see `set_up_fonts`). Box and hub reports."""
    from fpdf import FPDF

    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_auto_page_break(True, margin=12)
    pdf.add_page()
    family, clean, note = set_up_fonts(pdf, "\n".join([*lines, *(c for row in rows for c in row)]), what)
    lines = [*lines, note] if note else lines

    def cell(width: float, height: float, text: str, border: Literal[0, 1] = 0) -> None:
        # fpdf2 2.8 forgets to re-select the main font after a cell that used a fallback font inside q/Q;
        # asking it to select the font again for every cell keeps each cell's text in its own font.
        pdf.current_font_is_set_on_page = False
        pdf.cell(width, height, clean(text), border=border)

    pdf.set_font(family, "B", 14)
    cell(0, 10, lines[0])
    pdf.ln()
    pdf.set_font(family, size=line_size)
    for line in lines[1:]:
        cell(0, 6, line)
        pdf.ln()
    pdf.ln(gap)
    pdf.set_font(family, "B", 9)
    for name, width in columns:
        cell(width, 7, name, border=1)
    pdf.ln()
    pdf.set_font(family, size=9)
    for row in rows:
        for (_, width), value in zip(columns, row, strict=True):
            cell(width, 6, _fit(pdf, clean(value), width), border=1)
        pdf.ln()
    return pdf


def set_up_fonts(pdf: object, text: str, what: str) -> tuple[str, Callable[[str], str], str | None]:
    """Embeds the installed fonts that cover `text` (fallbacks, shaping): (family, text cleaner, a note to print
    when no Unicode font is installed). Shared with the hub's cross-room reports."""
    from fpdf import FPDF

    assert isinstance(pdf, FPDF)
    plan = plan_fonts(text)
    if plan.main is None:
        log.warning("report %s: %s", what, MISSING_FONT_NOTE)
        return "Helvetica", _latin1, MISSING_FONT_NOTE
    pdf.add_font("main", fname=str(plan.main))
    pdf.add_font("main", style="B", fname=str(plan.bold or plan.main))
    names = []
    for i, fallback in enumerate(plan.fallbacks):
        pdf.add_font(f"fallback{i}", fname=str(fallback))
        names.append(f"fallback{i}")
    if names:
        pdf.set_fallback_fonts(names, exact_match=False)
    if text_shaping_available():
        pdf.set_text_shaping(True)
    if plan.uncovered:
        log.warning("report %s: no installed font has %r", what, plan.uncovered[:40])
    return "main", _same, None


def _ended(results: Results) -> str:
    return "-" if results.ended_at is None else _local(results, results.ended_at).replace("T", " ")


def _status_text(row: list[str]) -> str:
    """The record's status; a corrected one says what recognition saw (`excused (corrected; seen: absent)`)."""
    if row[2] in ("absent", "excused") or row[13] == "yes":  # a correction sets one status
        text = row[2].replace("_", " ")
    else:
        text = ", ".join(["present", *(["late"] if row[3] == "yes" else []),
                          *(["left early"] if row[4] == "yes" else [])])
    return f"{text} (corrected; seen: {row[12].replace('_', ' ')})" if row[13] == "yes" else text


def _fit(pdf: object, text: str, width: float) -> str:
    """Cut a cell's text with `…` so it stays inside its column (presence lists can be long)."""
    from fpdf import FPDF

    assert isinstance(pdf, FPDF)
    if pdf.get_string_width(text) <= width - 2:
        return text
    while text and pdf.get_string_width(text + "…") > width - 2:
        text = text[:-1]
    return text + "…"


def _same(text: str) -> str:
    return text


def _latin1(text: str) -> str:
    """The core PDF fonts are Latin-1; other characters are replaced rather than failing the report."""
    return text.encode("latin-1", "replace").decode("latin-1")
