"""The client side of downloads (attendancectl, the tests): fetch a file piece by piece into `<out>.part`, resume
from that file's length after an interruption, check the whole file's sha256, then rename it into place. A file
that changed on the box while it was fetched (its sha256 differs between pieces) is fetched again from the start."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..common.hashing import file_sha256
from .client import ApiClient


class DownloadCorrupt(Exception):
    pass


def download(client: ApiClient, request: dict[str, Any], out: Path,
             on_progress: Callable[[int, int], None] | None = None, timeout: float = 60.0) -> dict[str, Any]:
    """Downloads what `request` names (`kind` and its fields, see docs/mqtt-api.md `download`) to `out`; returns
    the last answer without its content (name, bytes, sha256, content_type)."""
    part = out.with_name(out.name + ".part")
    for _attempt in range(2):
        last = _fetch(client, request, part, on_progress, timeout)
        if file_sha256(part) == last["sha256"]:
            part.replace(out)
            return last
        part.unlink()  # resumed onto bytes of an older version: once more from the start
    raise DownloadCorrupt(f"{out.name}: the assembled file does not match the box's sha256")


def _fetch(client: ApiClient, request: dict[str, Any], part: Path, on_progress: Callable[[int, int], None] | None,
           timeout: float) -> dict[str, Any]:
    offset = part.stat().st_size if part.exists() else 0
    expected: str | None = None
    with open(part, "r+b" if part.exists() else "wb") as f:
        while True:
            data = client.request("download", {**request, "offset": offset}, timeout=timeout)["data"]
            if expected is None:
                expected = data["sha256"]
            elif data["sha256"] != expected:  # the file changed on the box: start over
                expected, offset = data["sha256"], 0
                f.truncate(0)
                continue
            f.seek(offset)
            f.write(base64.b64decode(data["content"]))
            offset += int(data["length"])
            if on_progress:
                on_progress(offset, int(data["bytes"]))
            if data["eof"]:
                f.truncate(offset)
                return {k: v for k, v in data.items() if k != "content"}
