"""The hub's roster signature: Ed25519 (RFC 8032, `cryptography`). The hub alone holds the private key; a box
holds public keys (its `roster.trusted_keys`) and accepts a roster only when its `signature` verifies with the
key named by its `key_id`.

A public key is written `ed25519:<base64 of its 32 raw bytes>`; its id is the first 16 hex digits of the SHA-256
of those bytes, so a box computes the ids of the keys it trusts and an id in a roster can only select among
them. What is signed is a fixed context string then the roster's canonical bytes (those its `hash` covers,
`key_id` included): a signature made for something else never verifies as a roster's."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_PREFIX = "ed25519:"
KEY_ID_PATTERN = r"^[0-9a-f]{16}$"
SIGNATURE_PATTERN = r"^[0-9a-f]{128}$"  # 64 bytes, hex
MAX_TRUSTED_KEYS = 8  # a box's roster.trusted_keys: the current key and the next (rotation), and a few spare
CONTEXT = b"attendance-daemon roster v1\x00"

TrustedKeys = Mapping[str, Ed25519PublicKey]  # key id -> public key


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_text(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return KEY_PREFIX + base64.b64encode(raw).decode()


def parse_public_key(text: str) -> Ed25519PublicKey:
    """`ed25519:<base64>` -> the key, or ValueError saying what is wrong with it."""
    if not isinstance(text, str) or not text.startswith(KEY_PREFIX):
        raise ValueError(f"must be '{KEY_PREFIX}<base64 of 32 bytes>' (attendance-hub public-key prints it)")
    try:
        raw = base64.b64decode(text[len(KEY_PREFIX):].strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64 after '{KEY_PREFIX}'") from exc
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, this one {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def trusted_keys(texts: list[str]) -> dict[str, Ed25519PublicKey]:
    """Key id -> key for a list of public key texts (ValueError naming the entry that is wrong)."""
    out: dict[str, Ed25519PublicKey] = {}
    for i, text in enumerate(texts):
        try:
            public = parse_public_key(text)
        except ValueError as exc:
            raise ValueError(f"[{i}]: {exc}") from exc
        out[key_id(public)] = public
    return out


class RosterSigner:
    """The hub's private key: signs the canonical bytes of each roster it publishes."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()
        self.key_id = key_id(self.public)

    @classmethod
    def generate(cls) -> RosterSigner:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path, field: str) -> RosterSigner:
        """From a PEM (PKCS#8) file, as `attendance-hub keygen` writes it; ValueError naming `field`."""
        try:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except OSError as exc:
            raise ValueError(f"{field}: cannot read {path}: {exc.strerror}") from exc
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{field}: {path} is not a PEM private key without a password") from exc
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError(f"{field}: {path} holds a {type(private).__name__}, not an Ed25519 key")
        return cls(private)

    def pem(self) -> bytes:
        return self._private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption())

    def public_text(self) -> str:
        return public_key_text(self.public)

    def sign(self, data: bytes) -> str:
        return self._private.sign(CONTEXT + data).hex()


def verify(key: str | None, signature: str | None, data: bytes, trusted: TrustedKeys) -> None:
    """ValueError unless `signature` (hex) over `data` verifies with the trusted key whose id is `key`."""
    if key is None or signature is None:
        raise ValueError("signature missing (this box accepts only rosters signed with a key in "
                         "roster.trusted_keys)")
    public = trusted.get(key)
    if public is None:
        raise ValueError(f"key_id '{key}' is not one of this box's roster.trusted_keys "
                         f"({', '.join(sorted(trusted)) or 'none'})")
    try:
        public.verify(bytes.fromhex(signature), CONTEXT + data)
    except (InvalidSignature, ValueError) as exc:
        raise ValueError(f"signature does not verify with key '{key}'") from exc
