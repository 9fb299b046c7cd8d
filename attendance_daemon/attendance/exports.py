"""Record exports a school's systems import, from Results (the box's, or the payloads the hub stored): Moodle
mod_attendance's "mark sessions" CSV, and a flat CSV and JSON with one row per student per session. No I/O:
Results in, bytes out.

Moodle's import (mod/attendance/import/marksessions.php) reads a CSV with a header row, maps one column to a
Moodle user field (idnumber here: the student id) and one to `status`, whose cells must be one of the session's
status acronyms exactly (case and spaces count); it marks one session per upload, so a date range in that
format is a ZIP with one CSV per session."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import tzinfo
from typing import Any

from ..common.names import is_safe_id, safe_file_stem
from ..common.timeutil import local_iso, parse_iso
from ..contract.api import AttendanceStatus, Results
from .reports import text_cell

MOODLE_HEADER = ["idnumber", "status"]  # Moodle preselects `idnumber` as the user field and `status` by name
FLAT_HEADER = ["section", "session", "session_id", "date", "started_at", "student_id", "name", "status",
               "recognised_status", "corrected", "first_seen", "minutes_present", "record", "device_id"]


@dataclass(frozen=True)
class RecordRow:
    """One student in one session's record."""

    section: str
    session: str
    session_id: str
    date: str  # YYYY-MM-DD in the box's zone
    started_at: str  # ISO 8601 in the box's zone
    student_id: str
    name: str
    status: AttendanceStatus
    recognised_status: AttendanceStatus
    corrected: bool
    first_seen: str | None  # ISO 8601 wall clock, null when the camera never saw them
    minutes_present: float
    record: str  # live / draft / final
    device_id: str | None


def rows_of(results: Results, zone: tzinfo) -> list[RecordRow]:
    """The record of one session, present first (by arrival) then the rest of the roster."""
    started = local_iso(parse_iso(results.started_at), zone)
    common: dict[str, Any] = {"section": results.section, "session": results.name, "session_id": results.session_id,
              "date": started[:10], "started_at": started, "record": results.record, "device_id": results.device_id}
    rows = [RecordRow(**common, student_id=p.student_id, name=p.name, status=p.status,
                      recognised_status=p.recognised_status, corrected=p.corrected,
                      first_seen=None if p.recognised_status == "absent" else p.arrived_at,
                      minutes_present=round(p.seen_s / 60, 1)) for p in results.present]
    rows += [RecordRow(**common, student_id=a.student_id, name=a.name, status=a.status,
                       recognised_status=a.recognised_status, corrected=a.corrected, first_seen=None,
                       minutes_present=0.0) for a in results.absent]
    return rows


def moodle_csv(rows: Iterable[RecordRow], acronyms: Mapping[AttendanceStatus, str]) -> bytes:
    """One session's marks: `idnumber,status` (UTF-8, comma, a header row). Only safe ids are written (letters,
    digits, `.`, `_`, `-`, starting with a letter or digit), so no cell needs quoting or formula escaping, either
    of which would break Moodle's match; another id (an older box's, a hostile payload at the hub) is left out:
    Moodle could not match it anyway."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(MOODLE_HEADER)
    w.writerows([r.student_id, acronyms[r.status]] for r in rows if is_safe_id(r.student_id))
    return out.getvalue().encode()


def moodle_zip(rows: Sequence[RecordRow], acronyms: Mapping[AttendanceStatus, str]) -> bytes:
    """A CSV per session (`<date>_<session>.csv`, oldest first) for a date range: Moodle marks one session per
    upload. Two sessions of one name on one date (two rooms, a name given twice) get their session id's start
    too: a ZIP's names must differ, else unzipping keeps only one."""
    by_session: dict[str, list[RecordRow]] = {}
    for r in rows:
        by_session.setdefault(r.session_id, []).append(r)
    buf = io.BytesIO()
    names: set[str] = set()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for session_rows in sorted(by_session.values(), key=lambda x: x[0].started_at):
            first = session_rows[0]
            name = f"{first.date}_{safe_file_stem(first.session, first.session_id)}"
            if name in names:
                name = f"{name}_{safe_file_stem(first.session_id, first.session_id)[:12]}"
            names.add(name)
            z.writestr(f"{name}.csv", moodle_csv(session_rows, acronyms))
    return buf.getvalue()


def flat_csv(rows: Iterable[RecordRow]) -> bytes:
    """UTF-8 with a BOM (Excel reads the names right), ISO 8601 times; text cells a spreadsheet would take for a
    formula are escaped with a leading `'`."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(FLAT_HEADER)
    for r in rows:
        # every text cell escaped: at the hub each comes from a box's payload, which only the model's types bound
        w.writerow([text_cell(r.section), text_cell(r.session), text_cell(r.session_id), text_cell(r.date),
                    text_cell(r.started_at), text_cell(r.student_id), text_cell(r.name), r.status,
                    r.recognised_status, "yes" if r.corrected else "no", text_cell(r.first_seen or ""),
                    f"{r.minutes_present:.1f}", text_cell(r.record), text_cell(r.device_id or "")])
    return out.getvalue().encode("utf-8-sig")


def flat_json(rows: Iterable[RecordRow]) -> bytes:
    """The same rows as a JSON array of objects (UTF-8, field names as in the CSV header)."""
    return json.dumps([asdict(r) for r in rows], ensure_ascii=False, separators=(",", ":")).encode()
