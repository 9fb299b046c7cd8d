"""One roster for the fleet: students are enrolled at the hub (the box's Enroller and its rules, on the hub's
PostgreSQL store), encoded once, and each section is published retained as a signed, versioned message to every
box assigned the section, on that box's own topic (`<base>/@hub/roster/<device>/<section>`).

What is published is checked first exactly as a box checks it (contract.roster_message.open_roster, the per-student
cap, every limit): a roster a box would refuse is never published; the operator gets the reason instead."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..common.errors import Conflict
from ..common.timeutil import now_iso
from ..contract.roster_message import MAX_ROSTER_ENCODINGS, open_roster, seal
from ..contract.roster_signing import RosterSigner
from ..mqtt.bridge import box_roster_topic, roster_topic
from ..roster.enrollment import Enroller, EnrollOutcome, cap_reason
from .store import HubStore

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], None]  # (topic, payload): retained, QoS 1


def file_sha256(path: Path) -> str | None:
    """The photo's content digest (what makes enrolling it twice a no-op), or None if it cannot be read."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def _dumps(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


class RosterPublisher:
    def __init__(self, store: HubStore, base: str, key: bytes | None, publish: Publish,
                 duplicate_warn_distance: float = 0.4, max_pixels: int = 40_000_000,
                 signer: RosterSigner | None = None, legacy: bool = False) -> None:
        self.store, self.base, self.key, self._publish = store, base, key, publish
        self.signer, self.legacy = signer, legacy
        self._enroller: Enroller | None = None  # dlib's models load on the first enrollment, not at start
        self._dup, self._max_pixels = duplicate_warn_distance, max_pixels

    def enroll(self, section: str, student_id: str, name: str, images: list[Path]) -> EnrollOutcome:
        """The box's rules (one face per photo, limits), plus: a photo the student already has is skipped (by its
        SHA-256, before it is decoded), and photos beyond MAX_ROSTER_ENCODINGS are rejected with the reason."""
        if self._enroller is None:
            self._enroller = Enroller(self.store, None, self._dup, self._max_pixels)
        enroller = self._enroller
        out = EnrollOutcome(student_id)
        known = self.store.photo_digests(section, student_id)
        fresh: list[tuple[Path, np.ndarray, str]] = []
        for image in images:
            digest = file_sha256(image) if image.is_file() else None
            if digest is not None and digest in known:
                out.skipped.append(image)
                continue
            result = enroller.encode_image(image)
            if isinstance(result, str) or digest is None:
                out.rejected.append({"image": str(image), "reason": result if isinstance(result, str)
                                     else "not readable"})
                continue
            known.add(digest)
            fresh.append((image, result, digest))
        have = enroller.encoding_count(section, student_id)
        room = max(0, MAX_ROSTER_ENCODINGS - have)
        out.rejected += [{"image": str(image), "reason": cap_reason(max(have, MAX_ROSTER_ENCODINGS))}
                         for image, _, _ in fresh[room:]]
        fresh = fresh[:room]
        if not fresh:
            return out
        out.warnings = enroller.near_duplicates(section, student_id, [e for _, e, _ in fresh])
        ids = self.store.add_student_encodings(section, student_id, name, [(i.name, e, d) for i, e, d in fresh])
        out.accepted = [(image, enc_id) for (image, _, _), enc_id in zip(fresh, ids, strict=True)]
        out.encodings_added = len(ids)
        return out

    def retain(self, topic: str, payload: bytes) -> None:
        """Publishes retained (QoS 1) on the central broker: the rosters, and the copies a forget replaces."""
        self._publish(topic, payload)

    def publish(self, section: str) -> dict[str, Any]:
        """A new version of the section's roster, signed, checked as a box checks it, and published retained to
        each box assigned the section; returns {version, hash}. Conflict (nothing published, no version used)
        when a box would refuse it."""
        with self.store.roster_publication(section):
            version = self.store.next_roster_version(section)
            students = self.store.roster_content(section)
            over = [f"'{s['student_id']}' has {len(s['encodings'])}" for s in students
                    if len(s["encodings"]) > MAX_ROSTER_ENCODINGS]
            if over:
                raise Conflict(f"section: roster '{section}' not published: student {', '.join(over)} encodings, at "
                               f"most {MAX_ROSTER_ENCODINGS} per student (boxes refuse it); remove some with "
                               "remove_photo (`attendance-hub photos` lists them)")
            body: dict[str, Any] = {"section": section, "version": version, "published_at": now_iso(),
                                    "students": students}
            sealed = seal(body, self.key, self.signer)
            payload = _dumps(sealed)
            try:  # the box's own check, with the proofs a box would ask for
                open_roster(payload, self.key, {self.signer.key_id: self.signer.public} if self.signer else None)
            except ValueError as exc:
                raise Conflict(f"section: roster '{section}' not published (boxes would refuse it): {exc}") from exc
            devices = self.store.assigned_devices(section)
            for device in devices:
                self._publish(box_roster_topic(self.base, device, section), payload)
            # boxes not yet upgraded read the one old topic (HMAC only, without the fields they do not know)
            self._publish(roster_topic(self.base, section), _dumps(seal(body, self.key)) if self.legacy else b"")
            self.store.record_roster(section, version, sealed["hash"], payload)
        log.info("roster %s: version %d published to %d box(es) (%d students)", section, version, len(devices),
                 len(students))
        return {"version": version, "hash": sealed["hash"]}

    def send_to(self, device_id: str, section: str) -> dict[str, Any] | None:
        """The section's current message to one box (newly assigned); {version, hash}, or None if unpublished."""
        message = self.store.roster_message(section)
        if message is None:
            return None
        self._publish(box_roster_topic(self.base, device_id, section), message)
        found: dict[str, Any] | None = self.store.rosters().get(section)
        return found

    def withdraw(self, device_id: str, section: str) -> None:
        """Deletes the retained roster of a box no longer assigned the section (no further versions reach it)."""
        self._publish(box_roster_topic(self.base, device_id, section), b"")
