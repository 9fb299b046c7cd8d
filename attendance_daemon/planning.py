"""Validating a start request into a SessionPlan: paths confined, section known, name chosen, before
any state changes (so a refused request leaves nothing behind)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .config import Config
from .errors import MediaError
from .paths import resolve_inside
from .store import Store
from .timeutil import compact, utcnow


@dataclass
class SessionPlan:
    """A validated request: everything needed to start, checked before any state changes."""

    mode: Literal["mp4", "webcam"]
    section: str
    name: str
    source_label: str
    export: bool
    video_path: Path | None = None
    camera: str | None = None
    duration_s: float | None = None


def default_session_name(store: Store, section: str) -> str:
    base = f"{section}-{compact(utcnow())}"
    name, n = base, 2
    while store.session_name_taken(name):
        name, n = f"{base}-{n}", n + 1
    return name


def plan_mp4(cfg: Config, store: Store, path: str, section: str, name: str | None, export: bool,
             allow_outside_media: bool = False) -> SessionPlan:
    """Validates an MP4 request (403 outside the media dir unless the local CLI allows it)."""
    if allow_outside_media:
        full = Path(path).resolve()
    else:
        full = resolve_inside(cfg.paths.media, path, "path", "media directory")
    if not full.is_file():
        raise MediaError(f"path: no such video file: {path}")
    store.require_section(section)
    return SessionPlan("mp4", section, name or default_session_name(store, section), path, export, video_path=full)


def plan_webcam(cfg: Config, store: Store, section: str, name: str | None, export: bool, camera: str | int | None,
                duration_s: float | None) -> SessionPlan:
    store.require_section(section)
    cam = str(camera) if camera is not None else cfg.daemon.default_camera
    return SessionPlan("webcam", section, name or default_session_name(store, section), f"camera:{cam}", export,
                       camera=cam, duration_s=duration_s)
