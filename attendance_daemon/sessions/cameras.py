"""Which camera a session opens: cameras are declared in the config by name; a request picks one by name or
by its index in the declared list. Raw devices, paths and URLs from a request are refused unless the config
says `daemon.allow_request_cameras = true` (otherwise any MQTT client could make the box fetch any URL it can
reach and republish the picture as the retained snapshot).

A camera's spec may hold credentials (`rtsp://user:pass@...`): only its label (the declared name, or the spec
with `user:pass@` redacted) is ever published or logged."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..common.errors import Forbidden, NotFound, redact_credentials
from ..common.paths import resolve_inside
from ..config import Config

_STREAM = re.compile(r"^(rtsp|rtsps|rtmp|http|https)://", re.IGNORECASE)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")

redact = redact_credentials


@dataclass(frozen=True)
class CameraChoice:
    spec: str  # what OpenCV opens; may hold credentials: never published or logged
    label: str  # what is published and logged

    def __str__(self) -> str:
        return self.label


def declared_names(cfg: Config) -> list[str]:
    return list(cfg.cameras)


def default_camera(cfg: Config) -> CameraChoice:
    """The `[cameras]` entry named (or numbered) by `daemon.default_camera`; without a `[cameras]` table,
    `daemon.default_camera` itself is the camera (index, device or URL), as before cameras had names."""
    want = cfg.daemon.default_camera
    if not cfg.cameras:
        return CameraChoice(want, redact(want))
    picked = _declared(cfg, want)
    assert picked is not None, "config validation guarantees a declared default camera"
    return picked


def _declared(cfg: Config, requested: str | int) -> CameraChoice | None:
    names = list(cfg.cameras)
    if isinstance(requested, str) and requested in cfg.cameras:
        return CameraChoice(cfg.cameras[requested], requested)
    text = str(requested).strip()
    if names and text.isdigit() and int(text) < len(names):
        name = names[int(text)]
        return CameraChoice(cfg.cameras[name], name)
    return None


def resolve_camera(cfg: Config, requested: str | int | None) -> CameraChoice:
    """The camera a start request asks for (None: the default one). 403 for a raw device, path or URL unless
    allowed, 404 for an unknown name."""
    if requested is None:
        return default_camera(cfg)
    picked = _declared(cfg, requested)
    if picked is not None:
        return picked
    if not cfg.cameras and str(requested).strip() in ("0", "default"):
        return default_camera(cfg)  # the only camera there is, when none are declared
    if cfg.daemon.allow_request_cameras:
        return _raw(cfg.paths.media, requested)
    shown = redact(str(requested))[:80]
    declared = ", ".join(cfg.cameras) if cfg.cameras else "only the default camera (0)"
    if isinstance(requested, str) and _PLAIN_NAME.fullmatch(requested) and not requested.isdigit():
        raise NotFound(f"camera: unknown camera '{shown}' (declared: {declared})")
    raise Forbidden(f"camera: '{shown}' is not a declared camera (declared: {declared}); devices, paths and URLs "
                    "in requests need daemon.allow_request_cameras = true")


def _raw(media: Path, requested: str | int) -> CameraChoice:
    """Allowed raw specs: a device index, a /dev path, a stream URL or a recorded file inside the media dir."""
    text = str(requested).strip()
    if text.isdigit() or _STREAM.match(text) or (text.startswith("/dev/") and ".." not in text):
        return CameraChoice(text, redact(text))
    try:
        full = resolve_inside(media, text, "camera", "media directory")
    except Forbidden as exc:
        raise Forbidden(f"camera: '{redact(text)[:80]}' is neither a camera index, a /dev path, a stream URL, "
                        "nor a file inside the media directory") from exc
    return CameraChoice(str(full), redact(text))
