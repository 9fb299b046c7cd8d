"""The threads behind uploads: paho's thread only queues a chunk (bounded in bytes; beyond, it is dropped and the
client sends it again as missing), the writer writes chunks and, at most ~4 times a second, makes them durable and
publishes each upload's status; the verifier hashes and probes complete uploads, so a 2 GB hash never holds up
another upload's chunks, nor any request."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from ..config import Config
from ..media.uploads import Uploads
from ..mqtt.link import Incoming
from ..store import Store
from .publisher import Publisher, encode

log = logging.getLogger(__name__)

FLUSH_S = 0.25  # status at most ~4 per second per upload; the fsync cadence
EXPIRE_EVERY_S = 60.0
MAX_QUEUED_BYTES = 64 * 1024 * 1024  # chunks waiting for the writer (beyond: dropped, re-sent as missing)
DROP_LOG_S = 10.0


class UploadWorker:
    def __init__(self, cfg: Config, store: Store, publisher: Publisher, session_running: Callable[[], bool]) -> None:
        self._publisher = publisher
        self._session_running = session_running
        self._session_rate = cfg.media.session_upload_mb_s * 1e6  # bytes/s while a session runs (0: no limit)
        self._last_drop_log = 0.0
        self.uploads = Uploads(cfg.media, cfg.paths.uploads, cfg.paths.media, store, self.publish_status,
                               self.verify_later)
        self._chunks: queue.Queue[tuple[str, str, bytes] | None] = queue.Queue()
        self._verify: queue.Queue[str | None] = queue.Queue()
        self._queued = 0
        self._queued_lock = threading.Lock()
        self.dropped = 0
        self.writer = threading.Thread(target=self._write, name="upload-writer", daemon=True)
        self.verifier = threading.Thread(target=self._run_verifier, name="upload-verifier", daemon=True)

    def publish_status(self, status: dict[str, Any]) -> None:
        self._publisher.link.publish(self._publisher.topics.upload_status(status["upload_id"]), encode(status))

    def verify_later(self, upload_id: str) -> None:
        self._verify.put(upload_id)

    def offer(self, incoming: Incoming) -> None:
        """paho's thread: `R/upload/<upload_id>/<offset>` -> the writer's queue, never blocking."""
        parts = incoming.topic.rsplit("/", 2)
        if len(parts) != 3 or parts[2] == "status" or incoming.retain:
            return  # our own status (a v3.1.1 broker echoes it), or a retained chunk replayed: not a chunk
        size = len(incoming.payload)
        with self._queued_lock:
            if self._queued + size > MAX_QUEUED_BYTES:
                self.dropped += 1
                if time.monotonic() - self._last_drop_log > DROP_LOG_S:  # one line per 10 s, not per chunk
                    self._last_drop_log = time.monotonic()
                    log.warning("upload chunks dropped (%d so far): %d bytes are waiting for the disk; a client "
                                "sends them again as missing", self.dropped, self._queued)
                return
            self._queued += size
        self._chunks.put((parts[1][:64], parts[2], incoming.payload))

    def _write(self) -> None:
        next_flush = time.monotonic() + FLUSH_S
        next_expiry = time.monotonic()
        while True:
            chunk: tuple[str, str, bytes] | None
            try:
                chunk = self._chunks.get(timeout=max(0.0, next_flush - time.monotonic()))
                if chunk is None:  # stop
                    self.uploads.flush()
                    return
            except queue.Empty:
                chunk = None
            if chunk is not None:
                upload_id, offset, data = chunk
                with self._queued_lock:
                    self._queued -= len(data)
                try:
                    self.uploads.write(upload_id, offset, data)
                except OSError as exc:  # a full or failing disk: the chunk is not received; the client re-sends
                    log.error("upload %s: chunk at %s not written: %s", upload_id, offset, exc)
                self._pace(len(data))
            now = time.monotonic()
            if now >= next_flush:
                next_flush = now + FLUSH_S
                try:
                    self.uploads.flush()
                    if now >= next_expiry:
                        next_expiry = now + EXPIRE_EVERY_S
                        if n := self.uploads.expire():
                            log.info("%d abandoned uploads expired", n)
                except OSError as exc:
                    log.error("uploads: %s", exc)

    def _pace(self, written: int) -> None:
        """While a session runs, holds the writer to `media.session_upload_mb_s`; the client's window (it sends
        only so far beyond what the box reports durable) then slows the sender too, so the frame loop keeps its
        share of the CPU and the interpreter."""
        if self._session_rate <= 0 or not self._session_running():
            return
        time.sleep(written / self._session_rate)

    def _run_verifier(self) -> None:
        while True:
            upload_id = self._verify.get()
            if upload_id is None:
                return
            try:
                self.uploads.verify(upload_id)
            except Exception:  # one upload's fault (a disk error) must not end the thread
                log.exception("verifying upload %s failed; carrying on", upload_id)

    def start(self) -> None:
        """Resumes what a stop or crash interrupted (re-verifies), then runs the threads."""
        self.uploads.recover()
        self.writer.start()
        self.verifier.start()

    def stop(self) -> None:
        self._chunks.put(None)
        self.writer.join(10)
        self._verify.put(None)
        self.verifier.join(30)
        self.uploads.close()
