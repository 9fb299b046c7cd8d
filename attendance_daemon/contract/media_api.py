"""Payloads of uploads and the media library (docs/mqtt-api.md "Uploads"): requests validated by the registry
like every other; the chunks themselves are raw bytes, no payload model."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictInt, StrictStr, ValidationInfo, field_validator

from ..common.names import LookupText, MediaName, media_name_problem, record_name_problem
from .api import Payload, PositiveId, Request

MAX_DOWNLOAD_CHUNK = 1024 * 1024  # file bytes per `download` answer (about 1.4 MB of JSON in base64)

Sha256Hex = Annotated[StrictStr, Field(min_length=64, max_length=64, pattern=r"^[0-9a-fA-F]{64}$")]
UploadId = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")]


class UploadBegin(Request):
    name: MediaName
    bytes: StrictInt = Field(ge=1)
    sha256: Sha256Hex


class UploadStatusRequest(Request):
    upload_id: UploadId


class MediaRequest(Request):
    name: MediaName


class MediaEntry(Payload):
    name: str
    bytes: int
    sha256: str
    duration_s: float
    frames: int
    fps: float
    width: int
    height: int
    uploaded_at: str


class UploadRefusal(Payload):
    offset: str
    error: str


class UploadStatus(Payload):
    """An upload as the box holds it durably (the answer of `upload_begin` and `upload_status`, and the message
    on `R/upload/<upload_id>/status`)."""

    upload_id: str | None
    name: str
    bytes: int
    received: int
    missing: list[list[int]]
    state: Literal["receiving", "verifying", "complete", "failed"]
    error: str | None = None
    refused: list[UploadRefusal] | None = None
    media: MediaEntry | None = None
    chunk_bytes: int | None = None


DownloadKind = Literal["export", "report", "unknown_face", "photo", "media", "record"]


class DownloadRequest(Request):
    kind: DownloadKind
    session_id: LookupText | None = None  # export, report
    format: Literal["csv", "pdf"] = "csv"  # report
    face_id: PositiveId | None = None  # unknown_face
    section: LookupText | None = None  # photo
    student_id: LookupText | None = None  # photo
    photo_id: PositiveId | None = None  # photo
    name: Annotated[StrictStr, Field(max_length=256)] | None = None  # media (a MediaName), record (a record name)
    offset: StrictInt = Field(0, ge=0)
    length: StrictInt = Field(MAX_DOWNLOAD_CHUNK, ge=1, le=MAX_DOWNLOAD_CHUNK)

    @field_validator("name")
    @classmethod
    def _name_of_its_kind(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A record export's name for `record`, a media library name otherwise."""
        if value is not None:
            problem = (record_name_problem if info.data.get("kind") == "record" else media_name_problem)(value)
            if problem:
                raise ValueError(problem)
        return value

