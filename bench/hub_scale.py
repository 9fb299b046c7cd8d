"""Benchmark: N simulated boxes against one central mosquitto, the real attendance-hub and a real PostgreSQL.

Each simulated box is a lightweight publisher speaking the boxes' contract (availability, info and state
retained, then Results of a 30-student room, QoS 1, retained, as a daemon publishes them). Two phases per N:
  bell:  every box ends a session at the same moment (the peak of a school day), `--bells` times, 2 s apart:
         end-to-end delay from the box's publish to the row visible in PostgreSQL (its stored_at), p50/p95;
  flood: every box publishes `--flood` sessions back to back: sessions stored per second (first publish to
         the last row stored).
Hub memory: its peak resident set (VmHWM) after both phases. A fresh database and hub per N.
Then, once each (issue 19):
  restart: 10 boxes publish 50 sessions each while PostgreSQL is stopped for `--outage` seconds and started
         again: sessions stored (each once?), how long after PostgreSQL was back the last one was stored;
  large: one box floods valid 4 MiB results at `--large-rate` per second for `--large-s` seconds while another
         box publishes one small results a second: that box's delays (publish to stored), the hub's peak RSS,
         the flooding box's messages stored and refused.

    .venv/bin/python -m bench.hub_scale [--boxes 1 10 50] [--bells 5] [--flood 20] [--outage 5]
                                        [--large-s 60] [--large-rate 8.6]
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

    def session(self, template: bytes | None = None, wait: bool = False) -> None:
        sid = str(uuid.uuid4())
        payload = json.dumps(_results(self.device, sid)).encode() if template is None else \
            template.replace(b"@SESSION@", sid.encode())
        self.sent[sid] = time.time()
        info = self.client.publish(f"attendance/{self.device}/results", payload, qos=1, retain=template is None)
        if wait:
            info.wait_for_publish(60)

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


def _large(device: str, size: int) -> bytes:
    """Valid results of a room of thousands of students, `size` bytes, session id `@SESSION@`."""
    one = _results(device, "@SESSION@")
    per_student = len(json.dumps(one["present"][0])) + 2
    one["present"] = [{**one["present"][0], "student_id": f"s{i:05d}"} for i in range(int(0.98 * size) // per_student)]
    one["present_count"] = len(one["present"])
    one["total"] = len(one["present"]) + len(one["absent"])
    one["warnings"] = [""]
    one["warnings"] = ["x" * (size - len(json.dumps(one).encode()))]
    return json.dumps(one).encode()


def restart(pg: Postgres, work: Path, outage: float) -> dict[str, Any]:
    broker = Broker(work)
    dsn = pg.new_database()
    hub = HubProcess(work / "hub", broker, dsn).start()
    boxes = [Box(broker.port, f"room-{i:02d}") for i in range(10)]
    try:
        threads = [threading.Thread(target=lambda b=b: [b.session(wait=True) for _ in range(50)]) for b in boxes]
        for t in threads:
            t.start()
        _wait_rows(dsn, 50)
        pg.stop_server()
        time.sleep(outage)
        pg.start_server()
        back = time.time()
        for t in threads:
            t.join()
        _wait_rows(dsn, 500)
        time.sleep(1)
        with psycopg.connect(dsn) as db:
            rows = db.execute("SELECT device_id, session_id, extract(epoch FROM stored_at) FROM sessions").fetchall()
        sent = {(b.device, sid) for b in boxes for sid in b.sent}
        assert hub.proc is not None
        return {"published": len(sent), "stored": len(rows), "each_once": {(r[0], r[1]) for r in rows} == sent,
                "outage_s": outage, "last_stored_after_back_s": max(float(r[2]) for r in rows) - back,
                "hub_peak_rss_mb": _hwm_mb(hub.proc.pid)}
    finally:
        for b in boxes:
            b.close()
        hub.stop()
        broker.stop()


def large(pg: Postgres, work: Path, seconds: float, rate: float) -> dict[str, Any]:
    broker = Broker(work)
    dsn = pg.new_database()
    hub = HubProcess(work / "hub", broker, dsn).start()
    flood, quiet = Box(broker.port, "room-flood"), Box(broker.port, "room-quiet")
    template = _large("room-flood", 4 * 1024 * 1024 - 4096)
    stop = threading.Event()

    def flooding() -> None:
        n, started = 0, time.monotonic()
        while not stop.is_set():
            flood.session(template, wait=True)
            n += 1
            time.sleep(max(0.0, started + n / rate - time.monotonic()))

    flooder = threading.Thread(target=flooding)
    try:
        flooder.start()
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            quiet.session(wait=True)
            time.sleep(1.0)
        stop.set()
        flooder.join()
        _wait_rows(dsn, 1)
        deadline = time.monotonic() + 60
        while set(quiet.sent) - set(_stored(dsn)) and time.monotonic() < deadline:
            time.sleep(0.1)
        stored = _stored(dsn)
        delays = [stored[sid] - t for sid, t in quiet.sent.items()]
        assert hub.proc is not None
        peak = _hwm_mb(hub.proc.pid)
        with broker.client("@hub") as c:
            refused = c.request("fleet", {})["data"]["hub"]["refused"]
        return {"flood_s": seconds, "flood_messages": len(flood.sent), "flood_mb_s": rate * len(template) / 1e6,
                "flood_stored": sum(1 for sid in flood.sent if sid in stored),
                "flood_refused": refused.get("room-flood", {}), "quiet_sessions": len(delays),
                "quiet_delay_p50_s": _pct(delays, 0.5), "quiet_delay_max_s": max(delays),
                "hub_peak_rss_mb": peak}
    finally:
        stop.set()
        flood.close()
        quiet.close()
        hub.stop()
        broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boxes", type=int, nargs="+", default=[1, 10, 50])
    ap.add_argument("--bells", type=int, default=5)
    ap.add_argument("--flood", type=int, default=20)
    ap.add_argument("--outage", type=float, default=5.0, help="PostgreSQL stopped this long (0: no restart run)")
    ap.add_argument("--large-s", type=float, default=60.0, help="4 MiB flood this long (0: no flood run)")
    ap.add_argument("--large-rate", type=float, default=8.6, help="4 MiB messages per second")
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
        for name, enabled, fn in (("restart", args.outage > 0, lambda w: restart(pg, w, args.outage)),
                                  ("large", args.large_s > 0, lambda w: large(pg, w, args.large_s, args.large_rate))):
            if enabled:
                with tempfile.TemporaryDirectory() as tmp:
                    result = fn(Path(tmp))
                print(json.dumps({"run": name, **{k: round(v, 2) if isinstance(v, float) else v
                                                  for k, v in result.items()}}), flush=True)
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
