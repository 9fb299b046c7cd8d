"""Resumable, verified uploads into the media library (docs/mqtt-api.md "Uploads").

A client begins an upload (name, size, sha256), then publishes raw chunks at their offsets, in any order, re-sends
harmless. Each chunk is written at its offset into `<uploads>/<id>.part`; what is durable is only what was written
before an fsync, and only that is ever reported as received (`<id>.json`, replaced atomically after the fsync), so a
crash at any point loses at most chunks the client is then told to send again. When every byte is in, the file is
hashed and probed; only a file with the announced sha256 that the decoder opens becomes media (moved into the media
directory, then listed in the store). Anything else ends `failed`, its partial file removed.

Threads: `begin`/`status` run on the request dispatcher; `write` and `flush` on the upload writer; `verify` on the
verifier. The lock guards the in-memory table only: no file I/O happens under it."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..common.errors import InsufficientStorage, NotFound, PayloadTooLarge, TooManyRequests
from ..common.hashing import file_sha256
from ..common.timeutil import now_iso
from ..config import MediaConfig
from ..store import MediaRow, Store
from . import ranges
from .probe import VideoFacts, probe_video

log = logging.getLogger(__name__)

UploadState = Literal["receiving", "verifying", "complete", "failed"]
MAX_REFUSED = 16  # the last refused chunks kept in an upload's status


@dataclass
class Upload:
    id: str
    name: str
    bytes: int
    sha256: str
    created_at: str
    touched: float  # wall-clock seconds of the last chunk or state change (expiry counts from it)
    state: UploadState = "receiving"
    durable: list[ranges.Range] = field(default_factory=list)
    error: str | None = None
    media: dict[str, Any] | None = None
    target: str | None = None  # the media name chosen while verifying (recovery finds a moved file by it)
    refused: list[dict[str, Any]] = field(default_factory=list)
    pending: list[ranges.Range] = field(default_factory=list)  # written, not yet fsynced: not reported
    fd: int | None = None

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"upload_id": self.id, "name": self.name, "bytes": self.bytes,
                               "received": ranges.covered(self.durable),
                               "missing": ranges.missing(self.durable, self.bytes), "state": self.state}
        if self.error:
            out["error"] = self.error
        if self.refused:
            out["refused"] = list(self.refused)
        if self.media is not None:
            out["media"] = self.media
        return out

    def saved(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "bytes": self.bytes, "sha256": self.sha256,
                "created_at": self.created_at, "touched": self.touched, "state": self.state,
                "durable": self.durable, "error": self.error, "media": self.media, "target": self.target}


def media_payload(row: MediaRow) -> dict[str, Any]:
    """A library entry as the API sends it (contract.media_api.MediaEntry: the row's fields, as they are)."""
    return asdict(row)


class Uploads:
    def __init__(self, cfg: MediaConfig, uploads_dir: Path, media_dir: Path, store: Store,
                 on_status: Callable[[dict[str, Any]], None], on_verify: Callable[[str], None],
                 probe: Callable[[Path], VideoFacts | str] = probe_video) -> None:
        self.cfg, self._dir, self._media, self._store = cfg, uploads_dir, media_dir, store
        self._on_status, self._on_verify, self._probe = on_status, on_verify, probe
        self._lock = threading.Lock()
        self._uploads: dict[str, Upload] = {}
        self._dirty: set[str] = set()

    # ---- files --------------------------------------------------------------------------------------------

    def _part(self, upload_id: str) -> Path:
        return self._dir / f"{upload_id}.part"

    def _state_file(self, upload_id: str) -> Path:
        return self._dir / f"{upload_id}.json"

    def _save(self, up: Upload) -> None:
        """The upload's state, replaced atomically (write, fsync, rename, fsync the folder)."""
        tmp = self._dir / f"{up.id}.json.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(up.saved(), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._state_file(up.id))
        _fsync_dir(self._dir)

    def _discard_files(self, up: Upload) -> None:
        if up.fd is not None:
            os.close(up.fd)
            up.fd = None
        self._part(up.id).unlink(missing_ok=True)

    # ---- start-up -----------------------------------------------------------------------------------------

    def recover(self) -> None:
        """Uploads a stop or crash interrupted: receiving ones resume, verifying ones are verified again, files
        without a state are removed (their upload never began durably)."""
        known = set()
        for path in sorted(self._dir.glob("*.json")):
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
                up = Upload(id=saved["id"], name=saved["name"], bytes=int(saved["bytes"]), sha256=saved["sha256"],
                            created_at=saved["created_at"], touched=float(saved["touched"]), state=saved["state"],
                            durable=[(int(a), int(b)) for a, b in saved["durable"]], error=saved.get("error"),
                            media=saved.get("media"), target=saved.get("target"))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("upload state %s unreadable, removed: %s", path.name, exc)
                path.unlink(missing_ok=True)
                continue
            known.add(up.id)
            self._uploads[up.id] = up
            if up.state == "verifying":
                self._on_verify(up.id)
        for leftover in self._dir.iterdir():
            stem = leftover.name.split(".", 1)[0]
            if stem not in known and leftover.is_file():
                leftover.unlink(missing_ok=True)

    # ---- requests (dispatcher) ------------------------------------------------------------------------------

    def begin(self, name: str, size: int, sha256: str) -> dict[str, Any]:
        sha256 = sha256.lower()
        if size > self.cfg.max_upload_bytes:
            raise PayloadTooLarge(f"bytes: {size}; at most {self.cfg.max_upload_bytes} (media.max_upload_bytes)")
        held = self._store.media_with_hash(sha256)
        if held is not None and held.bytes == size and (self._media / held.name).is_file():
            return {"upload_id": None, "name": name, "chunk_bytes": self.cfg.chunk_bytes, "bytes": size,
                    "received": size,
                    "missing": [], "state": "complete", "media": media_payload(held)}
        with self._lock:
            for up in self._uploads.values():
                if up.sha256 == sha256 and up.bytes == size and up.state in ("receiving", "verifying"):
                    return {**up.status(), "chunk_bytes": self.cfg.chunk_bytes}
            active = [u for u in self._uploads.values() if u.state in ("receiving", "verifying")]
            if len(active) >= self.cfg.max_uploads:
                raise TooManyRequests(f"uploads: {len(active)} are in progress; at most {self.cfg.max_uploads} "
                                      "(media.max_uploads): finish or wait for one")
            owed = sum(u.bytes - ranges.covered(u.durable) for u in active)
        free = shutil.disk_usage(self._dir).free
        if free < size + owed + self.cfg.disk_reserve_bytes:
            raise InsufficientStorage(f"bytes: {size} do not fit: {free} bytes free, of which "
                                      f"{owed + self.cfg.disk_reserve_bytes} are kept for uploads in progress and "
                                      "sessions (media.disk_reserve_bytes)")
        up = Upload(id=secrets.token_hex(8), name=name, bytes=size, sha256=sha256, created_at=now_iso(),
                    touched=time.time())
        fd = os.open(self._part(up.id), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o640)
        os.close(fd)
        self._save(up)  # durable before it is answered: a crash now resumes it
        with self._lock:
            self._uploads[up.id] = up
        return {**up.status(), "chunk_bytes": self.cfg.chunk_bytes}

    def status(self, upload_id: str) -> dict[str, Any]:
        with self._lock:
            up = self._uploads.get(upload_id)
            if up is None:
                raise NotFound(f"upload_id: no upload '{upload_id[:64]}' (unknown, or expired)")
            return up.status()

    def in_progress(self, name: str) -> bool:
        with self._lock:
            return any(u.target == name for u in self._uploads.values() if u.state == "verifying")

    # ---- chunks (the writer thread) ----------------------------------------------------------------------------

    def write(self, upload_id: str, offset_text: str, data: bytes) -> None:
        """One chunk: written at its offset (not yet durable), or refused into the upload's status."""
        with self._lock:
            up = self._uploads.get(upload_id)
            if up is None or up.state != "receiving":
                return  # unknown, expired or already complete: a late re-send, nothing to do
        problem = _chunk_problem(offset_text, len(data), up.bytes, self.cfg.chunk_bytes)
        if problem:
            with self._lock:
                up.refused = [*up.refused, {"offset": offset_text[:24], "error": problem}][-MAX_REFUSED:]
                self._dirty.add(up.id)
            return
        offset = int(offset_text)
        if up.fd is None:
            up.fd = os.open(self._part(up.id), os.O_RDWR)
        os.pwrite(up.fd, data, offset)
        with self._lock:
            up.pending.append((offset, offset + len(data)))
            up.touched = time.time()
            self._dirty.add(up.id)

    def flush(self) -> None:
        """Makes what was written durable, records it, publishes each changed upload's status; an upload whose
        every byte is in goes to verification. Called by the writer at most ~4 times a second."""
        with self._lock:
            dirty = [self._uploads[i] for i in self._dirty if i in self._uploads]
            self._dirty.clear()
        for up in dirty:
            if up.state != "receiving":
                continue
            if up.fd is not None and up.pending:
                os.fsync(up.fd)
            with self._lock:
                up.durable = ranges.merge(up.durable, up.pending)
                up.pending = []
                done = ranges.covered(up.durable) == up.bytes
                if done:
                    up.state = "verifying"
            if done and up.fd is not None:
                os.close(up.fd)
                up.fd = None
            self._save(up)
            self._on_status(up.status())
            if done:
                self._on_verify(up.id)

    # ---- verification (the verifier thread) --------------------------------------------------------------------

    def verify(self, upload_id: str) -> None:
        with self._lock:
            up = self._uploads.get(upload_id)
        if up is None or up.state != "verifying":
            return
        part = self._part(up.id)
        if not part.exists() and up.target and (self._media / up.target).is_file():
            part = self._media / up.target  # moved before a crash: check it where it is
        elif not part.exists():
            self._fail(up, "the received file is gone (removed while verifying)")
            return
        digest = file_sha256(part)
        if digest != up.sha256:
            self._fail(up, f"sha256: the received bytes hash to {digest}, not {up.sha256}")
            return
        facts = self._probe(part)
        if isinstance(facts, str):
            self._fail(up, facts)
            return
        if part.parent == self._dir:
            up.target = self._free_name(up.name)
            self._save(up)  # the name is known before the move: recovery finds the file there
            _move(part, self._media / up.target)
        assert up.target is not None
        row = MediaRow(name=up.target, bytes=up.bytes, sha256=up.sha256, duration_s=facts.duration_s,
                       frames=facts.frames, fps=facts.fps, width=facts.width, height=facts.height,
                       uploaded_at=now_iso())
        self._store.add_media(row)
        with self._lock:
            up.state, up.media, up.touched = "complete", media_payload(row), time.time()
        self._save(up)
        self._on_status(up.status())
        log.info("upload %s complete: %s, %d bytes, %d frames", up.id, row.name, row.bytes, row.frames)

    def _free_name(self, name: str) -> str:
        """`name`, or `name-2`, `name-3` ... when the media directory already holds a file of that name."""
        stem, dot, suffix = name.rpartition(".")
        candidate, n = name, 1
        while (self._media / candidate).exists():
            n += 1
            candidate = f"{stem}-{n}{dot}{suffix}"
        return candidate

    def _fail(self, up: Upload, reason: str) -> None:
        log.warning("upload %s (%s) failed: %s", up.id, up.name, reason)
        self._discard_files(up)
        with self._lock:
            up.state, up.error, up.touched = "failed", reason, time.time()
        self._save(up)
        self._on_status(up.status())

    # ---- housekeeping --------------------------------------------------------------------------------------------

    def expire(self, now: float | None = None) -> int:
        """Removes uploads untouched for `media.upload_expiry_h` (partial file and state); returns how many.
        Called on the writer thread, which owns the open files."""
        now = time.time() if now is None else now
        limit = self.cfg.upload_expiry_h * 3600
        with self._lock:
            old = [u for u in self._uploads.values() if now - u.touched > limit and u.state != "verifying"]
            for up in old:
                del self._uploads[up.id]
        for up in old:
            self._discard_files(up)
            self._state_file(up.id).unlink(missing_ok=True)
        return len(old)

    def close(self) -> None:
        with self._lock:
            ups = list(self._uploads.values())
        for up in ups:
            if up.fd is not None:
                with contextlib.suppress(OSError):
                    os.close(up.fd)
                up.fd = None


def _chunk_problem(offset_text: str, length: int, size: int, chunk_bytes: int) -> str | None:
    if not offset_text.isascii() or not offset_text.isdigit() or len(offset_text) > 19:
        return "offset: the topic's last level must be the chunk's byte offset (a decimal number)"
    offset = int(offset_text)
    if length == 0:
        return "empty chunk"
    if length > chunk_bytes:
        return f"chunk of {length} bytes; at most chunk_bytes = {chunk_bytes}"
    if offset + length > size:
        return f"chunk [{offset}, {offset + length}) ends past the upload's {size} bytes"
    return None


def _move(src: Path, dest: Path) -> None:
    """Into the media directory, atomically where it is on the same file system (else copied, synced, renamed)."""
    try:
        os.replace(src, dest)
    except OSError as exc:
        if exc.errno != 18:  # EXDEV: another file system
            raise
        tmp = dest.with_name(f".{dest.name}.incoming")
        shutil.copyfile(src, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
        src.unlink()
    _fsync_dir(dest.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

