"""Client side of the file transfers (attendancectl, scripts, tests): photos into a request, a fetched
file's content back to bytes with its checksum verified."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any


def upload_name(path: Path, index: int) -> str:
    """A name the daemon accepts (its id rule) made from a local file name; unique by `index`."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", path.name).strip(".-_")[:56] or "image"
    return f"{index}-{stem}"


def upload_images(paths: list[Path]) -> list[dict[str, str]]:
    """`images_b64` of an `enroll` request."""
    return [{"name": upload_name(p, i), "data": base64.b64encode(p.read_bytes()).decode("ascii")}
            for i, p in enumerate(paths)]


def content_bytes(data: dict[str, Any]) -> bytes:
    """The file in a fetch answer (`content` + `encoding`), checked against its `sha256` and `bytes`."""
    content = data.get("content")
    if not isinstance(content, str):
        raise ValueError("the answer carries no content")
    raw = content.encode("utf-8") if data.get("encoding") == "utf-8" else base64.b64decode(content, validate=True)
    if hashlib.sha256(raw).hexdigest() != data.get("sha256") or len(raw) != data.get("bytes"):
        raise ValueError("the content does not match its sha256 / bytes: transfer damaged")
    return raw


def save_content(data: dict[str, Any], out: Path) -> int:
    raw = content_bytes(data)
    out.write_bytes(raw)
    return len(raw)
