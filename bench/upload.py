"""Benchmark: uploads over MQTT (issue 15: "a 1 GB upload on loopback runs at >= 20 MB/s and does not slow a
running MP4 session by more than 10 %"), through a real mosquitto to the daemon as a real process.

The file is a real video the daemon's decoder opens: a rendered classroom MP4 followed by a top-level ISO-BMFF
`free` box padding it to `--mb` MB (MB = 2**20 bytes), like tests/test_uploads.py's `padded_video`. Its last
byte is a variant number: each upload sends different bytes (a new sha256, so the box never answers "already
held"), and the hashes of all variants come from one pass over the common prefix. The client is the product's
`attendance_daemon.mqtt.uploader.upload`.

In one run, on one daemon:

1. Upload alone: MB/s from `upload_begin` to `complete` (the box's verification, sha256 and probe, included),
   and the verification alone: from the status saying every byte is durable (`verifying`) to `complete`, both
   read from the box's status messages as they arrive. Chunks re-sent by the client, the chunks the daemon
   logged as dropped, and the daemon's memory: peak VmRSS sampled every 0.1 s and VmHWM (the process's peak
   resident set, read from /proc/<pid>/status; no session has run yet, so it is the upload's).
2. An MP4 session on a rendered classroom video (`--scene-s`, default 90 s) alone: processing time from
   `start_mp4` to its results, and the fps of its final progress.
3. The same session while uploads run: an upload starts first; the session starts when ~10 % of the bytes are
   sent; when an upload completes while the session still runs, the next variant is uploaded at once, so
   uploading (sending, writing, verifying) covers the session from its start to its results. The overlap is
   checked and printed.
4. The session alone again (the machine's drift: the ratio is taken against the mean of both alone runs).

    .venv/bin/python -m bench.upload [--mb 1024] [--scene-s 90]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import struct
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attendance_daemon.config import MediaConfig
from attendance_daemon.mqtt.client import ApiClient
from attendance_daemon.mqtt.uploader import UPLOAD_LEAVES, upload
from bench.classroom_rig import classroom
from tests.mqtt_fixtures import Broker, DaemonProcess

MB = 1024 * 1024
SESSION_LEAVES = ("availability", "response/+", "state", "progress", "results")  # not `#`: no upload chunks
TARGET_MB_S = 20.0
TARGET_SLOWDOWN = 1.10


class StatusLog(ApiClient):
    """The uploading client; it also keeps every upload status the box publishes, with its arrival time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.statuses: list[tuple[float, dict[str, Any]]] = []
        super().__init__(*args, **kwargs)

    def received(self, leaf: str, payload: bytes, retain: bool) -> None:
        if leaf.startswith("upload/") and leaf.endswith("/status") and not retain:
            self.statuses.append((time.perf_counter(), json.loads(payload)))


class PaddedVideo:
    """`src` + a `free` box up to `total` bytes; the last byte names the variant (see the module docstring)."""

    def __init__(self, src: Path, dest: Path, total: int) -> None:
        self.path, self.size = dest, total
        shutil.copy(src, dest)
        pad = total - src.stat().st_size
        if pad < 9:
            raise ValueError(f"--mb too small: the video alone is {src.stat().st_size} bytes")
        block = bytes(MB)
        with open(dest, "ab") as f:
            f.write(struct.pack(">I", pad) + b"free")
            left = pad - 8
            while left:
                f.write(block[:min(left, MB)])
                left -= min(left, MB)
        self._prefix = hashlib.sha256()
        with open(dest, "rb") as f:
            left = total - 1
            while left:
                data = f.read(min(left, 4 * MB))
                self._prefix.update(data)
                left -= len(data)

    def variant(self, k: int) -> str:
        """Makes the file variant `k` (1..255); returns its sha256."""
        with open(self.path, "r+b") as f:
            f.seek(self.size - 1)
            f.write(bytes([k]))
        h = self._prefix.copy()
        h.update(bytes([k]))
        return h.hexdigest()


def _proc_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


class RssSampler:
    """Peak VmRSS of a process, sampled every 0.1 s while in its `with` block."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, _proc_kb(self.pid, "VmRSS"))
            self._stop.wait(0.1)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class UploadRun:
    name: str
    bytes: int
    start: float  # perf_counter at the call (upload_begin)
    durable: float  # the first status with every byte durable (`verifying`)
    complete: float  # the `complete` status
    chunks: int  # chunks published (re-sends included)
    needed: int  # chunks the file takes
    media: dict[str, Any] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return self.complete - self.start

    @property
    def verify_s(self) -> float:
        return self.complete - self.durable

    @property
    def mb_s(self) -> float:
        return self.bytes / MB / self.total_s


def timed_upload(client: StatusLog, video: PaddedVideo, k: int, chunk_bytes: int,
                 sent_10pct: threading.Event | None = None) -> UploadRun:
    sha = video.variant(k)
    name = f"upload-{k}.mp4"
    calls = 0

    def progress(sent: int, size: int) -> None:
        nonlocal calls
        calls += 1
        if sent_10pct is not None and sent >= size // 10:
            sent_10pct.set()

    t0 = time.perf_counter()
    media = upload(client, video.path, name=name, sha256=sha, on_progress=progress)
    t_return = time.perf_counter()
    mine = [(t, s) for t, s in list(client.statuses) if s.get("name") == name and t >= t0]
    durable = next((t for t, s in mine if s["state"] == "verifying"), None)
    complete = next((t for t, s in mine if s["state"] == "complete"), t_return)
    if durable is None:  # the status message was missed: the last one still receiving, else the return
        durable = max((t for t, s in mine if s["state"] == "receiving"), default=t_return)
    return UploadRun(name, video.size, t0, durable, complete, calls - 1, -(-video.size // chunk_bytes), media)


@dataclass
class SessionRun:
    start: float
    end: float
    fps: float
    frames: int
    present: int

    @property
    def seconds(self) -> float:
        return self.end - self.start


def run_session(c: ApiClient) -> SessionRun:
    t0 = time.perf_counter()
    sid = c.request("start_mp4", {"path": "long.mp4", "section": "demo"})["data"]["session"]["id"]
    results = c.wait_for("results", lambda r: r.get("session_id") == sid, timeout=1800)
    t1 = time.perf_counter()
    progress = c.json("progress") or {}
    fps = float(progress["fps"]) if progress.get("session_id") == sid else float("nan")
    return SessionRun(t0, t1, fps, int(results["frames_processed"]), int(results["present_count"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=1024, help="upload size in MB (2**20 bytes)")
    ap.add_argument("--scene-s", type=float, default=90.0, help="length of the session's classroom video")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        media, db = classroom(work, args.scene_s)
        video = PaddedVideo(media / "long.mp4", work / "big.mp4", args.mb * MB)
        broker = Broker(work)
        daemon = DaemonProcess(work / "d", broker, media, work, db).start()
        assert daemon.proc is not None
        pid = daemon.proc.pid
        try:
            with StatusLog("127.0.0.1", broker.port, daemon.device, leaves=UPLOAD_LEAVES) as up, \
                    ApiClient("127.0.0.1", broker.port, daemon.device, leaves=SESSION_LEAVES) as c:
                chunk_bytes = MediaConfig().chunk_bytes  # the daemon runs with the default
                idle_hwm = _proc_kb(pid, "VmHWM")
                with RssSampler(pid) as rss:
                    alone = timed_upload(up, video, 1, chunk_bytes)
                upload_hwm = _proc_kb(pid, "VmHWM")
                c.request("delete_media", {"name": alone.media["name"]})
                base1 = run_session(c)

                ten_pct, session_done = threading.Event(), threading.Event()

                def uploads() -> list[UploadRun]:
                    runs = [timed_upload(up, video, 2, chunk_bytes, ten_pct)]
                    while not session_done.is_set() and len(runs) < 250:
                        runs.append(timed_upload(up, video, 2 + len(runs), chunk_bytes))
                    return runs

                with ThreadPoolExecutor(1) as pool:
                    future = pool.submit(uploads)
                    while not ten_pct.wait(0.5):
                        if future.done():
                            future.result()  # raises what stopped it
                            raise RuntimeError("the upload ended before 10 % of it was sent")
                    try:
                        loaded = run_session(c)
                    finally:
                        session_done.set()
                    during = future.result()
                for run in during:
                    c.request("delete_media", {"name": run.media["name"]})
                base2 = run_session(c)
                final_hwm = _proc_kb(pid, "VmHWM")
        finally:
            daemon.stop()
            broker.stop()
            dropped = max([int(n) for n in re.findall(r"upload chunks dropped \((\d+) so far\)", daemon.log_text())],
                          default=0)  # the daemon logs a running count, at most every 10 s
            shutil.rmtree(work, ignore_errors=True)
    report(args, alone, rss.peak_kb, idle_hwm, upload_hwm, final_hwm, base1, base2, loaded, during, dropped)


def report(args: argparse.Namespace, alone: UploadRun, rss_peak_kb: int, idle_hwm: int, upload_hwm: int,
           final_hwm: int, base1: SessionRun, base2: SessionRun, loaded: SessionRun, during: list[UploadRun],
           dropped: int) -> None:
    print(f"upload of {args.mb} MB over a real mosquitto on loopback to the daemon process, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f} at the end")
    print(f"  alone: {alone.total_s:6.1f} s begin -> complete = {alone.mb_s:6.1f} MB/s "
          f"(sending until all durable {alone.durable - alone.start:.1f} s = "
          f"{alone.bytes / MB / (alone.durable - alone.start):.1f} MB/s; verification {alone.verify_s:.1f} s)")
    print(f"         chunks published {alone.chunks} for {alone.needed} needed "
          f"({alone.chunks - alone.needed} re-sent); daemon log: {dropped} chunks dropped (all uploads of the run)")
    print(f"  daemon memory: VmHWM idle {idle_hwm / 1024:.0f} MB, after the upload alone {upload_hwm / 1024:.0f} MB "
          f"(peak VmRSS sampled during it {rss_peak_kb / 1024:.0f} MB), after the sessions {final_hwm / 1024:.0f} MB")
    for run in during:
        print(f"  during the session: {run.name} {run.total_s:6.1f} s = {run.mb_s:6.1f} MB/s "
              f"(verification {run.verify_s:.1f} s, {run.chunks - run.needed} chunks re-sent)")
    first, last = during[0], during[-1]
    covered = loaded.start >= first.start and loaded.end <= last.complete
    print(f"  overlap: session from {loaded.start - first.start:.1f} s to {loaded.end - first.start:.1f} s after "
          f"the first upload began; {len(during)} upload(s) ran until {last.complete - first.start:.1f} s: "
          f"{'the whole session overlapped' if covered else 'NOT the whole session overlapped'}")
    print(f"MP4 session, {args.scene_s:.0f} s classroom video ({loaded.frames} frames, present {loaded.present}):")
    for label, s in (("alone (before)", base1), ("during the upload", loaded), ("alone (after)", base2)):
        print(f"  {label:>18}: {s.seconds:6.2f} s start -> results, {s.fps:6.1f} fps reported")
    baseline = statistics.mean([base1.seconds, base2.seconds])
    base_fps = statistics.mean([base1.fps, base2.fps])
    ratio = loaded.seconds / baseline
    print(f"ratio session time with upload / alone (mean of both): {ratio:.2f}x "
          f"(fps {loaded.fps / base_fps:.2f}x); upload alone {alone.mb_s:.1f} MB/s")
    print(f"target >= {TARGET_MB_S:.0f} MB/s: {'met' if alone.mb_s >= TARGET_MB_S else 'NOT met'}; "
          f"target session slowed by <= 10 %: {'met' if ratio <= TARGET_SLOWDOWN else 'NOT met'}")


if __name__ == "__main__":
    main()
