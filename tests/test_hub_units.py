"""The roster message (hash, hmac, limits), a box's RosterSync on a real SQLite store, the hub's config and
unit file, and the hub's systemd notify protocol on a real datagram socket."""

from __future__ import annotations

import configparser
import json
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from attendance_daemon.contract.roster_message import MAX_ROSTER_BYTES, open_roster, seal
from attendance_daemon.hub.config import load_hub_config
from attendance_daemon.roster.sync import RosterSync
from attendance_daemon.store import Store
from tests.hub_fixtures import HubProcess, Postgres
from tests.mqtt_fixtures import Broker

REPO = Path(__file__).resolve().parent.parent


def _body(version: int, students: list[str], section: str = "5a") -> dict[str, Any]:
    return {"section": section, "version": version, "published_at": "2026-11-26T09:00:00Z",
            "students": [{"student_id": s, "name": s.upper(), "encodings": [[0.25 * i] * 128 for i in range(2)]}
                         for s in students]}


def _bytes(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def test_roster_hash_and_hmac() -> None:
    plain = seal(_body(1, ["s1"]), None)
    assert open_roster(_bytes(plain), None).students[0].student_id == "s1"
    tampered = {**plain, "students": [{**plain["students"][0], "name": "Mallory"}]}
    with pytest.raises(ValueError, match="hash does not match"):
        open_roster(_bytes(tampered), None)
    with pytest.raises(ValueError, match="hmac missing"):
        open_roster(_bytes(plain), b"secret")
    signed = seal(_body(1, ["s1"]), b"secret")
    assert open_roster(_bytes(signed), b"secret").hmac == signed["hmac"]
    with pytest.raises(ValueError, match="hmac does not match"):
        open_roster(_bytes(signed), b"other")
    # a forger who recomputes the hash still lacks the key
    forged = seal({**_body(1, ["s1"]), "students": [{**signed["students"][0], "name": "Mallory"}]}, None)
    with pytest.raises(ValueError, match="hmac"):
        open_roster(_bytes({**forged, "hmac": signed["hmac"]}), b"secret")
    with pytest.raises(ValueError, match="admin: Extra inputs"):
        open_roster(_bytes({**plain, "admin": True}), None)
    short = seal({**_body(1, []), "students": [{"student_id": "s1", "name": "S", "encodings": [[0.5] * 5]}]}, None)
    with pytest.raises(ValueError, match=r"students\.0\.encodings\.0"):
        open_roster(_bytes(short), None)
    with pytest.raises(ValueError, match="at most"):
        open_roster(b" " * (MAX_ROSTER_BYTES + 1), None)
    with pytest.raises(ValueError, match="version"):
        open_roster(_bytes(seal({**_body(1, ["s1"]), "version": "2"}, None)), None)


def test_roster_sync_applies_newer_versions_exactly(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.sqlite3", allow_init=True)
    sync = RosterSync(store, ["5a"], None)
    assert sync.offer("5a", _bytes(seal(_body(1, ["s1", "s2"]), None))) is None
    assert store.roster_versions() == {}  # staged only: applied when the daemon is idle
    assert sync.status() == {"5a": {"version": None, "hash": None, "pending": 1}}
    assert sync.apply_staged() == ["5a v1"]
    assert [(s.student_id, s.encodings) for s in store.students("5a")] == [("s1", 2), ("s2", 2)]
    assert sync.offer("5a", _bytes(seal(_body(1, ["s1", "s2"]), None))) is None  # the retained copy again
    v2 = seal(_body(2, ["s2", "s3"]), None)
    assert sync.offer("5a", _bytes(v2)) is None
    assert sync.apply_staged() == ["5a v2"]
    assert [s.student_id for s in store.students("5a")] == ["s2", "s3"]
    assert sync.status() == {"5a": {"version": 2, "hash": v2["hash"]}}
    older = sync.offer("5a", _bytes(seal(_body(1, ["s9"]), None)))
    assert older is not None and "not newer" in older and sync.problems() == [older]
    other = sync.offer("5b", _bytes(seal(_body(1, ["s9"], "5b"), None)))
    assert other is not None and "roster.sections" in other
    moved = sync.offer("5a", _bytes(seal(_body(3, ["s9"], "5b"), None)))
    assert moved is not None and "published on the topic" in moved
    assert sync.offer("5a", _bytes(seal(_body(3, ["s4"]), None))) is None
    assert sync.problems() == ["roster 5b: refused: not one of this box's roster.sections"]
    sync.apply_staged()
    assert [s.student_id for s in store.students("5a")] == ["s4"]
    store.close()


def test_hub_example_config_and_unit() -> None:
    cfg = load_hub_config(REPO / "config" / "attendance-hub.toml")
    assert cfg.hub.database.startswith("postgresql://") and cfg.mqtt.base_topic == "attendance"
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(REPO / "systemd" / "attendance-hub.service")
    svc = unit["Service"]
    assert svc["Type"] == "notify" and int(svc["WatchdogSec"]) > 0 and svc["User"] == "attendance-hub"
    assert svc["ExecStart"].endswith(" serve") and "attendance-hub" in svc["ExecStart"]


def test_hub_notify_ready_watchdog_stopping(tmp_path: Path, postgres: Postgres) -> None:
    broker = Broker(tmp_path)
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.5)
    messages: list[str] = []

    def drain(until: Any, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            try:
                messages.append(sock.recv(4096).decode())
            except TimeoutError:
                continue

    hub = HubProcess(tmp_path / "hub", broker, postgres.new_database())
    try:
        hub.start(wait=False, env_extra={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "2000000"})
        drain(lambda: sum("WATCHDOG=1" in m for m in messages) >= 3)
        assert any("READY=1" in m for m in messages)
        assert sum("WATCHDOG=1" in m for m in messages) >= 3
        assert hub.proc is not None
        hub.proc.send_signal(signal.SIGTERM)
        assert hub.proc.wait(30) == 0
        drain(lambda: any("STOPPING=1" in m for m in messages), timeout=2)
        assert any("STOPPING=1" in m for m in messages)
    finally:
        hub.stop()
        broker.stop()
        sock.close()
