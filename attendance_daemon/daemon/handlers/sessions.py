"""Session requests: start from a file or a camera, pause, resume, stop, status.

Starts run on the slow-request worker: opening a camera can take the whole `daemon.open_timeout_s`, and status,
pause and stop from every dashboard must be answered meanwhile."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...contract import api
from ...sessions.cameras import resolve_camera
from ...sessions.planning import plan_mp4, plan_webcam
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
