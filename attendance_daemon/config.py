"""The single TOML config file, validated by pydantic so a bad key is named, not guessed at."""

from __future__ import annotations

import re
import socket
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import InvalidRequest


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def default_device_id() -> str:
    """Host name lower-cased, anything outside [a-z0-9_-] replaced by '-' (the API contract)."""
    return re.sub(r"[^a-z0-9_-]", "-", socket.gethostname().lower()) or "device"


class PathsConfig(_Strict):
    data_dir: Path = Path("data")
    media_dir: Path | None = None
    enrollment_dir: Path | None = None

    @property
    def media(self) -> Path:
        return self.media_dir or self.data_dir / "media"

    @property
    def enrollment(self) -> Path:
        return self.enrollment_dir or self.data_dir / "enrollment"

    @property
    def database(self) -> Path:
        return self.data_dir / "attendance.sqlite3"

    @property
    def exports(self) -> Path:
        return self.data_dir / "exports"

    @property
    def unknowns(self) -> Path:
        return self.data_dir / "unknowns"

    @property
    def reports(self) -> Path:
        return self.data_dir / "reports"


class RecognitionConfig(_Strict):
    detector: Literal["tflite", "hog"] = "tflite"
    detector_min_score: float = Field(0.5, gt=0, lt=1)
    analysis_fps: float = Field(5.0, gt=0, le=120)
    min_face_px: int = Field(24, ge=8)
    match_tolerance: float = Field(0.5, gt=0, le=1.5)
    votes_to_confirm: int = Field(2, ge=1)
    vote_ratio: float = Field(0.6, gt=0, le=1)
    encodings_per_track: int = Field(3, ge=1)
    encode_every_s: float = Field(0.4, ge=0)
    reencode_every_s: float = Field(5.0, gt=0)
    track_iou: float = Field(0.3, gt=0, lt=1)
    track_max_age_s: float = Field(1.0, gt=0)
    presence_gap_s: float = Field(2.0, ge=0)
    min_presence_s: float = Field(3.0, ge=0)
    duplicate_warn_distance: float = Field(0.4, ge=0)
    # The daemon encodes in a child process: dlib holds the GIL ~75 ms per face, stalling MQTT otherwise.
    encoder_process: bool = True


class MqttConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    base_topic: str = "attendance"
    protocol: Literal["5", "3.1.1"] = "5"  # 3.1.1 for brokers without v5 (no response topics then)
    device_id: str = Field(default_factory=default_device_id)
    client_id: str | None = None
    username: str | None = None
    password: str | None = None
    keepalive: int = Field(30, ge=5)
    tls: bool = False
    ca_certs: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    tls_insecure: bool = False
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)

    @field_validator("device_id")
    @classmethod
    def _topic_safe(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9_-]+", value):
            raise ValueError("must match [a-z0-9_-]+")
        return value

    @field_validator("base_topic")
    @classmethod
    def _no_wildcards(cls, value: str) -> str:
        if not value or any(c in value for c in "#+") or value.endswith("/"):
            raise ValueError("must be a non-empty topic without wildcards or trailing '/'")
        return value


class DaemonConfig(_Strict):
    default_camera: str = "0"
    flush_every_s: float = Field(2.0, gt=0)
    progress_hz: float = Field(2.0, gt=0, le=2.0)
    snapshot_hz: float = Field(1.0, ge=0, le=1.0)
    watchdog_margin: float = Field(0.5, gt=0, lt=1)
    camera_retry_s: float = Field(5.0, ge=0)
    # Opening a camera or video can hang (a stream that never answers): give up well under WatchdogSec.
    open_timeout_s: float = Field(10.0, gt=0, le=60)
    # A start is refused (507) below this much free space on the data directory; a running session ends
    # `failed` when free space drops below half of it, leaving room to store its outcome.
    min_free_mb: float = Field(100.0, ge=0)
    # Create a new database although the data directory shows earlier use (same as `run --init`).
    allow_init: bool = False


class EnrollmentConfig(_Strict):
    """Limits that keep one enrollment request from exhausting the box (checked before decoding)."""

    max_images: int = Field(20, ge=1)
    max_image_pixels: int = Field(40_000_000, ge=1)


class Config(_Strict):
    paths: PathsConfig = PathsConfig()
    recognition: RecognitionConfig = RecognitionConfig()
    mqtt: MqttConfig = MqttConfig()
    daemon: DaemonConfig = DaemonConfig()
    enrollment: EnrollmentConfig = EnrollmentConfig()

    def ensure_dirs(self) -> None:
        for d in (
            self.paths.data_dir,
            self.paths.media,
            self.paths.enrollment,
            self.paths.exports,
            self.paths.unknowns,
            self.paths.reports,
        ):
            d.mkdir(parents=True, exist_ok=True)


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """One line per problem, each naming the dotted key, e.g. `recognition.analysis_fps: ...`."""
    parts = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(root)"
        parts.append(f"{prefix}{key}: {e['msg']}")
    return "; ".join(parts)


def load_config(path: Path | None) -> Config:
    """Read and validate the config; relative paths are resolved against the config file's folder."""
    if path is None:
        return Config()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InvalidRequest(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidRequest(f"config {path}: invalid TOML: {exc}") from exc
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        raise InvalidRequest(f"config {path}: {format_validation_error(exc)}") from exc
    base = path.resolve().parent
    p = cfg.paths
    cfg.paths = PathsConfig(
        data_dir=_resolve(base, p.data_dir),
        media_dir=_resolve(base, p.media_dir) if p.media_dir else None,
        enrollment_dir=_resolve(base, p.enrollment_dir) if p.enrollment_dir else None,
    )
    return cfg


def _resolve(base: Path, p: Path) -> Path:
    return p if p.is_absolute() else (base / p).resolve()
