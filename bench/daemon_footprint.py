"""Benchmark: the daemon's memory (daemon + encoder child, RSS) idle and during a session of the 1080p room of 36,
and its start-up time (process start to `online` on a real mosquitto), for this tree and a baseline revision in
the same run (default: the commit before the recognition work, so "no slower than before" is a measurement).

    .venv/bin/python -m bench.daemon_footprint [--baseline 8853c02]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from attendance_daemon.demo.faces import build_people
from attendance_daemon.demo.scenarios import scenario_set
from tests.mqtt_fixtures import Broker, DaemonProcess

from .accuracy import CACHE, scenario_video
from .pipeline_vs_naive import ROOM

REPO = Path(__file__).resolve().parent.parent


def _rss_mb(pid: int) -> float:
    """RSS of a process and all its descendants, in MB."""
    total = 0.0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")) / 1024
        for task in Path(f"/proc/{p}/task").iterdir():
            children = task / "children"
            if children.exists():
                pids += [int(c) for c in children.read_text().split()]
    return total


_SEED = """
import json, sys
from pathlib import Path
try:
    from attendance_daemon.roster.enrollment import Enroller
except ImportError:  # a baseline from before the domain packages (the module was attendance_daemon.enrollment)
    from attendance_daemon.enrollment import Enroller
from attendance_daemon.store import Store
store = Store(Path(sys.argv[1]))
for section, sid, name, photo in json.loads(sys.argv[2]):
    Enroller(store).enroll(section, sid, name, [Path(photo)])
store.close()
"""


def seed(code: Path, db: Path, people: list[tuple[str, str, str, str]]) -> None:
    """The section enrolled by `code` itself (its schema version is the one its daemon expects)."""
    subprocess.run([sys.executable, "-c", _SEED, str(db), json.dumps(people)], check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(code), "PYTHONSAFEPATH": "1"})


def measure(code: Path, work: Path, media: Path, db: Path) -> dict[str, float]:
    work.mkdir(parents=True)
    broker = Broker(work)
    daemon = DaemonProcess(work / "d", broker, media, work, db)
    try:
        t0 = time.perf_counter()
        daemon.start(env_extra={"PYTHONPATH": str(code), "PYTHONSAFEPATH": "1"})  # not the cwd: this tree
        startup = time.perf_counter() - t0
        assert daemon.proc is not None
        pid = daemon.proc.pid
        time.sleep(2)
        idle = _rss_mb(pid)
        peak = idle
        with broker.client(daemon.device) as c:
            sid = c.request("start_mp4", {"path": "room.mp4", "section": "room"})["data"]["session"]["id"]
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                peak = max(peak, _rss_mb(pid))
                if (c.json("results") or {}).get("session_id") == sid:
                    break
                time.sleep(0.2)
            results = c.wait_for("results", lambda r: r.get("session_id") == sid, timeout=60)
    finally:
        daemon.stop()
        broker.stop()
    return {"startup_s": startup, "idle_mb": idle, "session_mb": peak, "present": float(results["present_count"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default="8853c02", help="git revision to compare with")
    args = ap.parse_args()
    people = build_people(CACHE / "faces")
    sc = next(s for s in scenario_set(people) if s.name == ROOM)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        media = work / "media"
        media.mkdir()
        shutil.copy(scenario_video(sc, ",".join(p.key for p in people)), media / "room.mp4")
        enrolled = [("room", p.student_id, p.name, str(p.enroll)) for p in sc.enrolled]
        old = work / "baseline"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(old), args.baseline],
                       check=True, capture_output=True)
        try:
            rows: dict[str, dict[str, float]] = {}
            for label, code in ((f"baseline {args.baseline}", old), ("this tree", REPO)):
                db = work / f"seed-{len(rows)}.sqlite3"
                seed(code, db, enrolled)
                rows[label] = measure(code, work / label.replace(" ", "_"), media, db)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], check=False)
    print(f"daemon + encoder child, room of 36 faces 1080p (10 s), {os.cpu_count()} cores")
    print("| | start-up to online | RSS idle | RSS peak in a session | present |")
    print("|---|---|---|---|---|")
    for label, r in rows.items():
        print(f"| {label} | {r['startup_s']:.1f} s | {r['idle_mb']:.0f} MB | {r['session_mb']:.0f} MB | "
              f"{r['present']:.0f}/8 |")
    new, base = rows["this tree"], rows[f"baseline {args.baseline}"]
    print(f"ratios this tree / baseline: start-up {new['startup_s'] / base['startup_s']:.2f}x, "
          f"session RSS {new['session_mb'] / base['session_mb']:.2f}x")


if __name__ == "__main__":
    main()
