"""systemd integration: the unit's settings, and the notify protocol spoken to a real datagram socket."""

from __future__ import annotations

import configparser
import signal
import socket
import time
from pathlib import Path
from typing import Any

from tests.mqtt_fixtures import Broker, DaemonProcess

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "attendance-daemon.service"


def test_unit_file_settings() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(UNIT)
    svc = unit["Service"]
    assert svc["Type"] == "notify" and int(svc["WatchdogSec"]) > 0
    assert svc["Restart"] == "on-failure" and svc["KillSignal"] == "SIGTERM"
    assert svc["SupplementaryGroups"] == "video" and svc["User"] == "attendance"
    assert svc["StateDirectory"] == "attendance-daemon" and svc["ProtectSystem"] == "strict"
    assert "PrivateDevices" not in svc  # it would hide /dev/video*
    assert svc["ExecStart"].endswith(" run") and "--config" in svc["ExecStart"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_notify_ready_watchdog_status_and_stopping(broker: Broker, daemon_factory: Any, tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.5)
    d: DaemonProcess = daemon_factory()
    messages: list[str] = []

    def drain(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                messages.append(sock.recv(4096).decode())
            except TimeoutError:
                continue

    d.start(wait=False, env_extra={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "2000000"})
    deadline = time.monotonic() + 90  # loading the models takes seconds, more on a loaded machine
    while not any("READY=1" in m for m in messages) and time.monotonic() < deadline:
        drain(0.5)
    drain(4.0)
    text = "\n".join(messages)
    ready = next(i for i, m in enumerate(messages) if "READY=1" in m)
    assert any("STATUS=loading models" in m for m in messages[:ready])
    assert any("STATUS=connecting to the MQTT broker" in m for m in messages[:ready])
    assert "STATUS=idle, connected" in text
    assert sum("WATCHDOG=1" in m for m in messages[ready:]) >= 3  # pinged well within 2 s
    d.signal(signal.SIGTERM)
    assert d.wait(30) == 0
    drain(0.5)
    assert any("STOPPING=1" in m for m in messages)
    sock.close()
