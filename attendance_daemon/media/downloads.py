"""Files off the box in pieces (docs/mqtt-api.md "Downloads"): any file the box lets a client fetch is read at an
offset, at most MAX_DOWNLOAD_CHUNK bytes per answer, with the whole file's size and sha256 in every answer, so a
client resumes where it stopped and checks what it assembled. Memory on the box: one chunk."""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from pathlib import Path

from ..common.errors import InvalidRequest, NotFound
from ..common.hashing import file_sha256
from ..contract.media_api import MAX_DOWNLOAD_CHUNK
from .transfer import CONTENT_TYPES

CONTENT_TYPES_MORE = {".mp4": "video/mp4", ".mov": "video/quicktime", ".mkv": "video/x-matroska"}


@dataclass(frozen=True)
class Piece:
    name: str
    bytes: int
    sha256: str
    offset: int
    length: int
    content_type: str
    content: str  # base64
    eof: bool


class HashCache:
    """sha256 of files by (path, size, mtime): an export of hundreds of MB is hashed once, not per piece."""

    def __init__(self, entries: int = 64) -> None:
        self._entries = entries
        self._known: dict[tuple[str, int, int], str] = {}
        self._lock = threading.Lock()

    def sha256(self, path: Path, known: str | None = None) -> str:
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        with self._lock:
            if key in self._known:
                return self._known[key]
        digest = known or file_sha256(path)
        with self._lock:
            if len(self._known) >= self._entries:
                self._known.pop(next(iter(self._known)))
            self._known[key] = digest
        return digest


def piece(path: Path, name: str, offset: int, length: int, cache: HashCache, sha256: str | None = None) -> Piece:
    """`length` bytes (at most MAX_DOWNLOAD_CHUNK) of `path` from `offset`; 404 when the file is gone, 400 when
    `offset` is past its end (an offset equal to the size answers an empty last piece)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise NotFound(f"{name}: the file is no longer on the box (deleted or expired)") from None
    if offset > size:
        raise InvalidRequest(f"offset: {offset} is past the end of the file ({size} bytes)")
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(min(length, MAX_DOWNLOAD_CHUNK))
    suffix = path.suffix.lower()
    return Piece(name=name, bytes=size, sha256=cache.sha256(path, sha256), offset=offset, length=len(data),
                 content_type=CONTENT_TYPES.get(suffix) or CONTENT_TYPES_MORE.get(suffix, "application/octet-stream"),
                 content=base64.b64encode(data).decode("ascii"), eof=offset + len(data) >= size)
