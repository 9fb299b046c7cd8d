"""A real mosquitto on a free loopback port, and the daemon as a real process (so kill -9 and SIGTERM are real)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from attendance_daemon.mqtt.client import ApiClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


def is_discovery_topic(topic: str) -> bool:
    """A Home Assistant discovery config (the daemon's only topics outside R, on by default)."""
    return topic.startswith("homeassistant/") and topic.endswith("/config")


class RecordingClient(ApiClient):
    """An ApiClient that also keeps every message under R as (leaf, payload, retained), for the tests' eyes only
    (the product client keeps just the latest per topic)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        super().__init__(*args, **kwargs)

    def received(self, leaf: str, payload: bytes, retain: bool) -> None:
        self.messages.append((leaf, payload, retain))


class Broker:
    def __init__(self, workdir: Path, extra: str = "", allow_anonymous: bool = True) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise RuntimeError("mosquitto is not installed: run scripts/setup.sh (apt-get install mosquitto)")
        self.exe = exe
        self.port = free_port()
        self.conf = workdir / f"mosquitto-{self.port}.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous {str(allow_anonymous).lower()}\n"
                             f"persistence false\nmax_queued_messages 100000\nset_tcp_nodelay true\n{extra}")
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @classmethod
    def with_passwords(cls, workdir: Path, users: dict[str, str], acl: Path, extra: str = "") -> Broker:
        """mosquitto with a password file made by mosquitto_passwd and an ACL file, no anonymous clients.
        `user root`: mosquitto started as root would otherwise drop to its own user, which cannot read workdir."""
        passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        workdir.mkdir(parents=True, exist_ok=True)
        pwfile = workdir / "passwd"
        pwfile.touch()
        for user, password in users.items():
            subprocess.run([passwd, "-b", str(pwfile), user, password], check=True)
        return cls(workdir, allow_anonymous=False, extra=f"user root\npassword_file {pwfile}\nacl_file {acl}\n{extra}")

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=log, stderr=log)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def client(self, device: str) -> RecordingClient:
        return RecordingClient("127.0.0.1", self.port, device)


def stop_process(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM (a clean stop: the daemons and Node-RED save their state), then SIGKILL after 30 s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class DaemonProcess:
    """`attendance-daemon run` with a config pointing at the test broker and a fresh data directory."""

    def __init__(self, workdir: Path, broker: Broker, media: Path, enrollment: Path, database: Path | None,
                 extra: str = "", device: str | None = None, mqtt_extra: str = "") -> None:
        self.workdir, self.broker = workdir, broker
        self.device = device or f"test-{uuid.uuid4().hex[:8]}"
        self.data = workdir / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        if database is not None and not (self.data / "attendance.sqlite3").exists():
            shutil.copy(database, self.data / "attendance.sqlite3")
        self.config = workdir / "daemon.toml"
        self.config.write_text(
            f'[paths]\ndata_dir = "{self.data}"\nmedia_dir = "{media}"\nenrollment_dir = "{enrollment}"\n'
            f'[mqtt]\nport = {broker.port}\ndevice_id = "{self.device}"\nreconnect_min_s = 0.5\n'
            f'reconnect_max_s = 1\n{mqtt_extra}[daemon]\nflush_every_s = 0.5\ncamera_retry_s = 1\n{extra}'
        )
        self.log = workdir / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True, env_extra: dict[str, str] | None = None) -> DaemonProcess:
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
        env.update({"PYTHONUNBUFFERED": "1", **(env_extra or {})})
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "attendance_daemon", "--config", str(self.config), "run"],
                stdout=log, stderr=log, env=env,
            )
        if wait:
            with self.broker.client(self.device) as c:
                c.wait_for("availability", lambda v: v == "online", timeout=60)
                c.wait_for("state", lambda s: True, timeout=10)
        return self

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
