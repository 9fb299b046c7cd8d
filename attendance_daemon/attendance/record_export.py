"""Record exports on the box (docs/mqtt-api.md "Exports"): the sessions an `export` request selects (one session,
or a section's over a date range), their Results as rows in one of exports.py's formats, written whole under the
reports directory with a bounded name that a `download` of kind `record` then fetches."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from pathlib import Path

from ..common.errors import Conflict, InvalidRequest, NotFound
from ..common.names import safe_file_stem
from ..common.timeutil import iso, parse_iso
from ..config import Config
from ..contract.record_api import ExportRequest
from ..store import SessionRow, Store
from .exports import RecordRow, flat_csv, flat_json, moodle_csv, moodle_zip, rows_of
from .history import COUNTED
from .results import ACTIVE, build_results

# Sessions in one export (a school year of daily lessons is about 200); a longer range is refused, not cut.
MAX_EXPORT_SESSIONS = 1000
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Bound:
    """One end of a range: the UTC time the store compares `started_at` with, and its form in a file name."""

    utc: str
    label: str


@dataclass(frozen=True)
class Range:
    """A section's sessions that started from `since` to `until` (both included)."""

    section: str
    since: Bound
    until: Bound


@dataclass(frozen=True)
class Written:
    name: str  # the file's name in the reports directory (what a `record` download asks for)
    bytes: int
    sha256: str
    sessions: int
    rows: int
    drafts_skipped: int


def section_stem(section: str) -> str:
    """A section's part of its range exports' names (`records-<section>-<since>-<until>...`)."""
    return safe_file_stem(section, hashlib.sha256(section.encode()).hexdigest())


def bound(value: str, field: str, zone: tzinfo, end: bool) -> Bound:
    """A date alone is a whole day in the box's zone (an `until` date includes its day); a time is ISO 8601 (UTC
    without an offset, as in `sessions`). Anything else is a 400 naming the field."""
    try:
        if _DATE.fullmatch(value):
            day = datetime.fromisoformat(value).date()
            start = datetime.combine(day + timedelta(days=1) if end else day, time(), zone)
            return Bound(iso(start - timedelta(seconds=1) if end else start), day.strftime("%Y%m%d"))
        at = iso(parse_iso(value))
    except (ValueError, OverflowError) as exc:  # OverflowError: a day or an offset beyond the year 1 or 9999
        raise InvalidRequest(f"{field}: not an ISO 8601 date or time: '{value}'") from exc
    return Bound(at, at.replace("-", "").replace(":", ""))


def select(r: ExportRequest, zone: tzinfo) -> str | Range:
    """The one place an export's selection is checked: a session id, or a section with `since` and `until`."""
    if r.session_id is not None:
        for field in ("section", "since", "until"):
            if getattr(r, field) is not None:
                raise InvalidRequest(f"{field}: give session_id (one session) or section, since and until "
                                     "(a date range), not both")
        return r.session_id
    if r.section is None:
        raise InvalidRequest("session_id: required (or section, since and until for a date range)")
    if r.since is None or r.until is None:
        missing = "since" if r.since is None else "until"
        raise InvalidRequest(f"{missing}: required with section (ISO 8601 dates or times, e.g. 2026-12-01)")
    since, until = bound(r.since, "since", zone, end=False), bound(r.until, "until", zone, end=True)
    if until.utc < since.utc:
        raise InvalidRequest(f"until: '{r.until}' is before since '{r.since}'")
    return Range(r.section, since, until)


def export_record(store: Store, cfg: Config, r: ExportRequest) -> Written:
    """Selects, formats and writes the export; 404 when there is nothing to export, 409 for a single session
    that is running or (without include_drafts) a draft."""
    zone = cfg.attendance.zone()[1]
    chosen = select(r, zone)
    erasures = store.erasures
    if isinstance(chosen, Range):
        sessions, drafts = _range(store, chosen, r.include_drafts)
        stem = f"{section_stem(chosen.section)}-{chosen.since.label}-{chosen.until.label}"
        stem += "-drafts" if r.include_drafts else ""
    else:
        sessions, drafts = [_one(store, chosen, r.include_drafts)], 0
        stem = safe_file_stem(sessions[0].name, sessions[0].id)
    rows = [row for s in sessions for row in rows_of(build_results(store, s, cfg), zone)]
    data, ext = _formatted(r.format, rows, isinstance(chosen, Range), cfg)
    prefix = "records" if isinstance(chosen, Range) else "record"  # a session's name never matches a range's
    name = f"{prefix}-{stem}{'-moodle' if r.format == 'moodle' else ''}.{ext}"
    _write(cfg.paths.reports, name, data)
    if store.erasures != erasures:  # a forget or a session's deletion ran meanwhile: this file may show it
        (cfg.paths.reports / name).unlink(missing_ok=True)
        field = "section" if isinstance(chosen, Range) else "session_id"
        raise Conflict(f"{field}: a student or a session was erased while this export was made; export again")
    return Written(name, len(data), hashlib.sha256(data).hexdigest(), len(sessions), len(rows), drafts)


def _one(store: Store, session_id: str, include_drafts: bool) -> SessionRow:
    row = store.get_session(session_id)
    if row.status in ACTIVE:
        raise Conflict(f"session_id: session '{row.name}' is still {row.status}: its record is live; export it "
                       "once it has ended")
    if row.record != "final" and not include_drafts:
        raise Conflict(f"session_id: the record of session '{row.name}' is a draft: finalize it (request/finalize) "
                       "or export it with include_drafts")
    return row


def _range(store: Store, chosen: Range, include_drafts: bool) -> tuple[list[SessionRow], int]:
    """The section's ended sessions in the range (those attendance over time counts), oldest first, and how many
    drafts were left out."""
    found, _ = store.section_history(chosen.section, COUNTED, chosen.since.utc, chosen.until.utc,
                                     MAX_EXPORT_SESSIONS + 1)
    if not found and not store.section_exists(chosen.section):
        raise NotFound(f"section: unknown section '{chosen.section}'")
    if len(found) > MAX_EXPORT_SESSIONS:
        raise InvalidRequest(f"since: more than {MAX_EXPORT_SESSIONS} sessions of section '{chosen.section}' in "
                             "the range; export a shorter one")
    kept = [s for s in found if include_drafts or s.record == "final"]
    drafts = len(found) - len(kept)
    if not kept:
        hint = f" ({drafts} draft{'s' if drafts != 1 else ''}: finalize them or set include_drafts)" if drafts else ""
        raise NotFound(f"since: no {'ended' if include_drafts else 'final'} session of section '{chosen.section}' "
                       f"from {chosen.since.utc} to {chosen.until.utc}{hint}")
    return kept, drafts


def _formatted(fmt: str, rows: list[RecordRow], is_range: bool, cfg: Config) -> tuple[bytes, str]:
    """The file's bytes and extension: Moodle marks one session per upload, so a range in its format is a ZIP of
    one CSV per session (even when the range holds one)."""
    acronyms = cfg.attendance.moodle_acronyms
    if fmt == "moodle":
        return (moodle_zip(rows, acronyms), "zip") if is_range else (moodle_csv(rows, acronyms), "csv")
    if fmt == "csv":
        return flat_csv(rows), "csv"
    return flat_json(rows), "json"


def _write(folder: Path, name: str, data: bytes) -> None:
    """Whole or not at all: a download never reads a half-written export."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".record-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, folder / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
