"""Files in and out of the box over MQTT: bounded base64 in one JSON message, never a box path.

Outgoing (reports, crops, frames, photos): the whole file in one response when it is at most
MAX_INLINE_BYTES, else 413. Incoming (enrollment photos): each image's base64 text is bounded before it is
decoded, its size and format read from the header before any pixel is."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..common.errors import InvalidRequest, NotFound, PayloadTooLarge

# One response carries at most this much file content (base64 makes the message about 4/3 of it).
MAX_INLINE_BYTES = 4 * 1024 * 1024
# An uploaded enrollment photo, decoded; and all photos of one request together.
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_UPLOAD_TOTAL_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_B64_CHARS = (MAX_UPLOAD_BYTES + 2) // 3 * 4
UPLOAD_FORMATS = {"JPEG": ".jpg", "PNG": ".png"}
CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".csv": "text/csv",
                 ".pdf": "application/pdf"}


@dataclass(frozen=True)
class FileContent:
    """A file as the API sends it: `content` is UTF-8 text for CSV, base64 for everything else."""

    content_type: str
    encoding: str
    content: str
    bytes: int
    sha256: str


def outgoing(path: Path, what: str) -> FileContent:
    """The file at `path` (a box path the caller chose, never one from a request) for a response."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise NotFound(f"{what}: the file is no longer on the box (deleted or expired)") from None
    if size > MAX_INLINE_BYTES:
        raise PayloadTooLarge(f"{what}: {size} bytes, more than the {MAX_INLINE_BYTES} bytes one response may carry")
    data = path.read_bytes()
    content_type = CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
    if content_type == "text/csv" and _is_utf8(data):  # its BOM kept: `sha256` is of these bytes encoded again
        text, encoding = data.decode("utf-8"), "utf-8"
    else:
        text, encoding = base64.b64encode(data).decode("ascii"), "base64"
    return FileContent(content_type, encoding, text, len(data), hashlib.sha256(data).hexdigest())


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def decode_image(data: str, field: str, max_pixels: int) -> tuple[bytes, str]:
    """(bytes, file suffix) of a base64 JPEG or PNG; 400 naming `field` when it is not one, too big, or has
    more pixels than `max_pixels` (read from the header: nothing is decoded)."""
    if len(data) > MAX_UPLOAD_B64_CHARS:
        raise InvalidRequest(f"{field}: more than {MAX_UPLOAD_BYTES} bytes once decoded")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"{field}: not valid base64 ({exc})") from exc
    if len(raw) > MAX_UPLOAD_BYTES:
        raise InvalidRequest(f"{field}: {len(raw)} bytes; at most {MAX_UPLOAD_BYTES}")
    try:
        with Image.open(io.BytesIO(raw)) as im:
            fmt, (width, height) = im.format, im.size
    except Image.DecompressionBombError as exc:
        raise InvalidRequest(f"{field}: image has too many pixels ({exc})") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InvalidRequest(f"{field}: not a JPEG or PNG image") from exc
    if fmt not in UPLOAD_FORMATS:
        raise InvalidRequest(f"{field}: a {fmt} image; only JPEG and PNG are accepted")
    if width * height > max_pixels:
        raise InvalidRequest(f"{field}: image is {width}x{height} ({width * height / 1e6:.0f} MP); at most "
                             f"{max_pixels / 1e6:g} MP (enrollment.max_image_pixels)")
    return raw, UPLOAD_FORMATS[fmt]
