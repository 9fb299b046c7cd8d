"""Record exports (docs/mqtt-api.md "Exports"): `export` writes a session's or a section's record under the
reports directory, in Moodle's mark-sessions format, a flat CSV or JSON, and answers its name, size and sha256;
the file itself is fetched with `download` of kind `record`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...attendance.record_export import export_record
from ...contract import record_api
from ..registry import command

if TYPE_CHECKING:
    from ..services import Services


@command("export", record_api.ExportRequest, lane="slow")
def export(ctx: Services, r: record_api.ExportRequest) -> dict[str, Any]:
    """Runs on the slow-request worker: a range of sessions takes seconds to read and format."""
    w = export_record(ctx.store, ctx.cfg, r)
    return {"name": w.name, "bytes": w.bytes, "sha256": w.sha256, "format": r.format, "sessions": w.sessions,
            "rows": w.rows, "drafts_skipped": w.drafts_skipped}
