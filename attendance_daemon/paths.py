"""Client-supplied paths are confined to one directory: anything resolving outside it is a 403."""

from __future__ import annotations

from pathlib import Path

from .errors import Forbidden


def resolve_inside(root: Path, path: str, field: str, what: str) -> Path:
    """`path` relative to `root`, or absolute inside it; symlinks and '..' are resolved before the check."""
    base = root.resolve()
    candidate = Path(path)
    full = (candidate if candidate.is_absolute() else base / candidate).resolve()
    if full != base and base not in full.parents:
        raise Forbidden(f"{field}: '{path}' is outside the {what}")
    return full
