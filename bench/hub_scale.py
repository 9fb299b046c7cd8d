"""Benchmark: N simulated boxes against one central mosquitto, the real attendance-hub and a real PostgreSQL.

Each simulated box is a lightweight publisher speaking the boxes' contract (availability, info and state
retained, then Results of a 30-student room, QoS 1, retained, as a daemon publishes them). Two phases per N:
  bell:  every box ends a session at the same moment (the peak of a school day), `--bells` times, 2 s apart:
         end-to-end delay from the box's publish to the row visible in PostgreSQL (its stored_at), p50/p95;
  flood: every box publishes `--flood` sessions back to back: sessions stored per second (first publish to
         the last row stored).
Hub memory: its peak resident set (VmHWM) after both phases. A fresh database and hub per N.

    .venv/bin/python -m bench.hub_scale [--boxes 1 10 50] [--bells 5] [--flood 20]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from tests.hub_fixtures import HubProcess, Postgres
from tests.mqtt_fixtures import Broker

STUDENTS = 30


def _results(device: str, session_id: str) -> dict[str, Any]:
    present = [f"s{i:03d}" for i in range(STUDENTS - 3)]
    return {
        "session_id": session_id, "name": f"lesson-{session_id[:8]}", "section": f"sec-{device}", "mode": "webcam",
        "source": "front", "status": "completed", "started_at": "2026-11-26T08:00:00Z",
        "ended_at": "2026-11-26T08:45:00Z", "frames_processed": 13500, "present_count": len(present),
        "device_id": device, "total": STUDENTS, "unknowns": 1,
        "present": [{"student_id": s, "name": f"Student {s}", "first_seen_s": 12.0, "last_seen_s": 2690.0,
                     "seen_s": 2600.0, "arrived_at": "2026-11-26T08:00:12+01:00",
                     "left_at": "2026-11-26T08:44:50+01:00", "late": False, "left_early": False,
                     "intervals": [{"start_s": 12.0, "end_s": 2690.0, "start": "2026-11-26T08:00:12+01:00",
                                    "end": "2026-11-26T08:44:50+01:00"}]} for s in present],
        "absent": [{"student_id": f"s{i:03d}", "name": f"Student s{i:03d}"} for i in range(STUDENTS - 3, STUDENTS)],
        "export_path": None, "export_codec": None, "error": None, "timezone": "Europe/Warsaw", "end_s": 2700.0,
        "late_after_s": 300.0, "left_early_before_s": 300.0, "warnings": [],
    }


class Box:
    def __init__(self, port: int, device: str) -> None:
        self.device = device
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-{device}", protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.sent: dict[str, float] = {}
        root = f"attendance/{device}"
        self.client.publish(f"{root}/availability", b"online", qos=1, retain=True)
        self.client.publish(f"{root}/info", json.dumps({"version": "sim", "device_id": device, "detector": "tflite",
                                                        "sections": [], "started_at": "2026-11-26T07:00:00Z",
                                                        "problems": [], "rosters": {}}).encode(), qos=1, retain=True)
        self.client.publish(f"{root}/state", json.dumps({"mode": "idle", "busy": False, "paused": False,
                                                         "session": None, "updated_at": "2026-11-26T07:00:00Z",
                                                         "device_id": device}).encode(), qos=1, retain=True)

    def session(self) -> None:
        sid = str(uuid.uuid4())
        payload = json.dumps(_results(self.device, sid)).encode()
        self.sent[sid] = time.time()
        self.client.publish(f"attendance/{self.device}/results", payload, qos=1, retain=True)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _wait_rows(dsn: str, count: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn) as db:
        while db.execute("SELECT count(*) FROM sessions").fetchone()[0] < count:  # type: ignore[index]
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} sessions not stored within {timeout:.0f} s")
            time.sleep(0.05)


def _stored(dsn: str) -> dict[str, float]:
    with psycopg.connect(dsn) as db:
        rows = db.execute("SELECT session_id, extract(epoch FROM stored_at) FROM sessions").fetchall()
    return {r[0]: float(r[1]) for r in rows}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(n: int, bells: int, flood: int, pg: Postgres, work: Path) -> dict[str, float]:
    broker = Broker(work)
    dsn = pg.new_database()
    hub = HubProcess(work / "hub", broker, dsn).start()
    boxes = [Box(broker.port, f"room-{i:02d}") for i in range(n)]
    try:
        for _ in range(bells):
            for b in boxes:
                b.session()
            time.sleep(2.0)
        _wait_rows(dsn, n * bells)
        stored = _stored(dsn)
        delays = [stored[sid] - t for b in boxes for sid, t in b.sent.items()]
        for b in boxes:
            b.sent.clear()
        start = time.time()
        threads = [threading.Thread(target=lambda b=b: [b.session() for _ in range(flood)]) for b in boxes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        _wait_rows(dsn, n * bells + n * flood)
        stored = _stored(dsn)
        last = max(stored[sid] for b in boxes for sid in b.sent)
        assert hub.proc is not None
        return {"boxes": n, "bell_p50_ms": 1000 * _pct(delays, 0.5), "bell_p95_ms": 1000 * _pct(delays, 0.95),
                "flood_sessions": n * flood, "sessions_per_s": n * flood / (last - start),
                "hub_peak_rss_mb": _hwm_mb(hub.proc.pid)}
    finally:
        for b in boxes:
            b.close()
        hub.stop()
        broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boxes", type=int, nargs="+", default=[1, 10, 50])
    ap.add_argument("--bells", type=int, default=5)
    ap.add_argument("--flood", type=int, default=20)
    args = ap.parse_args()
    pg = Postgres()
    try:
        rows = []
        for n in args.boxes:
            with tempfile.TemporaryDirectory() as tmp:
                rows.append(run(n, args.bells, args.flood, pg, Path(tmp)))
                print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in rows[-1].items()}),
                      flush=True)
        print("\n| boxes | bell: delay p50 | p95 | flood: sessions stored/s | hub peak RSS |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['boxes']} | {r['bell_p50_ms']:.0f} ms | {r['bell_p95_ms']:.0f} ms | "
                  f"{r['sessions_per_s']:.0f} ({r['flood_sessions']} sessions) | {r['hub_peak_rss_mb']:.0f} MB |")
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
