"""UTC timestamps in one format (ISO 8601 with Z) everywhere: database, payloads, reports."""

from datetime import UTC, datetime


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


def compact(dt: datetime) -> str:
    """`yyyymmdd-HHMMSS`, the suffix of default session names."""
    return dt.astimezone(UTC).strftime("%Y%m%d-%H%M%S")
