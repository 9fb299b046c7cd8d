"""Command handlers, split by domain; importing this package registers every command in `registry.COMMANDS`.
Each handler receives the narrow `Services` and its validated request model, and returns the answer's data."""

from ..registry import BACKGROUND, COMMANDS
from . import media, privacy, records, roster, sessions, timetable

__all__ = ["BACKGROUND", "COMMANDS", "media", "privacy", "records", "roster", "sessions", "timetable"]
