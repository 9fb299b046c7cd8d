"""The client side of uploads (attendancectl, the tests, the benchmark): hash the file, begin (or resume) the
upload, publish the missing ranges as raw chunks with a bounded number in flight, then ask what the box holds
durably and send again what it still misses, until it reports the upload complete or failed.

Memory stays bounded: one chunk read at a time, at most WINDOW chunks queued in paho. A broker restart or a
dropped connection is survived: paho reconnects, and the next status says what to send again."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from ..common.hashing import file_sha256
from .client import ApiClient, ApiError

__all__ = ["UPLOAD_LEAVES", "UploadFailed", "chunk_spans", "file_sha256", "upload"]

UPLOAD_LEAVES = ("availability", "response/+", "upload/+/status")  # never `#`: the chunks would echo back
WINDOW = 16  # chunks in flight to the broker at once
AHEAD_BYTES = 32 * 1024 * 1024  # bytes sent beyond what the box reports durable (its queue holds 64 MiB)
STALL_S = 15.0  # no durable progress for this long while sending: ask the box what is missing
SETTLE_S = 2.0  # no progress for this long after sending everything: ask again what is missing
Span = tuple[int, int]


class UploadFailed(Exception):
    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__(f"upload failed: {status.get('error') or status.get('state')}")
        self.status = status


def chunk_spans(missing: list[list[int]], chunk_bytes: int) -> list[Span]:
    """The missing ranges cut into chunks of at most `chunk_bytes`."""
    return [(a, min(a + chunk_bytes, end)) for start, end in missing for a in range(start, end, chunk_bytes)]


def upload(client: ApiClient, path: Path, name: str | None = None, sha256: str | None = None,
           on_progress: Callable[[int, int], None] | None = None,
           order: Callable[[list[Span]], list[Span]] | None = None, timeout: float = 3600.0) -> dict[str, Any]:
    """Uploads `path` (resuming what the box already holds); returns the media entry. `order` may reorder or
    repeat the chunks of a pass (the tests shuffle and re-send). Raises UploadFailed or ApiError."""
    size = path.stat().st_size
    sha256 = sha256 or file_sha256(path)
    status = client.request("upload_begin", {"name": name or path.name, "bytes": size, "sha256": sha256})["data"]
    chunk_bytes = int(status["chunk_bytes"])
    deadline = time.monotonic() + timeout
    with open(path, "rb") as f:
        while True:
            if status["state"] == "complete":
                if on_progress:
                    on_progress(size, size)
                media: dict[str, Any] = status["media"]
                return media
            if status["state"] == "failed":
                raise UploadFailed(status)
            if time.monotonic() > deadline:
                raise TimeoutError(f"upload of {path.name} not complete within {timeout:.0f} s")
            if status["state"] == "receiving" and status["missing"]:
                spans = chunk_spans(status["missing"], chunk_bytes)
                _send(client, status["upload_id"], f, order(spans) if order else spans,
                      status["received"], size, on_progress)
            status = _settled_status(client, status["upload_id"])


def _send(client: ApiClient, upload_id: str, f: Any, spans: list[Span], received: int, size: int,
          on_progress: Callable[[int, int], None] | None) -> None:
    """Publishes the spans at QoS 1, at most WINDOW chunks in flight to the broker and at most AHEAD_BYTES beyond
    what the box reports durable (its status messages): flow control from end to end, so the box's queue never
    overflows and a box that paces uploads (during a session) paces this loop. Stops early (the caller asks what
    is missing) when the connection is lost or the box stops reporting progress."""
    in_flight: deque[mqtt.MQTTMessageInfo] = deque()
    sent = received
    published = 0
    for start, end in spans:
        if not _room_for(client, upload_id, received, published):
            return
        published += end - start
        f.seek(start)
        info = client.client.publish(f"{client.topics.root}/upload/{upload_id}/{start}", f.read(end - start), qos=1)
        in_flight.append(info)
        sent = min(size, sent + end - start)
        if on_progress:
            on_progress(sent, size)
        if len(in_flight) >= WINDOW and not _delivered(in_flight.popleft()):
            return
    while in_flight:
        if not _delivered(in_flight.popleft()):
            return


def _room_for(client: ApiClient, upload_id: str, base: int, published: int) -> bool:
    """Waits until the box holds durably all but AHEAD_BYTES of what this pass published (False: no progress for
    STALL_S, or the upload left `receiving`: the caller asks the box what to do)."""
    leaf = f"upload/{upload_id}/status"

    def caught_up(status: Any) -> bool:
        return bool(status["state"] != "receiving" or published - (status["received"] - base) <= AHEAD_BYTES)

    if published <= AHEAD_BYTES:
        return True
    try:
        status = client.wait_for(leaf, caught_up, timeout=STALL_S)
    except TimeoutError:
        return False
    return bool(status["state"] == "receiving")


def _delivered(info: mqtt.MQTTMessageInfo, timeout: float = 30.0) -> bool:
    try:
        info.wait_for_publish(timeout)
    except (RuntimeError, ValueError):  # not queued: the connection is down
        time.sleep(1.0)
        return False
    return info.is_published()


def _settled_status(client: ApiClient, upload_id: str) -> dict[str, Any]:
    """The box's status once it has stopped changing (chunks still on their way are written within ~0.25 s)."""
    last: dict[str, Any] | None = None
    since = time.monotonic()
    while True:
        try:
            status: dict[str, Any] = client.request("upload_status", {"upload_id": upload_id}, timeout=10)["data"]
        except TimeoutError:  # the broker or the box is away: ask again
            time.sleep(1.0)
            continue
        except ApiError:
            raise
        if status["state"] != "receiving" and status["state"] != "verifying":
            return status
        if status["state"] == "receiving" and (last is None or status["received"] != last["received"]):
            last, since = status, time.monotonic()
        elif status["state"] == "receiving" and time.monotonic() - since >= SETTLE_S:
            return status
        time.sleep(0.25)
