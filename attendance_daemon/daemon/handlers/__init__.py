"""Command handlers, split by domain; importing this package registers every command in `registry.COMMANDS`.
Each handler receives the narrow `Services` and its validated request model, and returns the answer's data."""

from ..registry import COMMANDS, LANES
from . import corrections, exports, media, privacy, records, roster, sessions, timetable

__all__ = ["COMMANDS", "LANES", "corrections", "exports", "media", "privacy", "records", "roster", "sessions",
           "timetable"]
