"""The trust model's pieces without a broker: Ed25519 roster signatures and a box's trust list (rotation, the
upgrade from the shared HMAC key), a box's RosterSync on a real SQLite store, the per-student cap on a box's
enrollment, the hub's reading of a box's roster status, the box config, and the hub's `keygen`/`public-key`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from attendance_daemon.common.errors import Conflict, InvalidRequest
from attendance_daemon.config import Config, load_config
from attendance_daemon.contract.roster_message import MAX_ROSTER_ENCODINGS, canonical, open_roster, seal
from attendance_daemon.contract.roster_signing import (
    CONTEXT,
    RosterSigner,
    parse_public_key,
    trusted_keys,
)
from attendance_daemon.hub.fleet_requests import roster_status
from attendance_daemon.roster.enrollment import Enroller
from attendance_daemon.roster.sync import RosterSync
from attendance_daemon.store import Store

HUB, NEXT, THIEF = RosterSigner.generate(), RosterSigner.generate(), RosterSigner.generate()
SECRET = b"the fleet's one shared secret"


def _body(version: int, students: list[str], section: str = "5a") -> dict[str, Any]:
    return {"section": section, "version": version, "published_at": "2026-11-26T09:00:00Z",
            "students": [{"student_id": s, "name": s.upper(), "encodings": [[0.125] * 128]} for s in students]}


def _bytes(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def _trust(*signers: RosterSigner) -> dict[str, Any]:
    return trusted_keys([s.public_text() for s in signers])


def test_only_the_hubs_key_signs_a_roster_and_rotation_keeps_both_keys_valid() -> None:
    signed = seal(_body(1, ["s1"]), SECRET, HUB)
    assert signed["key_id"] == HUB.key_id and len(signed["signature"]) == 128
    assert open_roster(_bytes(signed), None, _trust(HUB)).students[0].student_id == "s1"
    # another key (a thief's, or the next one not yet trusted): its id is not in the list
    other = seal(_body(1, ["s1"]), SECRET, THIEF)
    with pytest.raises(ValueError, match=f"key_id '{THIEF.key_id}' is not one of this box's roster.trusted_keys"):
        open_roster(_bytes(other), None, _trust(HUB))
    # ... nor can it borrow the hub's id: the signature does not verify with the hub's key
    borrowed = {**other, "key_id": HUB.key_id}
    borrowed = {**borrowed, "hash": seal({k: v for k, v in borrowed.items() if k not in ("hash", "hmac", "signature")},
                                         None)["hash"]}
    with pytest.raises(ValueError, match="signature does not verify"):
        open_roster(_bytes(borrowed), None, _trust(HUB))
    # content changed after signing, hash recomputed: the signature no longer covers it
    changed = {**signed, "students": [{**signed["students"][0], "name": "Mallory"}]}
    changed["hash"] = seal({k: v for k, v in changed.items() if k not in ("hash", "hmac", "signature")}, None)["hash"]
    with pytest.raises(ValueError, match="signature does not verify"):
        open_roster(_bytes(changed), None, _trust(HUB))
    # the hub's key signing the same bytes for another purpose (no context) is no roster signature
    raw = {**signed, "signature": HUB._private.sign(canonical(signed)).hex()}
    with pytest.raises(ValueError, match="signature does not verify"):
        open_roster(_bytes(raw), None, _trust(HUB))
    assert HUB._private.public_key().verify(bytes.fromhex(signed["signature"]), CONTEXT + canonical(signed)) is None
    # rotation: a box trusting the current and the next key accepts both; once the old one is dropped, only the new
    both = _trust(HUB, NEXT)
    assert open_roster(_bytes(signed), None, both).version == 1
    assert open_roster(_bytes(seal(_body(2, ["s1"]), None, NEXT)), None, both).version == 2
    with pytest.raises(ValueError, match=r"not one of this box's roster\.trusted_keys"):
        open_roster(_bytes(signed), None, _trust(NEXT))
    with pytest.raises(ValueError, match="signature"):
        open_roster(_bytes({**signed, "signature": "00" * 64}), None, _trust(HUB))
    with pytest.raises(ValueError, match=r"signature: String should match pattern"):
        open_roster(_bytes({**signed, "signature": "zz"}), None, _trust(HUB))


def test_upgrade_path_hmac_only_while_no_key_is_trusted() -> None:
    """A box without trusted keys keeps today's rule (the shared secret's HMAC), and takes the hub's new signed
    messages (it checks their HMAC); once it trusts a key, the shared secret alone no longer makes a roster."""
    legacy = seal(_body(1, ["s1"]), SECRET)  # what a hub publishes before the upgrade (and on legacy topics)
    assert set(legacy) == {"section", "version", "published_at", "students", "hash", "hmac"}
    new = seal(_body(2, ["s1"]), SECRET, HUB)  # the upgraded hub, during the transition: signature and hmac
    assert open_roster(_bytes(legacy), SECRET).version == 1
    assert open_roster(_bytes(new), SECRET).version == 2
    with pytest.raises(ValueError, match="hmac does not match"):
        open_roster(_bytes(seal(_body(1, ["s1"]), b"a guess", HUB)), SECRET)
    # trusting a key: a stolen box's secret signs nothing any more, whatever else the box has configured
    with pytest.raises(ValueError, match="signature missing"):
        open_roster(_bytes(legacy), SECRET, _trust(HUB))
    assert open_roster(_bytes(new), SECRET, _trust(HUB)).version == 2
    assert open_roster(_bytes(seal(_body(3, ["s1"]), None, HUB)), SECRET, _trust(HUB)).version == 3


def test_box_sync_applies_only_signed_rosters(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.sqlite3", allow_init=True)
    sync = RosterSync(store, ["5a"], SECRET, None, _trust(HUB))
    refused = sync.offer("5a", _bytes(seal(_body(1, ["s1"]), SECRET)))
    assert refused == "roster 5a: refused: signature missing (this box accepts only rosters signed with a key in " \
                      "roster.trusted_keys)"
    assert sync.problems() == [refused]
    assert sync.offer("5a", _bytes(seal(_body(1, ["s1", "s2"]), None, HUB))) is None
    assert sync.apply_staged() == ["5a v1"] and sync.problems() == []
    assert [s.student_id for s in store.students("5a")] == ["s1", "s2"]
    store.close()


def test_box_config_trusted_keys(tmp_path: Path) -> None:
    config = tmp_path / "box.toml"
    config.write_text(f'[roster]\nsections = ["5a"]\ntrusted_keys = ["{HUB.public_text()}", "{NEXT.public_text()}"]\n')
    cfg = load_config(config)
    assert set(cfg.roster.trusted()) == {HUB.key_id, NEXT.key_id}
    assert Config().roster.trusted() == {}
    for bad, why in (("ssh-ed25519 AAAA", "must be 'ed25519:"), ("ed25519:!!", "not base64"),
                     ("ed25519:AAAA", "an Ed25519 public key has 32 bytes, this one 3")):
        config.write_text(f'[roster]\ntrusted_keys = ["{HUB.public_text()}", "{bad}"]\n')
        with pytest.raises(InvalidRequest, match=rf"roster\.trusted_keys: .*\[1\]: {why}"):
            load_config(config)
    config.write_text("[roster]\ntrusted_keys = [" + ", ".join(f'"{HUB.public_text()}"' for _ in range(9)) + "]\n")
    with pytest.raises(InvalidRequest, match="trusted_keys"):
        load_config(config)
    assert parse_public_key(HUB.public_text()).public_bytes_raw() == HUB.public.public_bytes_raw()


def test_box_enrollment_keeps_the_per_student_cap(tmp_path: Path) -> None:
    """The cap the roster message has is kept where a box adds encodings too (assign_unknown and enroll)."""
    store = Store(tmp_path / "b.sqlite3", allow_init=True)
    enroller = Enroller(store)
    vectors = [np.full(128, i / 100, np.float32) for i in range(MAX_ROSTER_ENCODINGS + 1)]
    _, ids = enroller.add_encodings("7c", "s1", "Ann", [(f"p{i}", v) for i, v in enumerate(vectors[:-1])])
    assert len(ids) == MAX_ROSTER_ENCODINGS
    with pytest.raises(Conflict, match=rf"has {MAX_ROSTER_ENCODINGS} encodings: at most {MAX_ROSTER_ENCODINGS} per"):
        enroller.add_encodings("7c", "s1", None, [("one-more", vectors[-1])])
    assert [s.encodings for s in store.students("7c")] == [MAX_ROSTER_ENCODINGS]
    store.close()


def test_roster_status_from_what_a_box_says() -> None:
    published: dict[str, dict[str, Any]] = {"5a": {"version": 4, "hash": "h"}, "5b": {"version": 2, "hash": "h"},
                                            "5c": {"version": 1}}
    info = {"rosters": {"5a": {"version": 4, "hash": "h"}, "5b": {"version": 1, "hash": "x"},
                        "5c": {"version": None, "hash": None, "pending": 1}, "old": {"version": 9}},
            "problems": ["database replaced", "roster 5b: refused: key_id 'abc' is not one of this box's "
                         "roster.trusted_keys" + "!" * 400]}
    status = roster_status(["5a", "5b", "5c", "5d"], published, info)
    assert {s: v["state"] for s, v in status.items()} == {
        "5a": "applied", "5b": "refused", "5c": "pending", "5d": "unpublished", "old": "unassigned"}
    assert status["5b"]["reason"].startswith("key_id 'abc'") and len(status["5b"]["reason"]) == 300
    assert status["5b"]["applied"] == 1 and status["5b"]["published"] == 2
    assert roster_status(["5a"], published, {})["5a"]["state"] == "behind"
    # whatever a broken or hostile box publishes, fleet still answers
    junk: Any
    for junk in (None, [], "x", {"rosters": []}, {"rosters": {"5a": "v"}, "problems": "no"},
                 {"rosters": {"5a": {"version": "4"}}, "problems": [3, None]},
                 {"rosters": {str(i): {} for i in range(5000)}}):
        assert roster_status(["5a"], published, junk)["5a"]["state"] == "behind"
    assert len(roster_status([], published, {"rosters": {str(i): {} for i in range(5000)}})) == 100


def test_hub_keygen_and_public_key(tmp_path: Path) -> None:
    def hub(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "attendance_daemon.hub", *args], capture_output=True,
                              text=True, check=False, timeout=120)

    key = tmp_path / "roster-signing.pem"
    made = hub("keygen", "--out", str(key))
    assert made.returncode == 0, made.stderr
    assert key.stat().st_mode & 0o777 == 0o600
    key_line, public = made.stdout.split()[1], made.stdout.splitlines()[1]
    signer = RosterSigner.load(key, "key")
    assert (signer.key_id, signer.public_text()) == (key_line, public)
    again = hub("keygen", "--out", str(key))
    assert again.returncode == 1 and "exists" in again.stderr and RosterSigner.load(key, "k").key_id == key_line
    config = tmp_path / "hub.toml"
    config.write_text(f'[hub]\nroster_signing_key_file = "{key.name}"\n')
    shown = hub("--config", str(config), "public-key")
    assert shown.returncode == 0 and shown.stdout == made.stdout
    (tmp_path / "not-a-key").write_text("hello")
    config.write_text('[hub]\nroster_signing_key_file = "not-a-key"\n')
    broken = hub("--config", str(config), "public-key")
    assert broken.returncode == 1 and "hub.roster_signing_key_file" in broken.stderr
    assert "Traceback" not in broken.stderr
