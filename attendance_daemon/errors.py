"""Errors that carry an HTTP-like code, so the CLI and the MQTT API report them the same way."""


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


class MediaError(AttendanceError):
    """A video or camera that cannot be opened or read: bad input, not a daemon fault."""

    code = 400


class InsufficientStorage(AttendanceError):
    """Too little free space on the data directory to start recording (HTTP 507)."""

    code = 507


class StoreError(AttendanceError):
    """The database cannot be opened or used as it is (missing after earlier use, corrupt, read-only)."""

    code = 500
