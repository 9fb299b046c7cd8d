"""The hub's TOML config: [hub] (database, directories, roster key), [mqtt] (the central broker, same keys as a
box's) and [enrollment] (the same limits as a box's)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..common.errors import InvalidRequest, format_validation_error
from ..config import EnrollmentConfig, MqttConfig, read_key_file, read_toml, resolve_against


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HubSection(_Strict):
    # libpq connection string or URI, e.g. "postgresql:///attendance?host=/run/postgresql"
    database: str = "postgresql:///attendance"
    data_dir: Path = Path("/var/lib/attendance-hub")
    enrollment_dir: Path | None = None
    # Shared secret the rosters are signed with (HMAC-SHA256); the boxes' roster.key_file holds the same bytes.
    roster_key_file: Path | None = None
    client_id: str = "attendance-hub"
    # enrollment at the hub warns when a new face is this close to another student's (as on a box)
    duplicate_warn_distance: float = Field(0.4, ge=0)

    @property
    def enrollment(self) -> Path:
        return self.enrollment_dir or self.data_dir / "enrollment"

    def roster_key(self) -> bytes | None:
        """The shared secret (an empty file is an error: rosters would go out unsigned)."""
        return read_key_file(self.roster_key_file, "hub.roster_key_file")


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
    })
    return cfg
