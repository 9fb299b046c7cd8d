"""Media requests: begin or look at an upload (its chunks arrive on `R/upload/<id>/<offset>`, see
daemon/upload_worker.py), list the media library, delete a video no session is using."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...common.errors import Conflict
from ...common.paths import resolve_inside
from ...contract import api, media_api
from ...media.uploads import media_payload
from ..registry import command

if TYPE_CHECKING:
    from ..services import Services


@command("upload_begin", media_api.UploadBegin)
def upload_begin(ctx: Services, r: media_api.UploadBegin) -> dict[str, Any]:
    return ctx.uploads.begin(r.name, r.bytes, r.sha256)


@command("upload_status", media_api.UploadStatusRequest)
def upload_status(ctx: Services, r: media_api.UploadStatusRequest) -> dict[str, Any]:
    return ctx.uploads.status(r.upload_id)


@command("media", api.Empty)
def media(ctx: Services, r: api.Empty) -> list[dict[str, Any]]:
    return [media_payload(m) for m in ctx.store.media()]


@command("delete_media", media_api.MediaRequest)
def delete_media(ctx: Services, r: media_api.MediaRequest) -> dict[str, Any]:
    row = ctx.store.media_named(r.name)
    path = ctx.cfg.paths.media / row.name
    _refuse_in_use(ctx, path)
    ctx.store.remove_media(row.name)  # first: a crash between the two leaves a file, never a listed ghost
    path.unlink(missing_ok=True)
    return {"name": row.name, "deleted": True}


def _refuse_in_use(ctx: Services, path: Path) -> None:
    """409 (with the session's id) while the running session reads the file."""
    session = ctx.sessions.sm.state().session
    if session is None or not session.source or session.source.startswith("camera:"):
        return
    if resolve_inside(ctx.cfg.paths.media, session.source, "path", "media directory") == path.resolve():
        raise Conflict(f"name: '{path.name}' is being processed by session '{session.name}'; stop it first",
                       data={"session_id": session.id})

