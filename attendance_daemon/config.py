"""The single TOML config file, validated by pydantic so a bad key is named, not guessed at."""

from __future__ import annotations

import re
import socket
from datetime import tzinfo
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .common.config_files import read_key_file, read_toml, resolve_against
from .common.errors import InvalidRequest, format_validation_error, public_error
from .contract.api import MAX_LESSONS, AttendanceStatus, LessonEntry
from .contract.record_api import MOODLE_ACRONYMS
from .contract.roster_signing import MAX_TRUSTED_KEYS, TrustedKeys, trusted_keys


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

    def public_text(self, message: str) -> str:
        """An error text fit to leave the box (answers, events): no absolute paths of it, no credentials, at most
        300 characters."""
        return public_error(message, [(self.media, "<media>"), (self.enrollment, "<enrollment>"),
                                      (self.data_dir, "<data>")])

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

    @property
    def frames(self) -> Path:
        """One annotated frame per session (`<session id>.jpg`), fetchable later with `snapshot`."""
        return self.data_dir / "frames"

    @property
    def uploads(self) -> Path:
        """Uploads in progress (`<upload id>.part` and its `.json` state); complete ones move to `media`."""
        return self.data_dir / "uploads"

    @property
    def photos(self) -> Path:
        """Enrollment photos sent over MQTT or assigned from unknown faces (`<photo id>.<ext>`)."""
        return self.data_dir / "photos"


class RecognitionConfig(_Strict):
    detector: Literal["tflite", "hog"] = "tflite"
    detector_min_score: float = Field(0.5, gt=0, lt=1)
    # Boxes scoring between this and detector_min_score are kept when dlib's HOG confirms a face there.
    detector_verify_score: float = Field(0.15, gt=0, lt=1)
    # The smallest face (px in the frame) the detector is sized for: it sets how finely a frame is tiled.
    smallest_face_px: float = Field(28.0, ge=12)
    # The whole frame is searched once per this many seconds, a share of it at each analysed frame;
    # tracked faces are kept in between (students sit still). 0 = the whole frame at every analysed frame.
    full_scan_s: float = Field(1.0, ge=0, le=5)
    analysis_fps: float = Field(5.0, gt=0, le=120)
    min_face_px: int = Field(24, ge=8)
    match_tolerance: float = Field(0.5, gt=0, le=1.5)
    # An unmatched encoding is a vote for "unknown visitor" only beyond this distance from every student, and
    # only from a face at least unknown_min_face_px wide; unknown_votes such votes make a visitor.
    unknown_distance: float = Field(0.6, gt=0, le=1.5)
    unknown_min_face_px: int = Field(36, ge=8)
    unknown_votes: int = Field(3, ge=1)
    votes_to_confirm: int = Field(2, ge=1)
    # One encoding this close to a student confirms a track (dlib's own threshold is 0.6; 0.4 is strict).
    confident_distance: float = Field(0.4, ge=0, le=1.5)
    vote_ratio: float = Field(0.6, gt=0, le=1)
    encodings_per_track: int = Field(3, ge=1)
    # A track's mean of 3+ encodings confirms a student up to this distance when the next-nearest student is at
    # least mean_margin farther (the mean cancels noise). 0 = the mean uses match_tolerance too.
    mean_tolerance: float = Field(0.55, ge=0, le=1.5)
    mean_margin: float = Field(0.1, ge=0, le=1.5)
    # A view blurred below this share of its track's sharpest waits (<= quality_defer views), never votes visitor.
    quality_ratio: float = Field(0.5, ge=0, lt=1)
    quality_defer: int = Field(3, ge=0)
    # Crops darker than this (0-255) are denoised + CLAHE'd before encoding; 0 = never (no gain: performance.md).
    low_light_luma: float = Field(0.0, ge=0, le=255)
    # In a room whose frame noise (sigma, 8-bit) is >= fuse_noise, faces are found on a running mean of frames and
    # encoded from the mean of their latest fuse_views aligned views (sensor noise / sqrt(views)). 0/1 = off.
    fuse_views: int = Field(6, ge=0, le=10)
    fuse_noise: float = Field(4.0, ge=0)
    encode_every_s: float = Field(0.4, ge=0)
    reencode_every_s: float = Field(5.0, gt=0)
    track_iou: float = Field(0.3, gt=0, lt=1)
    track_max_age_s: float = Field(3.0, gt=0)
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
    # v5 Response Topics are honoured only under these prefixes (default: `<base_topic>/<device_id>/`), and
    # never on the daemon's own topics.
    reply_prefixes: list[str] | None = None
    # When another client takes over the daemon's client id, reconnect after 1, 2, 4 ... s up to this.
    takeover_backoff_max_s: float = Field(300.0, ge=1)

    @field_validator("device_id")
    @classmethod
    def _topic_safe(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9_-]+", value):
            raise ValueError("must match [a-z0-9_-]+")
        return value

    @field_validator("reply_prefixes")
    @classmethod
    def _plain_prefixes(cls, value: list[str] | None) -> list[str] | None:
        for prefix in value or []:
            if not prefix or any(c in prefix for c in "#+\x00") or len(prefix) > 200:
                raise ValueError("each prefix must be a non-empty topic prefix without wildcards")
        return value

    @field_validator("base_topic")
    @classmethod
    def _no_wildcards(cls, value: str) -> str:
        if not value or any(c in value for c in "#+") or value.endswith("/"):
            raise ValueError("must be a non-empty topic without wildcards or trailing '/'")
        return value


class DaemonConfig(_Strict):
    # A name (or index) from [cameras]; without a [cameras] table, the camera itself (index, device or URL).
    default_camera: str = "0"
    # Let requests name raw devices, paths inside the media dir and URLs (off: only declared cameras).
    allow_request_cameras: bool = False
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


class MediaConfig(_Strict):
    """Uploads over MQTT (docs/mqtt-api.md `upload_begin`): bounded in size, in number and in time."""

    max_upload_bytes: int = Field(2 * 1024**3, ge=1)
    max_uploads: int = Field(2, ge=1, le=16)  # uploads receiving or verifying at once
    chunk_bytes: int = Field(1024 * 1024, ge=4096, le=8 * 1024 * 1024)  # the largest chunk a client may send
    disk_reserve_bytes: int = Field(256 * 1024**2, ge=0)  # free space left after an upload, for sessions
    upload_expiry_h: float = Field(24.0, gt=0)  # an upload with no chunk for this long is removed
    # while a session runs, uploads are written at most this fast (MB/s; 0: no limit): the session comes first
    session_upload_mb_s: float = Field(4.0, ge=0)


class RetentionConfig(_Strict):
    """How long evidence files stay on the box: unknown-face crops, exports, kept annotated frames and reports
    older than `days` are deleted at start-up and then daily. 0 keeps them forever (the default: deleting
    an upgraded box's files unasked would lose data; set it to what your data-protection policy says)."""

    days: int = Field(0, ge=0, le=36500)


class HomeAssistantConfig(_Strict):
    # MQTT discovery: retained configs under <prefix>/<component>/<device_id>/<object_id>/config. Disabled:
    # the same topics are cleared (empty retained), so the entities disappear from Home Assistant.
    enabled: bool = True
    prefix: str = "homeassistant"

    @field_validator("prefix")
    @classmethod
    def _plain_prefix(cls, value: str) -> str:
        if not value or any(c in value for c in "#+\x00") or value.startswith("/") or value.endswith("/"):
            raise ValueError("must be a non-empty topic without wildcards or leading/trailing '/'")
        return value

class AttendanceConfig(_Strict):
    """How results are read by people: the box's time zone, late arrivals and early leaves."""

    # IANA zone name (e.g. "Europe/Warsaw") for the wall-clock times in results and reports;
    # unset: the system's local zone.
    timezone: str | None = None
    # Late: first seen more than this many seconds after the session's start.
    late_after_s: float = Field(300.0, ge=0)
    # Left early: last seen more than this many seconds before the session's end.
    left_early_before_s: float = Field(300.0, ge=0)
    # An `attendance_low` event when a student's attendance in a section falls below this percentage (after a
    # session of the section ends; once per fall), counted only from `alert_min_sessions` sessions on. Unset: off.
    alert_below_percent: float | None = Field(None, gt=0, le=100)
    alert_min_sessions: int = Field(3, ge=1)
    # Late, in minutes (the same as late_after_s; give one of the two).
    late_after_min: float | None = Field(None, ge=0)
    # A finished session's record becomes final by itself this many hours after it ended (0: only when a teacher
    # finalises it).
    finalize_after_h: float = Field(48.0, ge=0, le=24 * 366)
    # Moodle mod_attendance's status acronyms for the "mark sessions" CSV export (the plugin's defaults; a school
    # that renamed its statuses sets its own, 1-2 characters; left_early, present to Moodle, follows present).
    moodle_acronyms: dict[AttendanceStatus, str] = Field(default_factory=lambda: dict(MOODLE_ACRONYMS))

    @field_validator("moodle_acronyms")
    @classmethod
    def _acronyms(cls, value: dict[AttendanceStatus, str]) -> dict[AttendanceStatus, str]:
        for status, acronym in value.items():
            if not re.fullmatch(r"[A-Za-z0-9]{1,2}", acronym):
                raise ValueError(f"{status}: '{acronym[:16]}' is not a Moodle acronym (1 or 2 letters or digits)")
        return {**MOODLE_ACRONYMS, "left_early": value.get("present", MOODLE_ACRONYMS["left_early"]), **value}

    @model_validator(mode="after")
    def _late_in_minutes(self) -> AttendanceConfig:
        if self.late_after_min is not None and "late_after_s" in self.model_fields_set:
            raise ValueError("late_after_min: give late_after_min or late_after_s, not both")
        self.late_after_s = self.late_after_s if self.late_after_min is None else self.late_after_min * 60
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        from .common.timeutil import zone_named

        if value is not None and zone_named(value) is None:
            raise ValueError(f"'{value[:64]}' is not an IANA time zone name (e.g. Europe/Warsaw, UTC)")
        return value

    def zone(self) -> tuple[str, tzinfo]:
        """(name, tzinfo) of the configured zone, or of the system's local zone when none is configured."""
        from .common.timeutil import system_zone, zone_named

        if self.timezone is not None:
            zone = zone_named(self.timezone)
            assert zone is not None  # validated above
            return self.timezone, zone
        return system_zone()


class RosterConfig(_Strict):
    """Sections whose roster comes from the hub (docs/fleet.md); local enroll/remove_student in them is
    refused (409). trusted_keys: the hub's Ed25519 public keys (`ed25519:<base64>`); when given, only rosters
    signed with one of them are applied. key_file: the older shared secret (HMAC), checked only while no key is
    trusted; neither: the hash alone."""

    sections: list[str] = Field(default_factory=list, max_length=100)
    trusted_keys: list[str] = Field(default_factory=list, max_length=MAX_TRUSTED_KEYS)
    key_file: Path | None = None

    @field_validator("sections")
    @classmethod
    def _safe_sections(cls, value: list[str]) -> list[str]:
        from .common.names import ID_RULE, is_safe_id

        for section in value:
            if not is_safe_id(section):
                raise ValueError(f"section '{section[:64]}' {ID_RULE}")
        return value

    @field_validator("trusted_keys")
    @classmethod
    def _public_keys(cls, value: list[str]) -> list[str]:
        trusted_keys(value)  # ValueError naming the entry
        return value

    def key(self) -> bytes | None:
        return read_key_file(self.key_file, "roster.key_file")

    def trusted(self) -> TrustedKeys:
        """Key id -> public key of `trusted_keys` (empty: no signature asked for)."""
        return trusted_keys(self.trusted_keys)


class Config(_Strict):
    paths: PathsConfig = PathsConfig()
    recognition: RecognitionConfig = RecognitionConfig()
    mqtt: MqttConfig = MqttConfig()
    daemon: DaemonConfig = DaemonConfig()
    homeassistant: HomeAssistantConfig = HomeAssistantConfig()
    attendance: AttendanceConfig = AttendanceConfig()
    enrollment: EnrollmentConfig = EnrollmentConfig()
    media: MediaConfig = MediaConfig()
    retention: RetentionConfig = RetentionConfig()
    roster: RosterConfig = RosterConfig()
    # name -> index, /dev path or stream URL (credentials allowed: they are never published).
    cameras: dict[str, str] = Field(default_factory=dict)
    # [[timetable]] lessons (see docs/mqtt-api.md `schedule`): when given, they are the timetable (stored at
    # start-up) and the MQTT schedule commands that change it are refused; when absent, MQTT manages it.
    timetable: list[LessonEntry] | None = Field(None, max_length=MAX_LESSONS)

    @field_validator("timetable")
    @classmethod
    def _timetable_consistent(cls, value: list[LessonEntry] | None) -> list[LessonEntry] | None:
        if value is not None:
            from .timetable.entries import lessons_of

            lessons_of(value)  # ValueError: overlap, duplicate id, end before start
        return value

    @field_validator("cameras")
    @classmethod
    def _camera_names(cls, value: dict[str, str]) -> dict[str, str]:
        from .common.names import ID_RULE, is_safe_id

        for name, spec in value.items():
            if not is_safe_id(name):
                raise ValueError(f"camera name '{name[:64]}' {ID_RULE}")
            if not spec.strip():
                raise ValueError(f"camera '{name}': empty spec")
        return value

    @model_validator(mode="after")
    def _default_camera_declared(self) -> Config:
        want, names = self.daemon.default_camera, list(self.cameras)
        if names and want not in self.cameras and not (want.isdigit() and int(want) < len(names)):
            raise ValueError(f"daemon.default_camera: '{want}' is not a name or index in [cameras] "
                             f"({', '.join(names)})")
        return self

    @model_validator(mode="after")
    def _lesson_cameras_declared(self) -> Config:
        for i, lesson in enumerate(self.timetable or []):
            if lesson.camera is not None and lesson.camera not in self.cameras:
                raise ValueError(f"timetable[{i}].camera: '{lesson.camera}' is not a name in [cameras] "
                                 f"({', '.join(self.cameras) or 'none declared'}); leave it out for default_camera")
        return self

    def ensure_dirs(self) -> None:
        p = self.paths
        for d in (p.data_dir, p.media, p.enrollment, p.exports, p.unknowns, p.reports, p.frames, p.photos, p.uploads):
            d.mkdir(parents=True, exist_ok=True)


def load_config(path: Path | None) -> Config:
    """Read and validate the config; relative paths are resolved against the config file's folder."""
    if path is None:
        return Config()
    raw = read_toml(path)
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        raise InvalidRequest(f"config {path}: {format_validation_error(exc)}") from exc
    base = path.resolve().parent
    p = cfg.paths
    cfg.paths = PathsConfig(
        data_dir=resolve_against(base, p.data_dir),
        media_dir=resolve_against(base, p.media_dir) if p.media_dir else None,
        enrollment_dir=resolve_against(base, p.enrollment_dir) if p.enrollment_dir else None,
    )
    return cfg
