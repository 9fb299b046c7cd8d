"""Many rooms (docs/fleet.md): boxes bridged to a central mosquitto, attendance-hub on a real PostgreSQL.

Real parts throughout: mosquitto brokers with the bridge config that `deploy/install.sh --central` renders
(attendance_daemon.mqtt.bridge), the daemons and the hub as processes, PostgreSQL from Debian's package."""

from __future__ import annotations

import base64
import io
import json
import shutil
import time
from pathlib import Path
from typing import Any

import psycopg
from pypdf import PdfReader

from attendance_daemon.mqtt.bridge import BridgeSpec, box_roster_topic, render
from tests.hub_fixtures import HubProcess, Postgres
from tests.hub_fixtures import results_payload as _results
from tests.mqtt_fixtures import Broker


def _central(tmp: Path) -> Broker:
    """The central broker: persistent (a restart keeps retained messages and the hub's session)."""
    work = tmp / "central"
    work.mkdir(parents=True, exist_ok=True)
    return Broker(work, extra=f"persistence true\npersistence_location {work}/\nautosave_interval 1\n")


def _box_broker(tmp: Path, name: str, device: str, central: Broker) -> Broker:
    work = tmp / f"broker-{name}"
    work.mkdir(parents=True, exist_ok=True)
    return Broker(work, extra=render(BridgeSpec(device, f"127.0.0.1:{central.port}", restart_timeout=(1, 2))))


def _rows(dsn: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as db:
        return db.execute(sql, args).fetchall()


def _until(what: str, fn: Any, timeout: float = 90.0) -> Any:
    """Polls `fn` until it returns something truthy (the hub writes asynchronously); no timing is asserted."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.2)


def test_hub_stores_each_session_once_and_reports_over_mqtt(tmp_path: Path, postgres: Postgres) -> None:
    """A retained replay, a bridge re-send and a hub restart never add a row; a changed payload for the same
    session is a revision, an older one is kept out; garbage is ignored and the hub keeps answering."""
    central = _central(tmp_path)
    dsn = postgres.new_database()
    hub = HubProcess(tmp_path / "hub", central, dsn).start()
    try:
        first = json.dumps(_results("aaaaaaaa-1", ["s1", "s2"], ["s3"], "2026-11-26T09:45:00Z")).encode()
        with central.client("@hub") as c:  # room-1 teaches 5a: its results count (else: quarantined)
            assert c.request("assign", {"device_id": "room-1", "section": "5a"})["data"]["assigned"] is True
        with central.client("room-1") as box:
            box.client.publish("attendance/room-1/availability", b"online", qos=1, retain=True)
            for _ in range(3):  # the retained message and two re-sends
                box.client.publish("attendance/room-1/results", first, qos=1, retain=True).wait_for_publish(5)
            for junk in (b"not json", b"[]", b'{"session_id": 3}', b"x" * 10):
                box.client.publish("attendance/room-1/results", junk, qos=1).wait_for_publish(5)
            box.client.publish("attendance/@hub/results", first, qos=1).wait_for_publish(5)  # not a device
        _until("3 deliveries", lambda: _rows(dsn, "SELECT 1 FROM sessions WHERE deliveries >= 3"))
        hub.stop()
        hub.start()  # the retained results replay to the restarted hub
        _until("4 deliveries", lambda: _rows(dsn, "SELECT 1 FROM sessions WHERE deliveries >= 4"))
        assert _rows(dsn, "SELECT device_id, session_id, revisions FROM sessions") == [("room-1", "aaaaaaaa-1", 0)]
        assert _rows(dsn, "SELECT count(*) FROM attendance")[0][0] == 3

        revised = json.dumps(_results("aaaaaaaa-1", ["s1", "s2", "s3"], [], "2026-11-26T09:46:00Z")).encode()
        stale = json.dumps(_results("aaaaaaaa-1", ["s1"], ["s2", "s3"], "2026-11-26T09:30:00Z")).encode()
        with central.client("room-1") as box:
            box.client.publish("attendance/room-1/results", revised, qos=1, retain=True).wait_for_publish(5)
            box.client.publish("attendance/room-1/results", stale, qos=1).wait_for_publish(5)
        _until("stale counted", lambda: _rows(dsn, "SELECT 1 FROM sessions WHERE deliveries >= 6"))
        assert _rows(dsn, "SELECT present_count, revisions FROM sessions") == [(3, 1)]

        with central.client("@hub") as c:
            stored = c.request("sessions", {})["data"]
            assert [(s["device_id"], s["session_id"], s["revisions"]) for s in stored] == [("room-1", "aaaaaaaa-1", 1)]
            report = c.request("student_report", {"student_id": "s3", "format": "csv"})["data"]
            assert report["rows"] == 1 and "s3,S3,True" in report["csv"]
            pdf = c.request("section_report", {"section": "5a", "format": "pdf"})["data"]
            text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(base64.b64decode(pdf["pdf"]))).pages)
            assert "Attendance of section 5a" in text and "S3" in text and pdf["rows"] == 3
            section = c.request("section_report", {"section": "5a"})["data"]
            assert sorted(r["student_id"] for r in section["rows"]) == ["s1", "s2", "s3"]
            fleet = c.request("fleet", {})["data"]
            assert [(d["device_id"], d["online"]) for d in fleet["devices"]] == [("room-1", True)]
            bad = c.request("student_report", {"student_id": "s3", "limit": "5"}, check=False)
            assert bad["code"] == 400 and "limit" in bad["error"]
            unknown = c.request("nope", {}, check=False)
            assert unknown["code"] == 404
        report = hub.cli("report", "--section", "5a")
        assert report.returncode == 0, report.stderr
        assert report.stdout.splitlines()[0].startswith("student_id,name,present")
        assert sorted(line.split(",")[0] for line in report.stdout.splitlines()[1:] if line) == ["s1", "s2", "s3"]
    finally:
        hub.stop()
        central.stop()


def _roster_version(c: Any, section: str) -> int | None:
    info = c.json("info") or {}
    entry = info.get("rosters", {}).get(section)
    return None if entry is None else int(entry["version"])


def test_three_bridged_boxes_outage_roster_and_forget(tmp_path: Path, postgres: Postgres, daemon_factory: Any,
                                                      sample: dict[str, Any], ground_truth: dict[str, Any]) -> None:
    """Three daemons, each on its own mosquitto bridged to a central one; the hub on PostgreSQL.
    A roster enrolled at the hub reaches all three (a change too), a tampered one is refused; a session run
    while the central broker is down is stored exactly once when it is back, also after the bridge re-sends;
    forget_student at the hub reaches every box."""
    central = _central(tmp_path)
    dsn = postgres.new_database()
    hub = HubProcess(tmp_path / "hub", central, dsn)
    # the hub's enrollment photos: the sample's students of the demo section
    photos = sorted(Path(sample["enrollment"], "demo").iterdir())
    hub_enroll = tmp_path / "hub" / "data" / "enrollment"
    shutil.copytree(Path(sample["enrollment"], "demo"), hub_enroll)
    hub.start()
    names = ("a", "b", "c")
    devices = {n: f"room-{n}" for n in names}
    brokers = {n: _box_broker(tmp_path, n, devices[n], central) for n in names}
    boxes = {n: daemon_factory(extra='[roster]\nsections = ["hubsec"]\n', device=devices[n], on=brokers[n])
             for n in names}
    clients: dict[str, Any] = {}
    try:
        with central.client("@hub") as h:
            first, second = (p.name for p in photos[:2])
            sid1, sid2 = (n.split("__")[0] for n in (first, second))
            one = h.request("enroll", {"section": "hubsec", "student_id": sid1, "name": "First",
                                       "images": [f"{first}/{next(Path(hub_enroll, first).iterdir()).name}"]},
                            timeout=120)["data"]
            assert one["encodings_added"] == 1 and one["roster"]["version"] == 1
            for n in names:  # the boxes teach hubsec (box a's own section too: its results count)
                assigned = h.request("assign", {"device_id": devices[n], "section": "hubsec"})["data"]
                assert assigned["roster"]["version"] == 1
            h.request("assign", {"device_id": devices["a"], "section": "demo"})
            for box in boxes.values():
                box.start(wait=False)
            for n in names:
                clients[n] = brokers[n].client(devices[n]).__enter__()
                clients[n].wait_for("availability", lambda v: v == "online", timeout=120)
            # the retained roster v1 reached all three through their bridges
            for n in names:
                clients[n].wait_for("info", lambda i: i.get("rosters", {}).get("hubsec", {}).get("version") == 1)
            # a change at the hub (from its command line this time) reaches all three
            bulk = tmp_path / "bulk" / "hubsec"
            shutil.copytree(Path(hub_enroll, second), bulk / f"{sid2}__Second")
            out = hub.cli("enroll-bulk", str(bulk.parent))
            assert out.returncode == 0, out.stderr
            two = json.loads(out.stdout.split("roster hubsec: ", 1)[1])
            assert two["version"] == 2
            hash2 = two["hash"]
            for n in names:
                info = clients[n].wait_for("info", lambda i: i.get("rosters", {}).get("hubsec", {}).get("version") == 2)
                assert info["rosters"]["hubsec"]["hash"] == hash2
                students = clients[n].request("students", {"section": "hubsec"})["data"]
                assert sorted(s["student_id"] for s in students) == sorted([sid1, sid2])
                assert [s["encodings"] for s in students] == [1, 1]
            refused = clients["a"].request("remove_student", {"section": "hubsec", "student_id": sid1}, check=False)
            assert refused["code"] == 409 and "hub" in refused["error"]

            # tampering: box c's broker gets a roster v3 whose content no longer matches its hash
            with brokers["c"].client("@hub") as local_hub:
                good = local_hub.wait_for(f"roster/{devices['c']}/hubsec", lambda r: r["version"] == 2)
                assert not [t for t in local_hub.latest if t.startswith("roster/") and devices["c"] not in t]
            tampered = {**good, "version": 3, "students": [{**good["students"][0], "name": "Mallory"}]}
            clients["c"].client.publish(box_roster_topic("attendance", devices["c"], "hubsec"),
                                        json.dumps(tampered).encode(), qos=1, retain=True).wait_for_publish(5)
            info_c = clients["c"].wait_for("info", lambda i: any("hash does not match" in p for p in i["problems"]))
            assert info_c["rosters"]["hubsec"]["version"] == 2
            names_c = [s["name"] for s in clients["c"].request("students", {"section": "hubsec"})["data"]]
            assert "Mallory" not in names_c
            assert any(json.loads(p).get("type") == "error" and "hash does not match" in json.loads(p)["error"]
                       for leaf, p, _ in clients["c"].messages if leaf == "events")

            def fleet_ready() -> dict[str, Any] | None:
                f: dict[str, Any] = h.request("fleet", {})["data"]
                ok = len(f["devices"]) == 3 and all(d["online"] and d["rosters"].get("hubsec", {}).get("version") == 2
                                                    for d in f["devices"])
                return f if ok else None

            fleet = _until("three boxes in the fleet", fleet_ready)
            assert sorted(d["device_id"] for d in fleet["devices"]) == sorted(devices.values())

            # the outage: central down, a session on box a, central back
            central.stop()
            a = clients["a"]
            started = a.request("start_mp4", {"path": "classroom.mp4", "section": "demo", "session_name": "offline"})
            session_id = started["data"]["session"]["id"]
            results = a.wait_for("results", lambda r: r["session_id"] == session_id, timeout=180)
            assert results["status"] == "completed"
            assert _rows(dsn, "SELECT count(*) FROM sessions")[0][0] == 0
        central.start()
        rows = _until("the offline session at the hub", lambda: _rows(
            dsn, "SELECT device_id, session_id, present_count, deliveries FROM sessions"))
        assert [(r[0], r[1], r[2]) for r in rows] == [(devices["a"], session_id, len(ground_truth["present"]))]
        present = sorted(r[0] for r in _rows(dsn, "SELECT student_id FROM attendance WHERE present"))
        assert present == ground_truth["present"]
        # the bridge re-sends: box a's broker restarts, the daemon republishes its retained results through it
        before = rows[0][3]
        brokers["a"].stop()  # the bridge's will: the hub sees box a offline
        _until("box a offline at the hub", lambda: _rows(
            dsn, "SELECT 1 FROM devices WHERE device_id = %s AND bridge = 'down'", devices["a"]))
        with central.client("@hub") as h:
            # boxes b and c bridge back to the restarted central broker on their own schedule (mosquitto's
            # restart_timeout back-off, longer on a loaded machine): only box a stays offline
            def fleet() -> dict[str, bool]:
                return {d["device_id"]: d["online"] for d in h.request("fleet", {})["data"]["devices"]}

            _until("boxes b and c back online", lambda: fleet()[devices["b"]] and fleet()[devices["c"]])
            assert fleet() == {devices["a"]: False, devices["b"]: True, devices["c"]: True}
        brokers["a"].start()
        _until("box a online again", lambda: _rows(
            dsn, "SELECT 1 FROM devices WHERE device_id = %s AND bridge = 'up'", devices["a"]))
        _until("the re-sent results counted", lambda: _rows(
            dsn, "SELECT 1 FROM sessions WHERE deliveries > %s", before))
        assert _rows(dsn, "SELECT count(*) FROM sessions")[0][0] == 1

        # forget at the hub: its rows anonymised, a roster without the student, the request on every box
        with central.client("@hub") as h:
            for n in names:
                clients[n].messages.clear()
            done = h.request("forget_student", {"student_id": sid1}, timeout=60)["data"]
            assert done["sections"] == ["hubsec"] and done["roster_versions"]["hubsec"] == 3
            assert sorted(done["sent_to"]) == sorted(devices.values())
            report = h.request("student_report", {"student_id": sid1})["data"]
            assert report["rows"] == []
            for n in names:
                clients[n].wait_for("info", lambda i: i.get("rosters", {}).get("hubsec", {}).get("version") == 3)
                students = clients[n].request("students", {"section": "hubsec"})["data"]
                assert [s["student_id"] for s in students] == [sid2]
                try:
                    arrived = _until(f"forget_student on box {n}'s broker", lambda n=n: [
                        json.loads(p) for leaf, p, _ in clients[n].messages if leaf == "request/forget_student"])
                except TimeoutError as exc:  # which box, and what reached its broker meanwhile
                    raise AssertionError(f"{exc}; it got {sorted({m[0] for m in clients[n].messages})}") from exc
                assert arrived[0]["student_id"] == sid1 and arrived[0]["attendance"] == "anonymise"
            # box c's problem is gone with the valid v3
            assert clients["c"].json("info")["problems"] == []
            # never mid-session: box b holds a (paused) session while a new version arrives; it applies it after
            b = clients["b"]
            b.request("start_mp4", {"path": "classroom.mp4", "section": "demo", "session_name": "held"})
            b.request("pause", {})
            v4 = h.request("publish_roster", {"section": "hubsec"})["data"]["version"]
            assert v4 == 4
            for n in ("a", "c"):
                clients[n].wait_for("info", lambda i: i.get("rosters", {}).get("hubsec", {}).get("version") == 4)
            held = b.wait_for("info", lambda i: i["rosters"]["hubsec"].get("pending") == 4)
            assert held["rosters"]["hubsec"]["version"] == 3  # staged, not applied, while the session runs
            assert b.json("state")["paused"] is True
            b.request("stop", {})
            done = b.wait_for("info", lambda i: i["rosters"]["hubsec"]["version"] == 4)
            assert "pending" not in done["rosters"]["hubsec"]
            # every box's answer came back through its bridge and is recorded (kept pending unless it is `ok`:
            # a box without the command answers 404 and gets the request again when it next comes online)
            def answered() -> list[tuple[Any, ...]] | None:
                rows = _rows(dsn, "SELECT device_id, answer->>'status', answered_at IS NOT NULL, "
                             "request ? 'student_id' FROM forget_deliveries WHERE answer IS NOT NULL")
                return rows if len(rows) == 3 else None

            answers = _until("the boxes' answers at the hub", answered)
            assert sorted(a[0] for a in answers) == sorted(devices.values())
            assert all(done == (status == "ok") and kept == (status != "ok") for _, status, done, kept in answers)
    finally:
        for c in clients.values():
            c.close()
        for box in boxes.values():
            box.stop()
        hub.stop()
        for b in brokers.values():
            b.stop()
        central.stop()


def test_bridge_through_the_shipped_acl(tmp_path: Path) -> None:
    """The rendered bridge on a box broker with deploy/'s password file and ACL: the box's topics go out,
    requests and its own rosters come in (the daemon's user may read them; another room's do not come in), a
    local dashboard cannot plant a roster, and nothing the bridge brings in goes back out (no loop)."""

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    repo = Path(__file__).resolve().parent.parent
    central = _central(tmp_path)
    box = Broker.with_passwords(tmp_path / "box", {"room-1": "pw1", "dashboard": "dash"},
                                repo / "deploy" / "mosquitto-attendance.acl", "use_username_as_clientid true\n"
                                + render(BridgeSpec("room-1", f"127.0.0.1:{central.port}", restart_timeout=(1, 2))))
    got: list[tuple[str, bytes]] = []

    def client(port: int, user: str | None = None, password: str | None = None,
               subscribe: str | None = None) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if user:
            c.username_pw_set(user, password)
        if subscribe:
            c.on_connect = lambda cl, *a: cl.subscribe(subscribe, qos=1)
            c.on_message = lambda cl, u, m: got.append((m.topic, bytes(m.payload)))
        c.connect("127.0.0.1", port)
        c.loop_start()
        return c

    device = client(box.port, "room-1", "pw1", "#")
    dashboard = client(box.port, "dashboard", "dash")
    with central.client("room-1") as at_central:
        try:
            at_central.wait_for("bridge", lambda v: v == 1)
            roster = box_roster_topic("attendance", "room-1", "5a")
            at_central.client.publish(roster, b'{"v": 1}', qos=1, retain=True).wait_for_publish(5)
            for other in (box_roster_topic("attendance", "room-2", "5a"), "attendance/@hub/roster/5a"):
                at_central.client.publish(other, b'{"v": "not yours"}', qos=1, retain=True).wait_for_publish(5)
            at_central.client.publish("attendance/room-1/request/status", b"{}", qos=1).wait_for_publish(5)
            at_central.client.publish("attendance/room-2/request/status", b"{}", qos=1).wait_for_publish(5)
            _until("request and roster at the box", lambda: {"attendance/room-1/request/status", roster}
                   <= {t for t, _ in got})
            device.publish("attendance/room-1/results", b'{"r": 1}', qos=1, retain=True).wait_for_publish(5)
            device.publish("attendance/room-1/progress", b'{"p": 1}', qos=1, retain=True).wait_for_publish(5)
            at_central.wait_for("results", lambda r: r == {"r": 1})
            dashboard.publish(roster, b'{"v": "planted"}', qos=1, retain=True).wait_for_publish(5)
            at_central.client.publish(roster, b'{"v": 2}', qos=1, retain=True).wait_for_publish(5)
            _until("roster v2 at the box", lambda: (roster, b'{"v": 2}') in got)
            assert (roster, b'{"v": "planted"}') not in got
            assert [t for t, _ in got if "/@hub/" in t] == [roster, roster]  # v1 and v2: no other room's, no legacy
            assert not any(t.startswith("attendance/room-2/") for t, _ in got)
            at_central.wait_for("results", lambda r: r == {"r": 1})
            assert "progress" not in at_central.latest  # stays on the box
            assert [leaf for leaf, _, _ in at_central.messages].count("request/status") == 1  # no echo back
        finally:
            device.disconnect()
            dashboard.disconnect()
            box.stop()
            central.stop()


def test_install_bridge_command_with_credentials(tmp_path: Path) -> None:
    """What install.sh --central runs (`python -m attendance_daemon.mqtt.bridge ...`): its output logs in to a
    central broker with passwords and deploy/central-mosquitto.acl; the box's results reach the hub's user, the
    hub's requests reach the box; values that would inject config lines are refused."""
    import subprocess
    import sys

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    repo = Path(__file__).resolve().parent.parent
    central = Broker.with_passwords(tmp_path / "central", {"room-7": "s3cret", "attendance-hub": "hubpw"},
                                    repo / "deploy" / "central-mosquitto.acl")
    cmd = [sys.executable, "-m", "attendance_daemon.mqtt.bridge", "--device-id", "room-7",
           "--central", f"127.0.0.1:{central.port}", "--username", "room-7"]
    rendered = subprocess.run([*cmd, "--password", "s3cret"], capture_output=True, text=True, check=True).stdout
    assert "cleansession false" in rendered and "topic request/# in 1 attendance/room-7/ attendance/room-7/" in rendered
    bad = subprocess.run([*cmd, "--password", "x\naddress evil:1883"], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "password" in bad.stderr
    box_dir = tmp_path / "box"
    box_dir.mkdir()
    box = Broker(box_dir, extra=rendered)
    got: list[tuple[str, bytes]] = []
    hub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    hub.username_pw_set("attendance-hub", "hubpw")
    hub.on_connect = lambda c, *a: c.subscribe("attendance/#", qos=1)
    hub.on_message = lambda c, u, m: got.append((m.topic, bytes(m.payload)))
    hub.connect("127.0.0.1", central.port)
    hub.loop_start()
    try:
        with box.client("room-7") as local:
            _until("the bridge logged in", lambda: ("attendance/room-7/bridge", b"1") in got)
            local.client.publish("attendance/room-7/results", b'{"r": 7}', qos=1, retain=True).wait_for_publish(5)
            _until("results at the hub", lambda: ("attendance/room-7/results", b'{"r": 7}') in got)
            hub.publish("attendance/room-7/request/status", b"{}", qos=1).wait_for_publish(5)
            local.wait_for("request/status", lambda v: v == {})
    finally:
        hub.disconnect()
        hub.loop_stop()
        box.stop()
        central.stop()


def test_hub_forget_scrubs_replays_and_resends_until_answered(tmp_path: Path, postgres: Postgres) -> None:
    """forget_student at the hub: the student's rows are anonymised, a later replay of old results is scrubbed
    at ingest, and a box that has not answered `ok` gets the request again when it comes back online."""
    central = _central(tmp_path)
    dsn = postgres.new_database()
    hub = HubProcess(tmp_path / "hub", central, dsn).start()
    old = json.dumps(_results("bbbbbbbb-2", ["s1", "s2"], ["s3"], "2026-11-26T09:45:00Z")).encode()
    try:
        with central.client("room-1") as box, central.client("@hub") as h:
            box.client.publish("attendance/room-1/availability", b"online", qos=1, retain=True)
            box.client.publish("attendance/room-1/results", old, qos=1, retain=True).wait_for_publish(5)
            _until("stored", lambda: _rows(dsn, "SELECT 1 FROM sessions"))
            done = h.request("forget_student", {"student_id": "s1"})["data"]
            assert done["sessions"] == 1 and done["attendance_rows"] == 1 and done["sent_to"] == ["room-1"]
            first = box.wait_for("request/forget_student", lambda r: r["student_id"] == "s1")
            assert first["attendance"] == "anonymise" and "section" not in first
            ids = [r[0] for r in _rows(dsn, "SELECT student_id FROM attendance ORDER BY student_id")]
            assert "s1" not in ids and len(ids) == 3 and any(i.startswith("forgotten-") for i in ids)
            assert "s1" not in json.dumps(_rows(dsn, "SELECT payload FROM sessions")[0][0])
            box.client.publish("attendance/room-1/results", old, qos=1).wait_for_publish(5)  # an old replay
            _until("replay counted", lambda: _rows(dsn, "SELECT 1 FROM sessions WHERE deliveries >= 2"))
            assert "s1" not in json.dumps(_rows(dsn, "SELECT payload FROM sessions")[0][0])
            # no answer yet: back online -> sent again, with the same transaction
            box.latest.pop("request/forget_student")
            box.client.publish("attendance/room-1/availability", b"offline", qos=1, retain=True)
            box.client.publish("attendance/room-1/availability", b"online", qos=1, retain=True)
            again = box.wait_for("request/forget_student", lambda r: True)
            assert again == first
            answer = {"transaction": first["transaction"], "status": "ok", "code": 200,
                      "data": {"student_id": "s1"}, "error": None}
            box.client.publish("attendance/room-1/response/forget_student", json.dumps(answer).encode(), qos=1)
            _until("answered", lambda: _rows(dsn, "SELECT 1 FROM forget_deliveries WHERE answered_at IS NOT NULL"))
            assert _rows(dsn, "SELECT request FROM forget_deliveries") == [({},)]  # the id is no longer kept
    finally:
        hub.stop()
        central.stop()


def test_hub_cli_enroll_uses_the_box_rules_and_publishes(tmp_path: Path, postgres: Postgres,
                                                         sample: dict[str, Any]) -> None:
    """`attendance-hub enroll`: a photo without a face is rejected (nothing stored or published), a good one is
    stored in PostgreSQL and published as version 1, retained, with a hash the box's check accepts."""
    from PIL import Image

    from attendance_daemon.contract.roster_message import open_roster

    central = _central(tmp_path)
    hub = HubProcess(tmp_path / "hub", central, postgres.new_database())
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), "white").save(blank)
    try:
        bad = hub.cli("enroll", "--section", "7b", "--student-id", "s1", "--name", "Ann", str(blank))
        assert bad.returncode == 1 and "no face found" in bad.stderr and "could be enrolled" in bad.stderr
        photo = next(next(Path(sample["enrollment"], "demo").iterdir()).iterdir())
        good = hub.cli("enroll", "--section", "7b", "--student-id", "s1", "--name", "Ann", str(photo))
        assert good.returncode == 0, good.stderr
        assert json.loads(good.stdout.split("roster 7b: ", 1)[1])["version"] == 1
        assigned = hub.cli("assign", "room-9", "7b")  # to the box teaching 7b, on its own topic
        assert assigned.returncode == 0 and '"version": 1' in assigned.stdout, assigned.stderr
        with central.client("@hub") as c:
            c.wait_for("roster/room-9/7b", lambda r: True)
            roster = open_roster(c.latest["roster/room-9/7b"], None)
        assert roster.version == 1 and [(s.student_id, s.name, len(s.encodings)) for s in roster.students] == [
            ("s1", "Ann", 1)]
        refused = hub.cli("enroll", "--section", "7b", "--student-id", "../x", "--name", "Ann", str(photo))
        assert refused.returncode == 1 and "student_id" in refused.stderr
    finally:
        central.stop()
