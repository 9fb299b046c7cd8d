"""Client-supplied paths are confined to one directory: anything resolving outside it is a 403; a path the OS
cannot even consider (NUL byte, name too long) is a 400 that never echoes the box's own directories."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import Forbidden, InvalidRequest


def resolve_inside(root: Path, path: str, field: str, what: str) -> Path:
    """`path` relative to `root`, or absolute inside it; symlinks and '..' are resolved before the check."""
    if "\x00" in path:
        raise InvalidRequest(f"{field}: must not contain NUL characters")
    base = root.resolve()
    candidate = Path(path)
    try:
        full = (candidate if candidate.is_absolute() else base / candidate).resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # ENAMETOOLONG, symlink loops
        raise InvalidRequest(f"{field}: not a usable path ({_reason(exc)})") from exc
    if full != base and base not in full.parents:
        raise Forbidden(f"{field}: '{path}' is outside the {what}")
    return full


def ensure_inside(root: Path, path: Path, what: str = "data directory") -> Path:
    """A path the daemon is about to write: refused unless it resolves inside `root` (defence in depth: the
    names it is built from are already validated)."""
    base, full = root.resolve(), path.resolve()
    if full == base or base not in full.parents:
        raise Forbidden(f"refusing to write outside the {what}: '{path.name}'")
    return path


def require_file(path: Path, field: str, shown: str) -> Path:
    """`path` must be an existing file: 404 when it is missing, 400 when the OS refuses the name.
    `shown` is what the client sent (never the resolved absolute path)."""
    from .errors import MediaError, MediaNotFound

    try:
        if path.is_file():
            return path
    except (OSError, ValueError) as exc:
        raise InvalidRequest(f"{field}: not a usable path ({_reason(exc)})") from exc
    if path.exists():
        raise MediaError(f"{field}: not a regular file: {shown}")
    raise MediaNotFound(f"{field}: no such video file: {shown}")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno)
    return "invalid name"
