"""A box under a flood of 30 MiB requests (issue 19, item 2, the box's side): requests are bounded in bytes before
they are queued (429 at once beyond the bound, 413 over 32 MiB, both counted in the retained Info) and large ones
are read one at a time, so the daemon stays within its memory budget and answers every request once.

Real parts: mosquitto and the daemon as a process (its models loaded), requests as a dashboard sends them."""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from attendance_daemon.contract import api
from attendance_daemon.daemon.dispatcher import RequestInbox
from attendance_daemon.daemon.registry import MAX_REQUEST_BYTES
from attendance_daemon.mqtt.link import Incoming
from tests.mqtt_fixtures import Broker

FLOOD = 12  # issue 19 measured 12 requests of 30 MiB taking the daemon from 137 to 469 MB
# Read one at a time, the flood peaks at 260-320 MB on this 2-core machine (measured in CI runs and alone: the C
# allocator keeps more or less of each request's freed blocks); unbounded it reached 469 MB and grows with every
# request. 360 MB tells the two apart without failing on the allocator's spread.
BUDGET_MB = 360


def _hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _enroll_payload(size: int, transaction: str) -> bytes:
    """An `enroll` with photos, `size` bytes: the largest legitimate request a dashboard sends."""
    photo = base64.b64encode(b"\xff\xd8\xff" + bytes(3 * 1024 * 1024)).decode()
    body: dict[str, Any] = {"section": "demo", "student_id": "flood", "name": "Flood", "transaction": transaction,
                            "images_b64": []}
    images: list[dict[str, str]] = body["images_b64"]
    while len(json.dumps(body)) + len(photo) + 40 < size:
        images.append({"name": f"p{len(images)}.jpg", "data": photo})
    images.append({"name": "last.jpg", "data": photo[: size - len(json.dumps(body)) - 40]})
    return json.dumps(body).encode()


def test_request_inbox_bounds_bytes_before_queueing() -> None:
    """The inbox alone: a request that would take the waiting bytes over the bound is answered 429 at once, one
    over 32 MiB 413 at once (transaction null: never parsed), both counted; answering frees the bytes."""
    inbox = RequestInbox(max_bytes=1000)
    refused: list[api.Response] = []
    inbox.answer = lambda incoming, response: refused.append(response)

    def request(size: int, transaction: str) -> Incoming:
        body = json.dumps({"transaction": transaction, "pad": "x" * size}).encode()
        return Incoming("attendance/box/request/status", body[:size] if size > MAX_REQUEST_BYTES else body,
                        False, None, None)

    first = request(600, "t1")
    inbox.offer(first)
    inbox.offer(request(600, "t2"))
    inbox.offer(request(MAX_REQUEST_BYTES + 1, "t3"))
    assert [(r.code, r.transaction) for r in refused] == [(429, "t2"), (413, None)]
    assert refused[0].error is not None and refused[0].error.startswith("busy")
    assert inbox.refusals() == {"too_large": 1, "busy": 1} and inbox.changed.is_set()
    assert inbox.queue.get_nowait() is first and inbox.held_bytes() == len(first.payload)
    inbox.done(first)
    inbox.offer(request(600, "t4"))  # room again
    assert len(refused) == 2 and inbox.queue.qsize() == 1


def test_box_under_30_mib_request_floods_stays_within_its_budget(broker: Broker, daemon_factory: Any) -> None:
    daemon = daemon_factory().start()
    assert daemon.proc is not None
    root = f"attendance/{daemon.device}"
    answers: list[dict[str, Any]] = []
    flood = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="flooder", protocol=mqtt.MQTTv5)
    flood.on_message = lambda c, u, m: answers.append(json.loads(m.payload))
    flood.connect("127.0.0.1", broker.port)
    flood.subscribe(f"{root}/response/enroll", qos=1)
    flood.loop_start()
    payload = _enroll_payload(30 * 1024 * 1024, "flood")

    def flooding() -> None:
        for _ in range(FLOOD):
            flood.publish(f"{root}/request/enroll", payload, qos=1).wait_for_publish(60)

    flooder = threading.Thread(target=flooding)
    status_waits: list[float] = []
    try:
        with broker.client(daemon.device) as c:
            flooder.start()
            while flooder.is_alive():  # another dashboard meanwhile
                asked = time.monotonic()
                assert c.request("status", {}, timeout=120)["code"] == 200
                status_waits.append(time.monotonic() - asked)
                time.sleep(0.5)
            too_big = flood.publish(f"{root}/request/enroll", b" " * (MAX_REQUEST_BYTES + 1), qos=1)
            too_big.wait_for_publish(60)
            deadline = time.monotonic() + 120
            while len(answers) < FLOOD + 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            info = c.wait_for("info", lambda i: i.get("requests_refused", {}).get("too_large", 0) >= 1, timeout=30)
        peak = _hwm_mb(daemon.proc.pid)
        codes = [a["code"] for a in answers]
        print(f"{FLOOD} requests of 30 MiB: answers {sorted(codes)}; status answered in at most "
              f"{max(status_waits, default=0):.2f} s; daemon peak RSS {peak:.0f} MB; info {info['requests_refused']}")
        assert len(answers) == FLOOD + 1  # every request answered exactly once
        assert set(codes) <= {400, 413, 429} and all(a["error"].startswith("busy") for a in answers
                                                     if a["code"] == 429)
        assert [a["transaction"] for a in answers if a["code"] == 413] == [None]
        assert info["requests_refused"] == {"too_large": 1, "busy": codes.count(429)}
        assert peak < BUDGET_MB, f"daemon peak RSS {peak:.0f} MB"
        assert "refused on arrival" in daemon.log_text()
    finally:
        flood.loop_stop()
        flood.disconnect()
