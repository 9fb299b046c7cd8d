"""Session requests: start from a file or a camera (or with Home Assistant's choices), pause, resume, stop,
status.

Starts run on a lane of their own: opening a camera can take the whole `daemon.open_timeout_s`, and status,
pause and stop from every dashboard must be answered meanwhile."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...common.errors import InvalidRequest, NotFound
from ...contract import api, ha_api
from ...sessions.cameras import resolve_camera
from ...sessions.planning import plan_mp4, plan_webcam
from ...store import Store
from ..registry import command

if TYPE_CHECKING:
    from ..services import Services


@command("start_mp4", api.StartMp4, lane="starts")
def start_mp4(ctx: Services, r: api.StartMp4) -> api.State:
    ctx.sessions.ensure_idle()
    path = r.path if r.path is not None else ctx.store.media_named(str(r.media)).name  # 404 unless listed
    plan = plan_mp4(ctx.cfg, ctx.store, path, r.section, r.session_name, r.export)
    plan.started_by = r.client
    return ctx.sessions.start(plan)


@command("start_webcam", api.StartWebcam, lane="starts")
def start_webcam(ctx: Services, r: api.StartWebcam) -> api.State:
    ctx.sessions.ensure_idle()
    camera = resolve_camera(ctx.cfg, r.camera)
    plan = plan_webcam(ctx.cfg, ctx.store, r.section, r.session_name, r.export, camera, r.duration_s)
    plan.started_by = r.client
    return ctx.sessions.start(plan)


@command("start_selected", ha_api.StartSelected, lane="starts")
def start_selected(ctx: Services, r: ha_api.StartSelected) -> api.State:
    """A start with the choices of Home Assistant's controls (R/ha/state): what its Start buttons send."""
    ctx.sessions.ensure_idle()
    chosen = ctx.controls.choices()
    if chosen.section is None:
        raise InvalidRequest("section: no section chosen (Home Assistant's Section select, R/ha/section/set)")
    name = _free_name(ctx.store, chosen.session_name) if chosen.session_name else None
    if r.source == "video":
        if chosen.video is None:
            raise InvalidRequest("video: no video chosen (Home Assistant's Video select, R/ha/video/set)")
        try:
            path = ctx.store.media_named(chosen.video).name
        except NotFound:
            raise NotFound(f"video: '{chosen.video}' is no longer in the media library") from None
        plan = plan_mp4(ctx.cfg, ctx.store, path, chosen.section, name, chosen.export)
    else:
        camera = resolve_camera(ctx.cfg, None)
        plan = plan_webcam(ctx.cfg, ctx.store, chosen.section, name, chosen.export, camera, None)
    plan.started_by = r.client
    return ctx.sessions.start(plan)


def _free_name(store: Store, base: str) -> str:
    """The chosen session name, or with `-2`, `-3` ... when taken (a button cannot ask again with another)."""
    name, n = base, 2
    while store.session_name_taken(name):
        suffix = f"-{n}"
        name, n = base[:64 - len(suffix)] + suffix, n + 1
    return name


@command("pause", api.SessionGuard)
def pause(ctx: Services, r: api.SessionGuard) -> api.State:
    return ctx.sessions.pause(r.session_id)


@command("resume", api.SessionGuard)
def resume(ctx: Services, r: api.SessionGuard) -> api.State:
    return ctx.sessions.resume(r.session_id)


@command("stop", api.SessionGuard)
def stop(ctx: Services, r: api.SessionGuard) -> api.State:
    return ctx.sessions.stop(r.session_id)


@command("status", api.Empty)
def status(ctx: Services, r: api.Empty) -> api.State:
    return ctx.sessions.state()
