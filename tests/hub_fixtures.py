"""A real PostgreSQL (Debian's package: initdb + pg_ctl on a free port, socket in a temp dir, as the
`postgres` user when run as root) and attendance-hub as a real process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import psycopg

from tests.mqtt_fixtures import Broker, free_port, stop_process


def _bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: scripts/test.sh installs Debian's postgresql package")
    return found[-1].parent


class Postgres:
    """One server per test session; each test gets its own database (`new_database`)."""

    def __init__(self) -> None:
        self.bin = _bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="attendance-pg-"))
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:  # postgres refuses to run as root
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.dir / "data"), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync")
        self.start_server()

    def start_server(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w",
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses='' -c fsync=off", "start")

    def stop_server(self, mode: str = "fast") -> None:
        """Stops the server and keeps its data (`start_server` brings it back): a PostgreSQL restart."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", mode, "-w", "stop")

    def _run(self, *argv: str) -> None:
        cmd = ["runuser", "-u", "postgres", "--", *argv] if self.as_root else list(argv)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.dir)

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.dir}&port={self.port}"

    def new_database(self) -> str:
        name = f"hub_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.dsn(), autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}".encode())
        return self.dsn(name)

    def stop(self) -> None:
        self.stop_server()
        shutil.rmtree(self.dir, ignore_errors=True)


class HubProcess:
    """`attendance-hub serve` against a central broker and a database."""

    def __init__(self, workdir: Path, broker: Broker, dsn: str, extra: str = "") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir, self.broker, self.dsn = workdir, broker, dsn
        self.config = workdir / "hub.toml"
        self.config.write_text(f'[hub]\ndatabase = "{dsn}"\ndata_dir = "{workdir / "data"}"\n{extra}'
                               f'[mqtt]\nport = {broker.port}\nreconnect_min_s = 0.5\nreconnect_max_s = 1\n')
        self.log = workdir / "hub.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "attendance_daemon.hub", "--config", str(self.config), *args],
                              check=False, capture_output=True, text=True, timeout=300)

    def start(self, wait: bool = True, env_extra: dict[str, str] | None = None) -> HubProcess:
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "attendance_daemon.hub", "--config",
                                          str(self.config), "serve"], stdout=log, stderr=log,
                                         env={**env, "PYTHONUNBUFFERED": "1", **(env_extra or {})})
        if not wait:
            return self
        with self.broker.client("@hub") as c:
            c.wait_for("availability", lambda v: v == "online", timeout=60)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def results_payload(session_id: str, present: list[str], absent: list[str], ended: str) -> dict[str, Any]:
    """A Results payload as a box publishes it (the contract's fields)."""
    return {
        "session_id": session_id, "name": f"s-{session_id[:6]}", "section": "5a", "mode": "mp4",
        "source": "classroom.mp4", "status": "completed", "started_at": "2026-11-26T09:00:00Z", "ended_at": ended,
        "frames_processed": 10, "present_count": len(present), "device_id": "room-1",
        "total": len(present) + len(absent), "unknowns": 0,
        "present": [{"student_id": s, "name": s.upper(), "first_seen_s": 0.0, "last_seen_s": 9.0, "seen_s": 9.0,
                     "arrived_at": "09:00:00", "left_at": "09:00:09", "late": False, "left_early": False,
                     "intervals": []} for s in present],
        "absent": [{"student_id": s, "name": s.upper()} for s in absent],
        "export_path": None, "export_codec": None, "error": None, "timezone": "UTC", "end_s": 10.0,
        "late_after_s": 300.0, "left_early_before_s": 300.0, "warnings": [],
    }
