"""The hub's per-section roster message (retained on `<base>/@hub/roster/<section>`), shared by the hub that
signs it and the boxes that check it.

`hash` is sha256 over the canonical JSON (sorted keys, no spaces) of every field but `hash` and `hmac`: it
detects a damaged or altered payload, not a forger (anyone can recompute it). `hmac` (HMAC-SHA256 over the same
bytes with the shared secret in `roster.key_file`, optional) proves the hub made it: with a key configured, a box
refuses rosters without a valid one."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, ValidationError, field_validator

from ..common.errors import format_validation_error
from ..common.names import DisplayName, SafeId

MAX_ROSTER_BYTES = 16 * 1024 * 1024  # a roster message beyond this is refused unread
MAX_ROSTER_STUDENTS = 2000
MAX_ROSTER_ENCODINGS = 20  # per student
ENCODING_DIM = 128

Encoding = Annotated[list[StrictFloat], Field(min_length=ENCODING_DIM, max_length=ENCODING_DIM)]
Hex64 = Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{64}$")]


class RosterStudentEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    student_id: SafeId
    name: DisplayName
    encodings: list[Encoding] = Field(max_length=MAX_ROSTER_ENCODINGS)


class RosterMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    section: SafeId
    version: StrictInt = Field(ge=1)
    published_at: StrictStr = Field(max_length=64)
    students: list[RosterStudentEntry] = Field(max_length=MAX_ROSTER_STUDENTS)
    hash: Hex64
    hmac: Hex64 | None = None

    @field_validator("students")
    @classmethod
    def _one_entry_each(cls, students: list[RosterStudentEntry]) -> list[RosterStudentEntry]:
        """A student listed twice would break the box's one-row-per-student roster mid-apply."""
        seen: set[str] = set()
        for s in students:
            if s.student_id in seen:
                raise ValueError(f"student '{s.student_id}' is listed more than once")
            seen.add(s.student_id)
        return students


def canonical(body: dict[str, Any]) -> bytes:
    unsigned = {k: v for k, v in body.items() if k not in ("hash", "hmac")}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def seal(body: dict[str, Any], key: bytes | None) -> dict[str, Any]:
    """The body with its `hash` (and `hmac` when a key is given)."""
    data = canonical(body)
    out = {**body, "hash": hashlib.sha256(data).hexdigest()}
    if key:
        out["hmac"] = hmac.new(key, data, hashlib.sha256).hexdigest()
    return out


def open_roster(payload: bytes, key: bytes | None) -> RosterMessage:
    """The checked roster, or ValueError saying why it is refused (size, JSON, fields, hash, hmac)."""
    if len(payload) > MAX_ROSTER_BYTES:
        raise ValueError(f"roster message of {len(payload)} bytes; at most {MAX_ROSTER_BYTES}")
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not UTF-8 JSON ({exc})") from exc
    except RecursionError as exc:  # '[[[[…' : not a ValueError, and it would end the thread reading it
        raise ValueError("JSON nested too deeply") from exc
    if not isinstance(body, dict):
        raise ValueError("must be a JSON object")
    try:
        message = RosterMessage.model_validate(body)
    except ValidationError as exc:
        raise ValueError(format_validation_error(exc)) from exc
    data = canonical(body)
    if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), message.hash):
        raise ValueError("hash does not match the content")
    if key:
        if message.hmac is None:
            raise ValueError("hmac missing (this box has a roster key)")
        if not hmac.compare_digest(hmac.new(key, data, hashlib.sha256).hexdigest(), message.hmac):
            raise ValueError("hmac does not match (not signed with this box's roster key)")
    return message
