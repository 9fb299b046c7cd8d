"""Validating a start request into a SessionPlan: paths confined, section known, name chosen and safe, camera
resolved, before any state changes (so a refused request leaves nothing behind)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..common.names import check_id, is_safe_id
from ..common.paths import ensure_inside, require_file, resolve_inside
from ..common.timeutil import compact, utcnow
from ..config import Config
from ..store import Store
from .cameras import CameraChoice


@dataclass
class SessionPlan:
    """A validated request: everything needed to start, checked before any state changes."""

    mode: Literal["mp4", "webcam"]
    section: str
    name: str
    source_label: str
    export: bool
    video_path: Path | None = None
    camera: CameraChoice | None = None
    duration_s: float | None = None
    lesson: str | None = None  # a timetable lesson's key and start (UTC): set by the scheduler only
    lesson_start: str | None = None
    started_by: str | None = None  # the request's `client`, or `timetable`


def default_session_name(store: Store, section: str) -> str:
    """`<section>-<UTC time>`; a section id from before the naming rule is made safe first."""
    prefix = section if is_safe_id(section) else (re.sub(r"[^A-Za-z0-9._-]+", "-", section).strip("._-") or "s")
    base = f"{prefix[:40]}-{compact(utcnow())}"
    if not base[0].isalnum():
        base = "s" + base
    name, n = base, 2
    while store.session_name_taken(name):
        name, n = f"{base}-{n}", n + 1
    return name


def session_name(cfg: Config, store: Store, section: str, requested: str | None) -> str:
    """The session's name, checked against the id rule; the files named after it stay in the data dir."""
    name = check_id(requested, "session_name") if requested is not None else default_session_name(store, section)
    p = cfg.paths
    ensure_inside(p.exports, p.exports / f"{name}.mp4")
    ensure_inside(p.unknowns, p.unknowns / name / "crop.jpg")
    ensure_inside(p.reports, p.reports / f"{name}.csv")
    return name


def plan_mp4(cfg: Config, store: Store, path: str, section: str, name: str | None, export: bool,
             allow_outside_media: bool = False) -> SessionPlan:
    """Validates an MP4 request (403 outside the media dir unless the local CLI allows it; 404 if missing)."""
    if name is not None:
        check_id(name, "session_name")
    if allow_outside_media:
        full = Path(path).resolve()
    else:
        full = resolve_inside(cfg.paths.media, path, "path", "media directory")
    require_file(full, "path", path)
    store.require_section(section)
    return SessionPlan("mp4", section, session_name(cfg, store, section, name), path, export, video_path=full)


def plan_webcam(cfg: Config, store: Store, section: str, name: str | None, export: bool, camera: CameraChoice,
                duration_s: float | None) -> SessionPlan:
    if name is not None:
        check_id(name, "session_name")
    store.require_section(section)
    return SessionPlan("webcam", section, session_name(cfg, store, section, name), f"camera:{camera.label}", export,
                       camera=camera, duration_s=duration_s)
