"""The shipped Node-RED dashboard (examples/node-red/flows.json) in a real Node-RED 4 with Dashboard 2, installed
from npm by scripts/node-red.sh, against mosquitto with passwords and the shipped ACL and two real daemons: a
whole session driven through the flow's command link, v5 replies and the transaction fallback, the live roster,
results recorded once across a restart of Node-RED (retained results replay), and the dashboard page rendered
(and its Pause pressed) by headless Chromium.

Set NODE_RED_SCREENSHOT=docs/img/node-red-dashboard.png to keep the screenshot (scripts/node-red-screenshot.sh)."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.mqtt_fixtures import Broker, free_port, stop_process, wait_port

REPO = Path(__file__).resolve().parent.parent
FLOWS = REPO / "examples" / "node-red" / "flows.json"
NODE_MODULES = REPO / ".cache" / "node-red" / "node_modules"
LEAVES = ("availability", "info", "state", "progress", "results", "snapshot", "events", "attendance")

SETTINGS = """module.exports = {{
    uiHost: "127.0.0.1",
    uiPort: {port},
    flowFile: "flows.json",
    credentialSecret: "node-red-test",
    contextStorage: {{default: {{module: "localfilesystem"}}, memory: {{module: "memory"}}}},
    logging: {{console: {{level: "info"}}}},
    telemetry: {{enabled: false, updateNotification: false}},
    editorTheme: {{tours: false}},
}};
"""


def _flows() -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = json.loads(FLOWS.read_text())
    return nodes


def test_flow_file_shape() -> None:
    """What the README promises about the flow, read from the file itself."""
    nodes = _flows()
    broker = next(n for n in nodes if n["type"] == "mqtt-broker")
    assert (broker["broker"], broker["port"], broker["protocolVersion"]) == ("${MQTT_HOST}", "${MQTT_PORT}", "5")
    assert broker["credentials"] == {"user": "${MQTT_USER}", "password": "${MQTT_PASSWORD}"}
    topics = {n["topic"] for n in nodes if n["type"] == "mqtt in"}
    assert topics == {f"attendance/+/{leaf}" for leaf in LEAVES} | {
        "attendance/+/reply/+", "attendance/+/response/+",
        "attendance/+/upload/+/status"}  # the console's uploads: what the box holds durably
    outs = {n["id"]: n for n in nodes if n["type"] == "mqtt out"}  # requests; the console's upload chunks
    assert set(outs) == {"att_cmd_out", "con_chunk_out"}
    for out in outs.values():
        assert out["retain"] == "false" and out["topic"] == ""  # never retained, whatever the message says
    command = next(n for n in nodes if n["id"] == "att_command")
    assert "retain: false" in command["func"] and "correlationData" in command["func"]
    widgets = {n["type"] for n in nodes if n.get("group") in {g["id"] for g in nodes if g["type"] == "ui-group"}}
    assert {"ui-dropdown", "ui-text", "ui-gauge", "ui-table", "ui-template", "ui-button"} <= widgets
    ids = {n["id"] for n in nodes}
    for n in nodes:  # every wire and link points at a node of the file
        assert all(target in ids for port in n.get("wires", []) for target in port), n["id"]
        assert all(target in ids for target in n.get("links", [])), n["id"]


def _run(cmd: list[str], what: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"{what} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def node_red_exe() -> str:
    """Node-RED and Dashboard 2 at the versions pinned in examples/node-red/package.json (npm, cached)."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.fail("node and npm are needed for the Node-RED test (Node.js 18-22; apt-get install nodejs npm)")
    out = _run(["bash", str(REPO / "scripts" / "node-red.sh"), "--with-chromium"], "scripts/node-red.sh")
    return out.splitlines()[-1]


class NodeRed:
    """Node-RED as a real process on a loopback port, its user directory (flows, credentials, context) in tmp."""

    def __init__(self, exe: str, user_dir: Path, env: dict[str, str]) -> None:
        self.exe, self.user_dir, self.env = exe, user_dir, env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        user_dir.mkdir(parents=True, exist_ok=True)
        (user_dir / "settings.js").write_text(SETTINGS.format(port=self.port))
        self.log = user_dir / "node-red.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> NodeRed:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([self.exe, "-u", str(self.user_dir), "-s", str(self.user_dir / "settings.js")],
                                         stdout=log, stderr=log, env={**os.environ, **self.env})
        wait_port(self.port, timeout=60)
        return self

    def stop(self) -> None:
        """SIGTERM: Node-RED stops the flows and writes the file context out."""
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None

    def http(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             timeout: float = 60) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def deploy(self, nodes: list[dict[str, Any]]) -> None:
        """What the editor's Import + Deploy does (credentials in the file are taken over and encrypted)."""
        self.http("POST", "/flows", nodes, {"Node-RED-Deployment-Type": "full", "Node-RED-API-Version": "v1"})

    def command(self, device: str, command: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = self.http("POST", f"/attendance-api/{device}/{command}", fields or {})
        return answer

    def state(self) -> dict[str, Any]:
        known: dict[str, Any] = self.http("GET", "/attendance-api/state", timeout=10)
        return known

    def wait(self, predicate: Callable[[dict[str, Any]], Any], timeout: float = 60, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                last = self.state()
                got = predicate(last)
                if got:
                    return got
            except (urllib.error.URLError, KeyError, TypeError, ConnectionError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; the flow knows {json.dumps(last)[:2000]}\n"
                             f"{self.log.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def auth_broker(tmp_path: Path) -> Iterator[Broker]:
    # the shipped ACL: Node-RED logs in as the dashboard user, which reads everything and may command
    broker = Broker.with_passwords(tmp_path, {"nr-room-1": "room-pw", "nr-room-2": "room-pw", "dashboard": "dash-pw"},
                                   REPO / "deploy" / "mosquitto-attendance.acl")
    yield broker
    broker.stop()


def _device(known: dict[str, Any], device: str) -> dict[str, Any]:
    dev: dict[str, Any] = known["devices"][device]
    return dev


def _browser(nr: NodeRed, out: Path, steps: list[str]) -> subprocess.Popen[str]:
    """Headless Chromium on the dashboard page (scripts/screenshot.js): waits for texts, presses buttons
    (`click:Label`) in order, then saves a PNG."""
    cmd = ["node", str(REPO / "scripts" / "screenshot.js"), f"{nr.url}/dashboard/attendance", str(out),
           "1400x1450", "90", *steps]
    env = {**os.environ, "NODE_PATH": str(NODE_MODULES)}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _until_step(browser: subprocess.Popen[str], step: str, timeout: float = 90) -> None:
    assert browser.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([browser.stdout], [], [], 1.0)
        if ready:
            line = browser.stdout.readline()
            if not line:
                errors = browser.stderr.read() if browser.stderr else ""
                raise AssertionError(f"the browser ended before {step!r}: {errors}")
            if line.strip() == f"done: {step}":
                return
    raise AssertionError(f"the page did not show {step!r} within {timeout} s")


def test_dashboard_flow_drives_a_session(tmp_path: Path, auth_broker: Broker, daemon_factory: Any,
                                         node_red_exe: str, long_truth: dict[str, Any]) -> None:
    def login(user: str) -> str:
        return f'username = "{user}"\npassword = "room-pw"\n'

    room1 = daemon_factory(device="nr-room-1", mqtt_extra=login("nr-room-1"), on=auth_broker).start(wait=False)
    # a box whose reply prefixes exclude our reply topic: it answers on R/response/<command> only
    room2 = daemon_factory(device="nr-room-2", mqtt_extra=login("nr-room-2") + 'reply_prefixes = ["elsewhere/"]\n',
                           on=auth_broker).start(wait=False)
    nr = NodeRed(node_red_exe, tmp_path / "node-red", {
        "MQTT_HOST": "127.0.0.1", "MQTT_PORT": str(auth_broker.port), "MQTT_USER": "dashboard",
        "MQTT_PASSWORD": "dash-pw", "ATTENDANCE_CLIENT": "nr-test",
        "ATTENDANCE_DEVICE": "nr-room-1"})
    try:
        nr.start()
        nr.deploy(_flows())
        nr.wait(lambda k: all(_device(k, d.device)["availability"] == "online" and _device(k, d.device)["state"]
                              for d in (room1, room2)), timeout=90, what="both boxes online")

        # a short session first, so that there are results to show and to replay
        first = nr.command(room1.device, "start_mp4", {"path": "classroom.mp4", "section": "demo",
                                                       "session_name": "warm-up"})["response"]["data"]["session"]["id"]
        nr.wait(lambda k: first in k["results"]["sessions"], timeout=120, what="the first results")

        # the page, opened in headless Chromium before the session starts: it presses Pause as soon as the
        # session shows as running with a student present; the button goes through the same command link
        with urllib.request.urlopen(f"{nr.url}/dashboard/attendance", timeout=10) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
        shot = tmp_path / "dashboard.png"
        browser = _browser(nr, shot, ["warm-up · completed", "running · node-red", "✔ present", "click:Pause",
                                      "pause → ok (correlation)", "paused · node-red"])
        try:
            _until_step(browser, "warm-up · completed")  # the page is up before the session starts
            # a whole session through the flow's command link (v5 Response Topic + Correlation Data)
            started = nr.command(room1.device, "start_mp4", {"path": "long.mp4", "section": "demo",
                                                             "session_name": "node-red"})
            response, reply = started["response"], started["reply"]
            assert response["code"] == 200, response
            assert reply["via"] == "correlation" and reply["correlation"] == response["transaction"]
            assert reply["topic"] == f"attendance/{room1.device}/reply/nr-test"
            sid = response["data"]["session"]["id"]
            _, errors = browser.communicate(timeout=120)
            assert browser.returncode == 0, errors[-3000:]
        finally:
            if browser.poll() is None:
                browser.terminate()
                browser.wait(10)
        assert shot.stat().st_size > 20_000
        if os.environ.get("NODE_RED_SCREENSHOT"):
            shutil.copy(shot, REPO / os.environ["NODE_RED_SCREENSHOT"])
        pressed = nr.state()["last_reply"]
        assert pressed["command"] == "pause" and pressed["response"]["data"]["paused"] is True
        # (asked only now: a reply to it must not race the browser's click for `last_reply`)
        busy = nr.command(room1.device, "start_mp4", {"path": "classroom.mp4", "section": "demo"})["response"]
        assert busy["code"] == 409 and busy["error"].startswith("busy")
        held = nr.wait(lambda k: _device(k, room1.device)["state"]["paused"] and _device(k, room1.device),
                       what="the paused state")
        assert held["state"]["session"]["id"] == sid
        # for boxes without the live roster, the page lists who was confirmed from student_present events
        seen = nr.wait(lambda k: (_device(k, room1.device)["seen"] or {}).get("students"), what="confirmed students")
        assert set(seen) <= set(long_truth["present"])
        assert any(e["type"] == "session_started" for e in held["events"])
        assert nr.command(room1.device, "pause", {"session_id": sid})["response"]["code"] == 409  # already paused

        # the live roster (R/attendance, retained): every student of the section, present or not yet
        roster = nr.wait(lambda k: (_device(k, room1.device)["roster"] or {}).get("session_id") == sid
                         and _device(k, room1.device)["roster"], what="the live roster")
        assert {s["student_id"] for s in roster["students"]} == set(long_truth["present"]) | set(long_truth["absent"])
        assert {s["student_id"] for s in roster["students"] if s["present"]} <= set(long_truth["present"])

        resumed = nr.command(room1.device, "resume", {"session_id": sid})["response"]
        assert resumed["code"] == 200 and resumed["data"]["paused"] is False
        results = nr.wait(lambda k: sid in k["results"]["sessions"] and k["results"]["sessions"][sid],
                          timeout=120, what="the recorded results")
        assert results["status"] == "completed" and results["device"] == room1.device
        assert sorted(results["present"]) == long_truth["present"]
        assert nr.command(room1.device, "stop")["response"]["code"] == 409  # stop while idle

        # the fallback: room2 answers on R/response/<command> only; matched by the echoed transaction
        status = nr.command(room2.device, "status")
        assert status["response"]["code"] == 200 and status["reply"]["via"] == "transaction"
        assert status["reply"]["topic"] == f"attendance/{room2.device}/response/status"
        last = nr.state()["last_reply"]
        assert last["device"] == room2.device and last["reply"]["correlation"] == status["response"]["transaction"]

        # the README's plain-client line: mosquitto_rr sets a v5 Response Topic (and waits on it)
        rr = subprocess.run(["mosquitto_rr", "-p", str(auth_broker.port), "-u", "dashboard", "-P", "dash-pw",
                             "-t", f"attendance/{room1.device}/request/status", "-e",
                             f"attendance/{room1.device}/reply/cli", "-m", "{}", "-W", "10"],
                            capture_output=True, text=True, check=True, timeout=30)
        assert json.loads(rr.stdout)["data"]["mode"] == "idle"

        # a restart: the retained results arrive again and are not recorded twice
        before = nr.state()["results"]
        assert before["order"] == [first, sid]
        nr.stop()
        nr.start()  # loads the saved flows and the encrypted credentials; no new deploy
        after = nr.wait(lambda k: k["results"]["received"] > before["received"] and k["results"],
                        what="the retained results replayed")
        assert after["order"] == [first, sid] and after["duplicates"] > before["duplicates"]
        again = nr.command(room1.device, "status")
        assert again["response"]["data"]["mode"] == "idle" and again["reply"]["via"] == "correlation"
    finally:
        nr.stop()
