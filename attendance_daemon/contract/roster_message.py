"""The hub's per-section roster message (retained on `<base>/@hub/roster/<section>`), shared by the hub that
signs it and the boxes that check it.

`hash` is sha256 over the canonical JSON (sorted keys, no spaces) of every field but `hash`, `hmac` and
`signature`: it detects a damaged or altered payload, not a forger (anyone can recompute it). `signature`
(Ed25519 by the hub's private key, named by `key_id`; see roster_signing.py) proves the hub made it: a box with
`roster.trusted_keys` accepts nothing else. `hmac` (HMAC-SHA256 over the same bytes with the shared secret in
`roster.key_file`) is the older proof, checked only by a box without trusted keys: it shows that someone holding
the fleet's one secret made the roster, and every box holds that secret."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, ValidationError, field_validator

from ..common.errors import format_validation_error
from ..common.names import DisplayName, SafeId
from .roster_signing import KEY_ID_PATTERN, SIGNATURE_PATTERN, RosterSigner, TrustedKeys, verify

MAX_ROSTER_BYTES = 16 * 1024 * 1024  # a roster message beyond this is refused unread
MAX_ROSTER_STUDENTS = 2000
MAX_ROSTER_ENCODINGS = 20  # per student: the one cap, kept by enrollment at the hub and on a box alike
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
    key_id: Annotated[StrictStr, Field(pattern=KEY_ID_PATTERN)] | None = None
    hash: Hex64
    hmac: Hex64 | None = None
    signature: Annotated[StrictStr, Field(pattern=SIGNATURE_PATTERN)] | None = None

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


SEALS = ("hash", "hmac", "signature")  # what is computed over the rest


def canonical(body: dict[str, Any]) -> bytes:
    unsigned = {k: v for k, v in body.items() if k not in SEALS}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def seal(body: dict[str, Any], key: bytes | None, signer: RosterSigner | None = None) -> dict[str, Any]:
    """The body with its `hash`, `hmac` when a shared key is given, and `key_id` + `signature` when a signer is
    (`key_id` is part of what the hash, the hmac and the signature cover)."""
    if signer is not None:
        body = {**body, "key_id": signer.key_id}
    data = canonical(body)
    out = {**body, "hash": hashlib.sha256(data).hexdigest()}
    if key:
        out["hmac"] = hmac.new(key, data, hashlib.sha256).hexdigest()
    if signer is not None:
        out["signature"] = signer.sign(data)
    return out


def open_roster(payload: bytes, key: bytes | None, trusted: TrustedKeys | None = None) -> RosterMessage:
    """The checked roster, or ValueError saying why it is refused (size, JSON, fields, hash, then the proof).

    The proof asked for: with `trusted` keys, a valid `signature` by one of them (an `hmac` is then not looked
    at: a box that trusts keys no longer takes the shared secret's word); else, with a shared `key`, a valid
    `hmac`; else none (the hash alone)."""
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
    if trusted:
        verify(message.key_id, message.signature, data, trusted)
    elif key:
        if message.hmac is None:
            raise ValueError("hmac missing (this box has a roster key)")
        if not hmac.compare_digest(hmac.new(key, data, hashlib.sha256).hexdigest(), message.hmac):
            raise ValueError("hmac does not match (not signed with this box's roster key)")
    return message
