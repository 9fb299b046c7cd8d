"""The hub's record export (`export`): a section's sessions in a time window as the files a school's systems
import (Moodle mod_attendance's mark-sessions CSVs, one per session in a ZIP; a flat CSV; JSON), made from the
payloads the boxes sent with the box's own formatter (attendance/exports.py) and answered inline as a file,
bounded before anything is read. Registered in the registry of requests.py (hub/__init__.py imports it)."""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Mapping
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import StrictBool, ValidationError

from ..attendance import exports
from ..common.errors import InvalidRequest, PayloadTooLarge
from ..common.names import LookupText, ShortText, safe_file_stem
from ..common.timeutil import iso_field, zone_named
from ..contract import api
from ..contract.api import AttendanceStatus
from ..media import transfer
from .fleet_requests import DeviceId
from .record import ResultsIn, with_record
from .requests import HubContext, hub_command

log = logging.getLogger(__name__)

MAX_EXPORT_SESSIONS = 2000  # sessions in one export (a section's school year is some hundreds of lessons)
MAX_EXPORT_READ_BYTES = 64 * 1024 * 1024  # of stored payloads read for one export
MAX_EXPORT_BYTES = transfer.MAX_INLINE_BYTES  # the file, in one answer (base64 makes the message about 4/3 of it)
CONTENT_TYPES = {"moodle": ("zip", "application/zip"), "csv": ("csv", "text/csv"), "json": ("json", "application/json")}


class HubExportRequest(api.Request):
    section: LookupText
    since: ShortText
    until: ShortText
    format: Literal["moodle", "csv", "json"] = "csv"
    device_id: DeviceId | None = None
    include_drafts: StrictBool = False


@hub_command("export", HubExportRequest)
def export(ctx: HubContext, r: HubExportRequest) -> dict[str, Any]:
    """The section's sessions that started from `since` to `until` (final records only unless
    `include_drafts`; none in quarantine), every student with their effective status."""
    since, until = iso_field(r.since, "since"), iso_field(r.until, "until")
    assert since is not None and until is not None
    if until < since:
        raise InvalidRequest(f"until: {until} is before since ({since})")
    sessions, size, stored = ctx.store.record_payloads(r.section, since, until, r.device_id, r.include_drafts,
                                                       MAX_EXPORT_SESSIONS, MAX_EXPORT_READ_BYTES)
    if sessions > MAX_EXPORT_SESSIONS or size > MAX_EXPORT_READ_BYTES:
        raise PayloadTooLarge(f"since, until: {sessions} sessions ({size} bytes of results) in this window; one "
                              f"export takes at most {MAX_EXPORT_SESSIONS} sessions and {MAX_EXPORT_READ_BYTES} "
                              "bytes: export a shorter window")
    rows: list[exports.RecordRow] = []
    skipped = []
    for s in stored:
        try:
            results = ResultsIn.model_validate(with_record(s["payload"]))
        except ValidationError as exc:  # stored by an older hub under an older contract: said, not hidden
            log.warning("export: session %s of %s not read: %s", s["session_id"], s["device_id"],
                        str(exc).splitlines()[0][:200])
            skipped.append(s["session_id"])
            continue
        rows += exports.rows_of(results, zone_named(results.timezone) or ZoneInfo("UTC"))
    content = _render(r.format, rows, ctx.moodle_acronyms)
    if len(content) > MAX_EXPORT_BYTES:
        raise PayloadTooLarge(f"since, until: the {r.format} file of this window is {len(content)} bytes, more than "
                              f"the {MAX_EXPORT_BYTES} bytes one answer may carry: export a shorter window")
    ext, content_type = CONTENT_TYPES[r.format]
    name = f"{safe_file_stem(r.section, 'section')}_{since[:10]}_{until[:10]}{'_moodle' * (r.format == 'moodle')}"
    return {"name": f"{name}.{ext}", "format": r.format, "content_type": content_type, "encoding": "base64",
            "content": base64.b64encode(content).decode("ascii"), "bytes": len(content),
            "sha256": hashlib.sha256(content).hexdigest(), "sessions": len(stored) - len(skipped),
            "rows": len(rows), "skipped": skipped}


def _render(fmt: str, rows: list[exports.RecordRow], acronyms: Mapping[AttendanceStatus, str]) -> bytes:
    if fmt == "moodle":
        return exports.moodle_zip(rows, acronyms)
    return exports.flat_csv(rows) if fmt == "csv" else exports.flat_json(rows)
