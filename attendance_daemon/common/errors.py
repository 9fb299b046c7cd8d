"""Errors that carry an HTTP-like code, so the CLI and the MQTT API report them the same way."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError


class AttendanceError(Exception):
    """Base error: `code` follows HTTP (400 bad input, 403 forbidden path, 404 missing, 409 busy,
    507 not enough free space)."""

    code = 500

    def __init__(self, message: str, data: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data or {}


class InvalidRequest(AttendanceError):
    code = 400


class Forbidden(AttendanceError):
    code = 403


class NotFound(AttendanceError):
    code = 404


class Conflict(AttendanceError):
    code = 409


class PayloadTooLarge(AttendanceError):
    """A file too big to send in one MQTT response (transfer.MAX_INLINE_BYTES)."""

    code = 413


class TooManyRequests(AttendanceError):
    """A bounded resource is all in use (`media.max_uploads` uploads at once): retry when one has ended."""

    code = 429


class MediaError(AttendanceError):
    """A video or camera that cannot be opened or read: bad input, not a daemon fault."""

    code = 400


class MediaNotFound(MediaError):
    """A video file that does not exist: 404 as the contract says (still a MediaError for callers)."""

    code = 404


MAX_ERROR_CHARS = 300
_ABS_PATH = re.compile(r"(?<![\w.:/~>-])/(?:[^\s'\"/]+/)*[^\s'\"]*")
_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s'\"]+@")


def redact_credentials(text: str) -> str:
    """`scheme://user:pass@host` -> `scheme://***@host`, wherever it appears in `text`."""
    return _CREDENTIALS.sub(r"\1***@", text)


def public_error(text: str, roots: Iterable[tuple[Path, str]] = ()) -> str:
    """An error text fit to publish: credentials redacted, the box's directories shown as `<media>`-style
    names, any other absolute path as `<path>`, and at most MAX_ERROR_CHARS characters."""
    text = redact_credentials(text)
    for root, label in sorted(roots, key=lambda r: -len(str(r[0]))):
        for form in {str(root), str(root.resolve())}:
            if form not in ("", "/"):
                text = text.replace(form, label)
    text = _ABS_PATH.sub("<path>", text)
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 1] + "…"
    return text


class InsufficientStorage(AttendanceError):
    """Too little free space on the data directory to start recording (HTTP 507)."""

    code = 507


class StoreError(AttendanceError):
    """The database cannot be opened or used as it is (missing after earlier use, corrupt, read-only)."""

    code = 500


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """One line per problem, each naming the dotted key, e.g. `recognition.analysis_fps: ...`."""
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(root)"
        parts.append(f"{prefix}{key}: {e['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)
