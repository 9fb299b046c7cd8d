"""Benchmark: command-to-state latency over a real mosquitto. During a running MP4 session, alternately
sends pause and resume and times each until the retained state shows the change. Target p99 < 50 ms.
The baseline in the same run is the broker round trip alone (a request answered without state change).

    .venv/bin/python -m bench.command_latency [--rounds 100]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

from bench.classroom_rig import classroom
from tests.mqtt_fixtures import Broker, DaemonProcess


def _paused_is(want: bool, state: dict[str, object]) -> bool:
    return state["paused"] is want


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        media, db = classroom(work, 120.0)
        broker = Broker(work)
        daemon = DaemonProcess(work / "d", broker, media, work, db).start()
        try:
            with broker.client(daemon.device) as c:
                baseline = []
                for _ in range(args.rounds):
                    t0 = time.perf_counter()
                    c.request("status")
                    baseline.append((time.perf_counter() - t0) * 1000)
                sid = c.request("start_mp4", {"path": "long.mp4", "section": "demo"})["data"]["session"]["id"]
                c.wait_for("progress", lambda p: p["session_id"] == sid)
                lat = []
                for i in range(args.rounds):
                    command, want = ("pause", True) if i % 2 == 0 else ("resume", False)
                    t0 = time.perf_counter()
                    c.client.publish(c.topics.request(command), json.dumps({"session_id": sid}), qos=1)
                    c.wait_for("state", partial(_paused_is, want), timeout=10)
                    lat.append((time.perf_counter() - t0) * 1000)
                c.request("stop")
        finally:
            daemon.stop()
            broker.stop()
            shutil.rmtree(work, ignore_errors=True)
    for name, xs in (("status round trip (baseline)", baseline), ("pause/resume -> state", lat)):
        print(f"{name:>30}: n={len(xs)} p50 {statistics.median(xs):6.2f} ms  p99 {_pct(xs, 0.99):6.2f} ms  "
              f"max {max(xs):6.2f} ms")
    print(f"p99 ratio command-to-state / baseline: {_pct(lat, 0.99) / _pct(baseline, 0.99):.2f}x; "
          f"target p99 < 50 ms: {'met' if _pct(lat, 0.99) < 50 else 'NOT met'}")


if __name__ == "__main__":
    main()
