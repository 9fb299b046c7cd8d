"""The one rule for ids and names that end up in file names, topics or retained payloads.

Section ids, student ids and session names become parts of paths (exports, reports, unknown-face crops), so
new ones must match SAFE_ID: one path component, never '.' or '..', no separators, bounded length. Display
names are free text but bounded and never used in paths. Existing rows that predate the rule stay readable:
lookups only bound the length (LookupText); only new writes are checked against SAFE_ID.
The pydantic types below are used by api.py; check_id() is the same rule for the CLI and the store."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, StrictStr

from .errors import InvalidRequest

SAFE_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
SAFE_ID = re.compile(SAFE_ID_PATTERN)
ID_RULE = f"must match {SAFE_ID_PATTERN} (letters, digits, '.', '_', '-'; at most 64; starting with a letter or digit)"
MAX_DISPLAY_NAME = 128
MAX_LOOKUP = 256  # ids read back from older data may be longer than 64, but never unbounded
MAX_PATH = 1024
MAX_TEXT = 64  # times, camera names and the like


def is_safe_id(value: str) -> bool:
    return SAFE_ID.fullmatch(value) is not None


def id_problem(value: str) -> str | None:
    """Why `value` is not a safe id, or None."""
    return None if is_safe_id(value) else ID_RULE


def check_id(value: str, field: str) -> str:
    """The id itself, or InvalidRequest naming the field (the CLI and the store use this)."""
    problem = id_problem(value)
    if problem:
        raise InvalidRequest(f"{field}: {problem}")
    return value


def check_display_name(value: str, field: str = "name") -> str:
    problem = _display_problem(value)
    if problem:
        raise InvalidRequest(f"{field}: {problem}")
    return value


def _display_problem(value: str) -> str | None:
    if not value.strip():
        return "must not be empty"
    if len(value) > MAX_DISPLAY_NAME:
        return f"must be at most {MAX_DISPLAY_NAME} characters"
    if not value.isprintable():
        return "must be printable text (no control characters)"
    return None


def safe_file_stem(name: str, unique: str) -> str:
    """`name` when it is a safe id, else a safe id made from it plus `unique` (older rows' names)."""
    if is_safe_id(name):
        return name
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-_")[:40] or "session"
    return f"{cleaned}-{unique[:12]}" if cleaned[0].isalnum() else f"s{cleaned}-{unique[:12]}"


def _id_validator(value: str) -> str:
    problem = id_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _display_validator(value: str) -> str:
    problem = _display_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


SafeId = Annotated[StrictStr, Field(max_length=64), AfterValidator(_id_validator)]
"""A new section id, student id or session name."""
DisplayName = Annotated[StrictStr, Field(max_length=MAX_DISPLAY_NAME), AfterValidator(_display_validator)]
LookupText = Annotated[StrictStr, Field(min_length=1, max_length=MAX_LOOKUP), AfterValidator(_no_nul)]
"""An id used only to look something up (may predate SAFE_ID)."""
PathText = Annotated[StrictStr, Field(min_length=1, max_length=MAX_PATH), AfterValidator(_no_nul)]
ShortText = Annotated[StrictStr, Field(max_length=MAX_TEXT), AfterValidator(_no_nul)]

# A video's name in the media library: a plain file name (no folder) with a video container's suffix.
MEDIA_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._ -]{0,99}\.[A-Za-z0-9]{3}"
MEDIA_NAME = re.compile(MEDIA_NAME_PATTERN)
MEDIA_SUFFIXES = (".mp4", ".mov", ".mkv")


def media_name_problem(value: str) -> str | None:
    """Why `value` is not a media library name, or None."""
    if not MEDIA_NAME.fullmatch(value) or ".." in value or not value.lower().endswith(MEDIA_SUFFIXES):
        return f"must be a plain .mp4, .mov or .mkv file name matching {MEDIA_NAME_PATTERN} (no folder)"
    return None


def _media_name_validator(value: str) -> str:
    problem = media_name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


MediaName = Annotated[StrictStr, Field(max_length=104), AfterValidator(_media_name_validator)]


# A record export's file in the reports directory, as `export` answers it: `record-<session or section and
# dates>[-drafts][-moodle].<csv|json|zip>`.
# `record-<session>...` for a session, `records-<section>-<since>-<until>...` for a range: never the same name
RECORD_NAME_PATTERN = r"records?-[A-Za-z0-9][A-Za-z0-9._-]{0,199}\.[a-z]{3,4}"
RECORD_NAME = re.compile(RECORD_NAME_PATTERN)
RECORD_SUFFIXES = (".csv", ".json", ".zip")


def record_name_problem(value: str) -> str | None:
    """Why `value` is not a record export's name, or None: one path component (no separator), never `.` or
    `..`."""
    if not RECORD_NAME.fullmatch(value) or not value.endswith(RECORD_SUFFIXES):
        return (f"must be a record export's name as `export` answered it ({RECORD_NAME_PATTERN} ending .csv, "
                ".json or .zip)")
    return None
