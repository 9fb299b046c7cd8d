"""Issue 10, items 4-8 and three item-14 defects: each against the real mosquitto and the daemon as a real
process where the defect lives there (hanging sources, enrollment load, a vanishing or corrupt database,
a full disk, lying videos, READY without a broker, info after a CLI enrollment, interrupted end times)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from attendance_daemon.common.timeutil import parse_iso, utcnow
from attendance_daemon.sessions.state_machine import StateMachine
from tests.mqtt_fixtures import Broker, DaemonProcess
from tests.test_state_machine import _info

# ---- helpers -------------------------------------------------------------------------------------------


class NotifySocket:
    """The systemd notify protocol on a real datagram socket; records (monotonic time, message)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._recv, daemon=True)
        self._thread.start()

    def _recv(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append((time.monotonic(), self.sock.recv(4096).decode()))
            except TimeoutError:
                continue

    def env(self) -> dict[str, str]:
        return {"NOTIFY_SOCKET": str(self.path), "WATCHDOG_USEC": "2000000"}

    def wait_for(self, needle: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, m in list(self.messages):
                if needle in m:
                    return t
            time.sleep(0.05)
        raise TimeoutError(f"no notify message with {needle!r}: {[m for _, m in self.messages][-10:]}")

    def pings(self, start: float, end: float) -> list[float]:
        return [t for t, m in list(self.messages) if "WATCHDOG=1" in m and start <= t <= end]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    n = NotifySocket(tmp_path / "notify.sock")
    yield n
    n.close()


class SilentServer:
    """A loopback TCP listener that accepts connections and never answers (a hung IP camera)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.accepted:
            c.close()


def cli(config: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "attendance_daemon", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def one_line_error(text: str, needle: str) -> None:
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and needle in errors[0], text


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, timeout=300)


def rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def huge_png(path: Path, side: int) -> None:
    """An all-black 1-bit PNG of side x side pixels: tiny on disk, side*side*3 bytes once decoded to BGR."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" * (1 + (side + 7) // 8)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))


# ---- the state machine's lock is private ------------------------------------------------------------------


def test_state_machine_commit_steps_run_under_its_lock() -> None:
    sm = StateMachine()
    assert not hasattr(sm, "lock")
    calls: list[str] = []

    def failing() -> Any:
        raise RuntimeError("row not created")

    with pytest.raises(RuntimeError):
        sm.begin("mp4", failing)
    assert sm.state().mode == "idle"  # a failed commit changes nothing
    assert sm.begin("mp4", lambda: _info("a")).session is not None
    sm.pause("a", then=lambda: calls.append("pause"))
    sm.resume(then=lambda: calls.append("resume"))
    sm.check_stop(then=lambda: calls.append("stop"))
    assert calls == ["pause", "resume", "stop"]


# ---- item 4: no I/O under the state lock; open time-out; non-regular files ----------------------------------


def test_hung_camera_start_times_out_while_watchdog_keeps_pinging(broker: Broker, daemon_factory: Any,
                                                                  notify: NotifySocket) -> None:
    server = SilentServer()
    try:
        # the default daemon.open_timeout_s (10 s) applies
        d: DaemonProcess = daemon_factory(f'default_camera = "http://127.0.0.1:{server.port}/video.mjpg"\n')
        d.start(env_extra=notify.env())
        with broker.client(d.device) as c, broker.client(d.device) as other:
            answers: list[float] = []

            def status_while_pending() -> None:  # another dashboard, while the start waits on the camera
                time.sleep(1.0)
                for _ in range(3):
                    t = time.monotonic()
                    assert other.request("status", timeout=5)["data"]["mode"] == "idle"
                    answers.append(time.monotonic() - t)
                    time.sleep(1.0)

            meanwhile = threading.Thread(target=status_while_pending)
            t0 = time.monotonic()
            meanwhile.start()
            resp = c.request("start_webcam", {"section": "demo"}, check=False, timeout=60)
            t1 = time.monotonic()
            meanwhile.join(30)
            assert len(answers) == 3 and max(answers) < 1.0, answers  # answered at once, not after the camera
            starts = [leaf for leaf, _, _ in c.messages if leaf == "response/start_webcam"]
            assert len(starts) == 1  # one answer to the start
            assert resp["code"] == 400 and "did not open within 10 s" in resp["error"], resp
            assert t1 - t0 < 25  # the configured 10 s, not OpenCV's own 30 s (or forever)
            assert server.accepted, "the daemon never tried the camera"
            pings = notify.pings(t0, t1)
            gaps = [b - a for a, b in zip([t0, *pings], [*pings, t1], strict=True)]
            assert max(gaps) < 2.0, gaps  # WATCHDOG_USEC is 2 s: never starved while the camera hangs
            assert c.request("status")["data"]["mode"] == "idle"
    finally:
        server.close()


def test_fifo_is_refused_as_video_or_camera_and_sigterm_still_works(broker: Broker, daemon_factory: Any,
                                                                    daemon_media: Path) -> None:
    fifo = daemon_media / f"fifo-{uuid.uuid4().hex[:6]}.mp4"
    os.mkfifo(fifo)
    try:
        d = daemon_factory(f'[cameras]\nusb = "0"\nfifo = "{fifo}"\n').start()  # a declared camera that is a FIFO
        with broker.client(d.device) as c:
            cam = c.request("start_webcam", {"section": "demo", "camera": "fifo"}, check=False, timeout=30)
            assert cam["code"] == 400 and "FIFO" in cam["error"], cam
            mp4 = c.request("start_mp4", {"path": fifo.name, "section": "demo"}, check=False, timeout=30)
            assert mp4["code"] in (400, 404) and mp4["status"] == "error", mp4
            assert c.request("status")["data"]["mode"] == "idle"
        d.signal(signal.SIGTERM)
        assert d.wait(30) == 0
    finally:
        fifo.unlink()


# ---- item 5: enrollment off the dispatcher, with limits ----------------------------------------------------


def test_enrollment_runs_off_the_dispatcher_within_limits(broker: Broker, daemon_factory: Any,
                                                          sample: dict[str, Any]) -> None:
    import cv2

    enrollment = Path(sample["enrollment"])
    tag = uuid.uuid4().hex[:6]
    big = enrollment / f"big-{tag}.jpg"  # at the root: not a <section>/<student> folder of the bulk tree
    photo = cv2.imread(str(enrollment / "demo" / "S001__Barack_Obama" / "photo.jpg"))
    assert photo is not None
    cv2.imwrite(str(big), cv2.resize(photo, (3000, 3000 * photo.shape[0] // photo.shape[1])))
    bomb = enrollment / f"bomb-{tag}.png"
    huge_png(bomb, 30000)
    try:
        d = daemon_factory().start()
        assert d.proc is not None
        with broker.client(d.device) as c:
            too_many = c.request("enroll", {"section": "x", "student_id": "X1", "name": "X",
                                            "images": [big.name] * 21}, check=False)
            assert too_many["code"] == 400 and too_many["error"].startswith("images:"), too_many
            assert "enrollment.max_images" in too_many["error"]

            bombed = c.request("enroll", {"section": "x", "student_id": "X1", "name": "X",
                                          "images": [bomb.name]}, check=False, timeout=60)
            assert bombed["code"] == 400 and bombed["error"].startswith("images[0]:"), bombed
            assert "(900 MP)" in bombed["error"] and "max_image_pixels" in bombed["error"]
            assert rss_peak_mb(d.proc.pid) < 1500  # decoded it would be 2.7 GB

            done: dict[str, Any] = {}

            def enroll_twenty() -> None:
                done["resp"] = c.request("enroll", {"section": "big", "student_id": "B1", "name": "Big",
                                                    "images": [big.name] * 20}, timeout=600)
                done["at"] = time.monotonic()

            worker = threading.Thread(target=enroll_twenty)
            worker.start()
            time.sleep(1.0)
            latencies: list[float] = []
            while "resp" not in done and len(latencies) < 10:
                t = time.monotonic()
                assert c.request("status", timeout=30)["data"]["mode"] == "idle"
                latencies.append(time.monotonic() - t)
                time.sleep(0.2)
            answered_during = [lat for lat in latencies if "resp" not in done]
            worker.join(600)
            assert done["resp"]["data"]["encodings_added"] == 20
            assert len(answered_during) >= 3, "the enrollment should take longer than a few status requests"
            assert max(latencies) < 2.0, latencies  # not queued behind a multi-second enrollment
    finally:
        big.unlink()
        bomb.unlink()


# ---- item 6: the database vanishing, init refusal, corrupt database, backup ---------------------------------


def test_deleted_database_is_reported_and_not_silently_recreated(broker: Broker, daemon_factory: Any) -> None:
    d = daemon_factory().start()
    with broker.client(d.device) as c:
        sid = c.request("start_mp4", {"path": "classroom.mp4", "section": "demo"})["data"]["session"]["id"]
        c.wait_for("results", lambda r: r["session_id"] == sid, timeout=120)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{d.data / 'attendance.sqlite3'}{suffix}").unlink(missing_ok=True)
        info = c.wait_for("info", lambda i: i.get("problems"), timeout=30)
        assert "deleted" in info["problems"][0]
        c.wait_for("events", lambda e: e["type"] == "error" and "database" in e["error"], timeout=10)
        refused = c.request("start_mp4", {"path": "classroom.mp4", "section": "demo"}, check=False)
        assert refused["code"] == 500 and "database" in refused["error"]
        assert c.latest["availability"] == b"online"  # it still answers: info.problems says what is wrong
    assert "ERROR" in d.log_text() and "was deleted" in d.log_text()
    d.stop()
    # restart: the data directory shows earlier use, so no silent empty database
    before = len(d.log_text())
    d.start(wait=False)
    assert d.wait(120) == 1
    one_line_error(d.log_text()[before:], "was used before")
    assert not (d.data / "attendance.sqlite3").exists()
    d.config.write_text(d.config.read_text() + "allow_init = true\n")
    d.start()  # told to: a new, empty database
    with broker.client(d.device) as c:
        assert c.request("sections")["data"] == []


def test_corrupt_database_at_startup_is_one_line(broker: Broker, daemon_factory: Any) -> None:
    d = daemon_factory()
    (d.data / "attendance.sqlite3").write_bytes(b"this is not a database" * 100)
    d.start(wait=False)
    assert d.wait(120) == 1
    one_line_error(d.log_text(), "file is not a database")


def test_read_only_database_at_startup_is_one_line(daemon_factory: Any) -> None:
    d: DaemonProcess = daemon_factory()
    for sub in ("exports", "unknowns", "reports"):
        (d.data / sub).mkdir(exist_ok=True)
    bound = subprocess.run(["mount", "--bind", str(d.data), str(d.data)], capture_output=True, check=False)
    if bound.returncode != 0:
        pytest.skip("cannot bind-mount here")
    try:
        assert subprocess.run(["mount", "-o", "remount,ro,bind", str(d.data)], check=False).returncode == 0
        proc = cli(d.config, "run", timeout=120)
        assert proc.returncode == 1
        one_line_error(proc.stderr, "database")
    finally:
        subprocess.run(["umount", "-l", str(d.data)], check=False)


def test_backup_while_running_and_restore(broker: Broker, daemon_factory: Any, tmp_path: Path) -> None:
    d = daemon_factory().start()
    copy = tmp_path / "backups" / "attendance-backup.sqlite3"
    with broker.client(d.device) as c:
        sid = c.request("start_mp4", {"path": "long.mp4", "section": "demo"})["data"]["session"]["id"]
        c.wait_for("progress", lambda p: p["session_id"] == sid and p["present"] >= 1, timeout=60)
        proc = cli(d.config, "backup", str(copy))  # while the session writes
        assert proc.returncode == 0, proc.stderr
        c.request("stop")
        stopped = c.wait_for("results", lambda r: r["session_id"] == sid, timeout=30)
        assert stopped["status"] == "stopped" and stopped["warnings"] == []  # stopped early is not truncated
    db = sqlite3.connect(copy)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT status FROM sessions WHERE id=?", (sid,)).fetchone()[0] == "running"
    assert db.execute("SELECT COUNT(*) FROM students").fetchone()[0] == 8
    db.close()
    assert not Path(f"{copy}-wal").exists()
    # restore as docs/install.md says: stop, replace the file (and drop -wal/-shm), start
    d.stop()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{d.data / 'attendance.sqlite3'}{suffix}").unlink(missing_ok=True)
    shutil.copy(copy, d.data / "attendance.sqlite3")
    d.start()
    with broker.client(d.device) as c:
        assert c.request("sections")["data"] == [{"section": "demo", "students": 8}]
        assert c.request("session", {"session_id": sid})["data"]["status"] == "interrupted"
    missing = cli(d.config.parent / "nowhere.toml", "backup", str(tmp_path / "x.sqlite3"))
    assert missing.returncode != 0 and "Traceback" not in missing.stderr


# ---- item 7: a full disk ------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill_to(mount: Path, free_mb: float) -> None:
    free = shutil.disk_usage(mount).free / 1e6
    with (mount / "ballast").open("ab") as f:
        f.write(b"\0" * int((free - free_mb) * 1e6))


def test_full_disk_fails_the_session_and_refuses_starts(broker: Broker, daemon_factory: Any,
                                                        small_disk: Path) -> None:
    d: DaemonProcess = daemon_factory("min_free_mb = 2\n")
    d.config.write_text(d.config.read_text().replace(f'data_dir = "{d.data}"', f'data_dir = "{small_disk}"'))
    shutil.copy(d.data / "attendance.sqlite3", small_disk / "attendance.sqlite3")
    _fill_to(small_disk, 2.6)  # the export of long.mp4 needs about 2.6 MB: it fails below 1 MB
    d.start()
    with broker.client(d.device) as c:
        sid = c.request("start_mp4", {"path": "long.mp4", "section": "demo", "export": True})["data"]["session"]["id"]
        results = c.wait_for("results", lambda r: r["session_id"] == sid, timeout=180)
        assert results["status"] == "failed" and "disk almost full" in results["error"], results
        assert 0 < results["frames_processed"] < 900  # what was recorded before is kept
        assert c.wait_for("state", lambda s: s["mode"] == "idle")["busy"] is False
        refused = c.request("start_mp4", {"path": "classroom.mp4", "section": "demo"}, check=False)
        assert refused["code"] == 507 and "min_free_mb" in refused["error"], refused
        assert refused["status"] == "error"
        assert c.request("session", {"session_id": sid})["data"]["status"] == "failed"


# ---- item 8: videos that lie --------------------------------------------------------------------------------


def test_truncated_and_fps_lying_videos(broker: Broker, daemon_factory: Any, daemon_media: Path,
                                        ground_truth: dict[str, Any]) -> None:
    tag = uuid.uuid4().hex[:6]
    faststart = daemon_media / f"fs-{tag}.mp4"
    truncated = daemon_media / f"truncated-{tag}.mp4"
    lying = daemon_media / f"fps1000-{tag}.avi"
    ffmpeg("-i", str(daemon_media / "classroom.mp4"), "-c", "copy", "-movflags", "+faststart", str(faststart))
    data = faststart.read_bytes()
    truncated.write_bytes(data[: int(len(data) * 0.73)])
    # frames every 1/15 s in a container that announces 1000 fps (VFR as AVI stores it)
    ffmpeg("-i", str(daemon_media / "classroom.mp4"), "-c:v", "mpeg4", "-q:v", "2", "-fps_mode", "vfr",
           "-r", "1000", str(lying))
    try:
        d = daemon_factory().start()
        with broker.client(d.device) as c:
            sid = c.request("start_mp4", {"path": truncated.name, "section": "demo"})["data"]["session"]["id"]
            cut = c.wait_for("results", lambda r: r["session_id"] == sid, timeout=120)
            assert cut["status"] == "completed" and cut["frames_processed"] < 170
            assert any("truncated" in w for w in cut["warnings"]), cut

            sid = c.request("start_mp4", {"path": lying.name, "section": "demo"})["data"]["session"]["id"]
            timed = c.wait_for("results", lambda r: r["session_id"] == sid, timeout=120)
            assert timed["status"] == "completed"
            assert any("timestamps" in w for w in timed["warnings"]), timed
            assert sorted(p["student_id"] for p in timed["present"]) == ground_truth["present"]
            # a 12 s video: with 1000 (or a guessed 25) fps its last sighting would be at 0.2 (7.2) s
            assert 10.0 <= max(p["last_seen_s"] for p in timed["present"]) <= 12.1
            stored = c.request("session", {"session_id": sid})["data"]
            assert stored["warnings"] == timed["warnings"]
    finally:
        for f in (faststart, truncated, lying):
            f.unlink(missing_ok=True)


# ---- item 14: READY without a broker, info after a CLI enrollment, interrupted end time ----------------------


def test_ready_without_broker_and_waiting_status(broker: Broker, daemon_factory: Any,
                                                 notify: NotifySocket) -> None:
    d: DaemonProcess = daemon_factory()
    broker.stop()
    d.start(wait=False, env_extra=notify.env())
    notify.wait_for("READY=1", timeout=90)  # models loaded; the broker is down
    notify.wait_for("waiting for broker", timeout=10)
    t = time.monotonic()
    time.sleep(3)
    assert len(notify.pings(t, time.monotonic())) >= 2
    broker.start()
    notify.wait_for("STATUS=idle, connected", timeout=30)
    d.signal(signal.SIGTERM)
    assert d.wait(30) == 0


def test_info_follows_cli_enroll_bulk(broker: Broker, daemon_factory: Any, sample: dict[str, Any],
                                      tmp_path: Path) -> None:
    d = daemon_factory().start()
    bulk = tmp_path / "bulk" / "extra"
    shutil.copytree(Path(sample["enrollment"]) / "demo" / "S001__Barack_Obama", bulk / "E1__Barack_Obama")
    with broker.client(d.device) as c:
        assert c.wait_for("info", lambda i: True)["sections"] == [{"section": "demo", "students": 8}]
        proc = cli(d.config, "enroll-bulk", str(bulk.parent))
        assert proc.returncode == 0, proc.stderr
        info = c.wait_for("info", lambda i: len(i["sections"]) == 2, timeout=30)
        assert {"section": "extra", "students": 1} in info["sections"]


def test_interrupted_session_ends_at_its_last_flush(broker: Broker, daemon_factory: Any) -> None:
    d = daemon_factory().start()
    with broker.client(d.device) as c:
        sid = c.request("start_mp4", {"path": "long.mp4", "section": "demo"})["data"]["session"]["id"]
        c.wait_for("progress", lambda p: p["session_id"] == sid and p["frame"] >= 100, timeout=60)
        time.sleep(1.0)
        d.signal(signal.SIGKILL)
        d.wait(10)
        killed_at = utcnow()
    time.sleep(4.0)
    d.start()
    with broker.client(d.device) as c:
        results = c.wait_for("results", lambda r: r["session_id"] == sid, timeout=30)
    assert results["status"] == "interrupted"
    ended = parse_iso(results["ended_at"])
    assert parse_iso(results["started_at"]) <= ended <= killed_at, (results["ended_at"], killed_at)


# ---- units: frame-rate sanity, schema upgrade, init guard ---------------------------------------------------


def test_fps_metadata_sanity() -> None:
    from attendance_daemon.sessions.sources import sane_fps

    assert sane_fps(15.0) and sane_fps(240.0)
    assert not any(sane_fps(f) for f in (0.0, -1.0, float("nan"), 240.1, 1000.0, float("inf")))


def test_v1_database_upgrades_with_warnings_and_flush_time(tmp_path: Path) -> None:
    from attendance_daemon.store import Store
    from attendance_daemon.store.schema import MIGRATIONS

    db = sqlite3.connect(tmp_path / "attendance.sqlite3")
    db.executescript(f"BEGIN; {MIGRATIONS[0]}; PRAGMA user_version=1; COMMIT;")
    db.execute("INSERT INTO sessions(id, name, section, mode, source, status, started_at) "
               "VALUES ('s1', 'n', 'sec', 'mp4', 'x.mp4', 'running', '2026-01-01T00:00:00Z')")
    db.commit()
    db.close()
    store = Store(tmp_path / "attendance.sqlite3")
    assert store.mark_interrupted() == ["s1"]
    row = store.get_session("s1")
    assert row.warnings == [] and row.ended_at == "2026-01-01T00:00:00Z"  # never flushed: ended when it began
    store.close()


def test_store_refuses_to_recreate_a_used_data_directory(tmp_path: Path) -> None:
    from attendance_daemon.common.errors import StoreError
    from attendance_daemon.store import Store

    Store(tmp_path / "attendance.sqlite3").close()
    (tmp_path / "attendance.sqlite3").unlink()
    with pytest.raises(StoreError, match="used before"):
        Store(tmp_path / "attendance.sqlite3")
    fresh = tmp_path / "other"
    (fresh / "reports").mkdir(parents=True)
    (fresh / "reports" / "r.csv").write_text("x")
    with pytest.raises(StoreError, match="reports/ is not empty"):
        Store(fresh / "attendance.sqlite3")
    Store(fresh / "attendance.sqlite3", allow_init=True).close()
