"""The sha256 of a file, read in blocks: uploads are checked, downloads announced and clients verify with it."""

from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK = 4 * 1024 * 1024


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            h.update(block)
    return h.hexdigest()
