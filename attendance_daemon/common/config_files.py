"""Reading the TOML config files of the daemon and the hub: the file, a key file it names, and its relative paths,
each with an error that names the file or the key."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from .errors import InvalidRequest


def read_toml(path: Path) -> dict[str, Any]:
    """A config file's tables (daemon and hub): a missing file or bad TOML is a clear error naming the file."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InvalidRequest(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidRequest(f"config {path}: invalid TOML: {exc}") from exc


def resolve_against(base: Path, p: Path) -> Path:
    """A config path relative to the config file's folder."""
    return p if p.is_absolute() else (base / p).resolve()


def read_key_file(path: Path | None, field: str) -> bytes | None:
    """A roster signing secret (box and hub); an empty file is an error: it would silently turn the HMAC off."""
    if path is None:
        return None
    key = path.read_bytes().strip()
    if not key:
        raise InvalidRequest(f"{field}: {path} is empty")
    return key
