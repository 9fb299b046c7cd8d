"""UTC timestamps in one format (ISO 8601 with Z) in the database and payloads; wall-clock times in the box's
zone (ISO 8601 with the offset) where people read them (arrivals, leaves, intervals, reports)."""

import contextlib
import os
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import InvalidRequest


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_iso() -> str:
    return iso(utcnow())


def parse_iso(text: str) -> datetime:
    """Parse ISO 8601; a naive value is taken as UTC."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def iso_field(value: str | None, field: str) -> str | None:
    """A request's time bound (`since`, `until`) in UTC ISO form; not ISO 8601 is a 400 naming the field."""
    if value is None:
        return None
    try:
        return iso(parse_iso(value))
    except ValueError as exc:
        raise InvalidRequest(f"{field}: not an ISO 8601 time: '{value}'") from exc


def compact(dt: datetime) -> str:
    """`yyyymmdd-HHMMSS`, the suffix of default session names."""
    return dt.astimezone(UTC).strftime("%Y%m%d-%H%M%S")


def local_iso(dt: datetime, tz: tzinfo) -> str:
    """ISO 8601 in the box's zone, to the second, with the offset: `2026-11-26T09:05:00+01:00`."""
    return dt.astimezone(tz).isoformat(timespec="seconds")


def system_zone() -> tuple[str, tzinfo]:
    """The system's local zone as (IANA name or `localtime`, tzinfo), daylight saving time included: `TZ`,
    then the `/etc/localtime` link (`.../zoneinfo/Europe/Warsaw`), then `/etc/timezone`, then the file itself;
    UTC when the box has none."""
    candidates = [os.environ.get("TZ", "").removeprefix(":")]
    localtime = Path("/etc/localtime")
    if localtime.is_symlink():
        target = str(localtime.resolve())
        if "/zoneinfo/" in target:
            candidates.append(target.split("/zoneinfo/", 1)[1])
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    for name in candidates:
        zone = zone_named(name)
        if zone is not None:
            return name, zone
    with contextlib.suppress(OSError, ValueError), localtime.open("rb") as fh:
        return "localtime", ZoneInfo.from_file(fh, key="localtime")
    return "UTC", UTC


def zone_named(name: str) -> ZoneInfo | None:
    """The IANA zone of that name, or None (not a name, or not in the tz database)."""
    if not name or name.startswith("/") or ".." in name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def zone_or_system(name: str) -> tzinfo:
    """The named zone, or the system's (for `localtime` or a name this box's tz database lacks)."""
    return zone_named(name) or system_zone()[1]
