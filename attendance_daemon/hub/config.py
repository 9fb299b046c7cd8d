"""The hub's TOML config: [hub] (database, directories, roster keys), [mqtt] (the central broker, same keys as a
box's) and [enrollment] (the same limits as a box's)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..common.config_files import read_key_file, read_toml, resolve_against
from ..common.errors import InvalidRequest, format_validation_error
from ..config import AttendanceConfig, EnrollmentConfig, MqttConfig
from ..contract.api import AttendanceStatus
from ..contract.record_api import MOODLE_ACRONYMS
from ..contract.roster_signing import RosterSigner


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HubSection(_Strict):
    # libpq connection string or URI, e.g. "postgresql:///attendance?host=/run/postgresql"
    database: str = "postgresql:///attendance"
    data_dir: Path = Path("/var/lib/attendance-hub")
    enrollment_dir: Path | None = None
    # The hub's Ed25519 private key (PEM, `attendance-hub keygen`): every roster is signed with it; the boxes'
    # roster.trusted_keys hold its public key (`attendance-hub public-key`).
    roster_signing_key_file: Path | None = None
    # The older shared secret (HMAC-SHA256, the boxes' roster.key_file): still added while boxes check it.
    roster_key_file: Path | None = None
    # During the upgrade to per-box roster topics: also publish each section, HMAC only, on the one topic every
    # box read before (<base>/@hub/roster/<section>); off: that retained copy is deleted at each publication.
    legacy_roster_topics: bool = False
    client_id: str = "attendance-hub"
    # enrollment at the hub warns when a new face is this close to another student's (as on a box)
    duplicate_warn_distance: float = Field(0.4, ge=0)
    # Moodle mod_attendance's status acronyms for the `export` request's `moodle` format, as a box's
    # attendance.moodle_acronyms (the plugin's defaults: P, L, P for left early, E, A; at most 2 characters each)
    moodle_acronyms: dict[AttendanceStatus, str] = Field(default_factory=lambda: dict(MOODLE_ACRONYMS))

    @field_validator("moodle_acronyms")
    @classmethod
    def _acronyms(cls, value: dict[AttendanceStatus, str]) -> dict[AttendanceStatus, str]:
        """A box's rule (config.AttendanceConfig), in its own words: the statuses not given keep the default,
        left_early follows present."""
        try:
            return AttendanceConfig.model_validate({"moodle_acronyms": value}).moodle_acronyms
        except ValidationError as exc:
            raise ValueError(str(exc.errors()[0]["msg"]).removeprefix("Value error, ")) from None

    @property
    def enrollment(self) -> Path:
        return self.enrollment_dir or self.data_dir / "enrollment"

    def roster_key(self) -> bytes | None:
        """The shared secret (an empty file is an error: rosters would go out unsigned)."""
        return read_key_file(self.roster_key_file, "hub.roster_key_file")

    def roster_signer(self) -> RosterSigner | None:
        """The signing key, or None without one (a broken file is an InvalidRequest naming the key)."""
        if self.roster_signing_key_file is None:
            return None
        try:
            return RosterSigner.load(self.roster_signing_key_file, "hub.roster_signing_key_file")
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from exc


class HubConfig(_Strict):
    hub: HubSection = HubSection()
    mqtt: MqttConfig = MqttConfig(device_id="hub")
    enrollment: EnrollmentConfig = EnrollmentConfig()


def load_hub_config(path: Path | None) -> HubConfig:
    if path is None:
        return HubConfig()
    raw = read_toml(path)
    raw.setdefault("mqtt", {}).setdefault("device_id", "hub")
    try:
        cfg = HubConfig.model_validate(raw)
    except ValidationError as exc:
        raise InvalidRequest(f"config {path}: {format_validation_error(exc)}") from exc
    base = path.resolve().parent
    h = cfg.hub
    cfg.hub = h.model_copy(update={
        "data_dir": resolve_against(base, h.data_dir),
        "enrollment_dir": resolve_against(base, h.enrollment_dir) if h.enrollment_dir else None,
        "roster_key_file": resolve_against(base, h.roster_key_file) if h.roster_key_file else None,
        "roster_signing_key_file": (resolve_against(base, h.roster_signing_key_file)
                                    if h.roster_signing_key_file else None),
    })
    return cfg
