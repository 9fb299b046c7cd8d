"""The box's MQTT discovery in a real Home Assistant: 2024.3.3 (the newest release that runs on Python 3.11),
installed from PyPI by scripts/home-assistant.sh, set up headlessly (onboarding, then its MQTT integration through
the config-flow REST API) on the real mosquitto, with the daemon as a real process.

Every entity the box announces is checked against the box's own retained topics: idle, during a session, paused
and resumed by HA's buttons (pressed through HA's REST API), stopped by HA, with a timetable and without it again,
after the session is deleted (the retained results emptied), and unavailable once the daemon stops. Home Assistant
must log no warning or error about the box's topics or the MQTT integration's entities all along."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from attendance_daemon.daemon.homeassistant import ENTITIES
from attendance_daemon.timetable.week import WEEKDAYS
from tests.mqtt_fixtures import Broker, RecordingClient, free_port, stop_process, wait_port

REPO = Path(__file__).resolve().parent.parent
HA_VERSION = "2024.3.3"
# Everything HA needs on a headless first start: its core config given (no location look-up), http on loopback,
# api (states, services, templates), config (the config-flow REST API), onboarding (the first user, no browser).
CONFIGURATION = """homeassistant:
  name: Test
  latitude: 0
  longitude: 0
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: DE
  currency: EUR
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
onboarding:
logger:
  default: warning
"""
# A log record's first line: `2024-03-20 10:00:00.123 WARNING (MainThread) [logger.name] message`
RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ (?P<level>[A-Z]+) \([^)]*\) \[(?P<logger>[^\]]+)\] ")
# Loggers that speak about MQTT entities (the integration, template rendering, the entity platforms)
OUR_LOGGERS = ("homeassistant.components.mqtt", "homeassistant.helpers.template", "homeassistant.helpers.entity",
               "homeassistant.components.sensor", "homeassistant.components.binary_sensor",
               "homeassistant.components.button")


@pytest.fixture(scope="module")
def hass_exe() -> str:
    """Home Assistant at the versions pinned in examples/home-assistant/requirements.txt (its own venv, cached)."""
    proc = subprocess.run(["bash", str(REPO / "scripts" / "home-assistant.sh")], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        pytest.fail(f"scripts/home-assistant.sh failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


class HomeAssistant:
    """`hass` as a real process on a loopback port, its config directory in tmp, driven over its REST API."""

    def __init__(self, exe: str, config_dir: Path) -> None:
        self.exe, self.config_dir = exe, config_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port))
        self.log = config_dir / "hass.log"
        self.token = ""
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> HomeAssistant:
        """--skip-pip: nothing is installed at run time (a missing requirement fails the set-up, and the test)."""
        with (self.config_dir / "stdout.log").open("ab") as out:
            self.proc = subprocess.Popen([self.exe, "-c", str(self.config_dir), "--skip-pip", "--log-no-color",
                                          "--log-file", str(self.log)], stdout=out, stderr=out)
        return self

    def wait_ready(self, timeout: float = 90) -> None:
        wait_port(self.port, timeout=timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.http("GET", "/api/onboarding", auth=False)
                return
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None

    def http(self, method: str, path: str, body: Any = None, auth: bool = True, form: bool = False) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
        data = None
        if form:
            data, headers["Content-Type"] = urllib.parse.urlencode(body).encode(), "application/x-www-form-urlencoded"
        elif body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw, kind = resp.read(), resp.headers.get_content_type()
        return json.loads(raw) if kind == "application/json" else raw.decode()

    def onboard(self) -> None:
        """The first user (what the onboarding page does), then its auth code exchanged for an access token."""
        client_id = self.url + "/"
        user = self.http("POST", "/api/onboarding/users", {"client_id": client_id, "name": "Test", "username": "test",
                                                           "password": "test-password", "language": "en"}, auth=False)
        token = self.http("POST", "/auth/token", {"grant_type": "authorization_code", "code": user["auth_code"],
                                                  "client_id": client_id}, auth=False, form=True)
        self.token = token["access_token"]

    def add_mqtt(self, port: int) -> None:
        """The MQTT integration on the test broker, through the config flow (what its dialog does)."""
        flow = self.http("POST", "/api/config/config_entries/flow", {"handler": "mqtt"})
        assert flow["type"] == "form" and flow["step_id"] == "broker", flow
        done = self.http("POST", f"/api/config/config_entries/flow/{flow['flow_id']}",
                         {"broker": "127.0.0.1", "port": port})
        assert done["type"] == "create_entry" and done["result"]["state"] == "loaded", done

    def states(self) -> dict[str, dict[str, Any]]:
        return {s["entity_id"]: s for s in self.http("GET", "/api/states")}

    def template(self, text: str) -> Any:
        return json.loads(self.http("POST", "/api/template", {"template": text}))

    def press(self, entity_id: str) -> None:
        self.http("POST", "/api/services/button/press", {"entity_id": entity_id})

    def problems(self, names: list[str]) -> list[str]:
        """WARNING and ERROR records (with their traceback lines) from the loggers of MQTT entities, or naming
        one of `names` (the box's topics, its entity ids)."""
        records: list[list[str]] = []
        for line in self.log.read_text(errors="replace").splitlines():
            if RECORD.match(line) or not records:
                records.append([line])
            else:
                records[-1].append(line)
        found = []
        for record in records:
            m = RECORD.match(record[0])
            text = "\n".join(record)
            if m and m["level"] in ("WARNING", "ERROR", "CRITICAL") and (
                    m["logger"].startswith(OUR_LOGGERS) or any(n in text for n in names)):
                found.append(text)
        return found


def expected(box: RecordingClient) -> dict[str, str]:
    """What each entity must show, read from the box's own retained topics (HA's state strings: unknown when the
    box has no value; an emptied topic has no value)."""
    raw = {leaf: box.latest.get(leaf) for leaf in ("state", "progress", "results")}
    state, progress, results = (json.loads(p) if p else None for p in raw.values())
    assert state is not None, "the box always has a retained state"
    unknown = "unknown"
    percent = None if progress is None else progress["percent"]
    return {
        "mode": state["mode"],
        "session": state["session"]["name"] if state["session"] else unknown,
        "progress": unknown if percent is None else str(percent),
        "present": unknown if progress is None else str(progress["present"]),
        "last_present": unknown if results is None else str(results["present_count"]),
        "last_total": unknown if results is None else str(results["total"]),
        "last_ended": unknown if results is None else results["ended_at"],
        "next_lesson": state["next_lesson"]["start"] if state["next_lesson"] else unknown,
        "busy": "on" if state["busy"] else "off",
    }


def agree(ha: HomeAssistant, ids: dict[str, str], box: RecordingClient, what: str,
          also: Callable[[dict[str, str]], bool] = lambda want: True, timeout: float = 30) -> dict[str, str]:
    """Waits until every sensor shows what the box's topics say (read at the same moment) and `also` holds;
    fails with both sides otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        want = expected(box)
        states = ha.states()
        shown = {key: states[ids[key]]["state"] for key in want}
        if shown == want and also(want):
            return shown
        if time.monotonic() > deadline:
            diff = {k: (shown[k], want[k]) for k in want if shown[k] != want[k]}
            pytest.fail(f"{what}: Home Assistant shows (shown, box) {diff or shown}")
        time.sleep(0.2)


@pytest.fixture
def home_assistant(hass_exe: str, tmp_path: Path) -> Iterator[HomeAssistant]:
    ha = HomeAssistant(hass_exe, tmp_path / "ha").start()
    yield ha
    ha.stop()


def test_real_home_assistant_shows_the_box(home_assistant: HomeAssistant, broker: Broker,
                                           daemon_factory: Any) -> None:
    ha = home_assistant
    d = daemon_factory()
    d.config.write_text(d.config.read_text() + '[attendance]\ntimezone = "UTC"\n')
    d.start()  # meanwhile HA starts up
    ha.wait_ready()
    ha.onboard()
    assert ha.http("GET", "/api/config")["version"] == HA_VERSION  # the release this test is about
    ha.add_mqtt(broker.port)

    # one HA device with exactly the announced entities, found by their names (has_entity_name: device + entity)
    device_name = f"Attendance {d.device}"
    names = {f"{device_name} {e.name}": e.key for e in ENTITIES}
    deadline = time.monotonic() + 30
    while len(ids := {names[s["attributes"].get("friendly_name")]: eid for eid, s in ha.states().items()
                      if s["attributes"].get("friendly_name") in names}) < len(ENTITIES):
        assert time.monotonic() < deadline, f"entities in HA: {sorted(ids)}"
        time.sleep(0.2)
    assert sorted(ha.template("{{ integration_entities('mqtt') | tojson }}")) == sorted(ids.values())
    assert sorted(ha.template(f"{{{{ device_entities(device_id('{ids['mode']}')) | tojson }}}}")) \
        == sorted(ids.values())
    buttons = {e.key: ids[e.key] for e in ENTITIES if e.component == "button"}
    assert all(eid.startswith("button.") for eid in buttons.values())

    with broker.client(d.device) as box:
        box.wait_for("state", lambda s: s["mode"] == "idle", timeout=10)
        shown = agree(ha, ids, box, "idle, a fresh box")
        assert shown["session"] == shown["next_lesson"] == shown["last_ended"] == "unknown"  # not `None`
        assert all(ha.states()[eid]["state"] == "unknown" for eid in buttons.values())  # never pressed

        sid = box.request("start_mp4", {"path": "long.mp4", "section": "demo"})["data"]["session"]["id"]
        box.wait_for("progress", lambda p: p["session_id"] == sid and p["frame"] > 0)
        agree(ha, ids, box, "a running session", lambda want: want["session"] != "unknown")
        ha.press(buttons["pause"])
        box.wait_for("state", lambda s: s["paused"], timeout=30)
        agree(ha, ids, box, "paused by HA's Pause", lambda want: want["mode"] != "idle")
        ha.press(buttons["resume"])
        box.wait_for("state", lambda s: s["busy"] and not s["paused"], timeout=30)
        agree(ha, ids, box, "resumed by HA's Resume")
        ha.press(buttons["stop"])
        results = box.wait_for("results", lambda r: r["session_id"] == sid, timeout=60)
        assert results["status"] == "stopped"
        box.wait_for("state", lambda s: s["mode"] == "idle", timeout=30)
        shown = agree(ha, ids, box, "after the session")
        assert shown["last_ended"] == results["ended_at"] and shown["session"] == "unknown"
        states = ha.states()
        for key, eid in buttons.items():  # a pressed button shows when it was pressed
            assert datetime.fromisoformat(states[eid]["state"]) > datetime.now(UTC) - timedelta(minutes=5), key

        # a timetable gives a next lesson (two days ahead: it does not start here); emptied, there is none again
        day = datetime.now(UTC) + timedelta(days=2)
        lesson = {"lesson_id": "ha", "weekday": WEEKDAYS[day.weekday()], "start": "12:00", "end": "13:00",
                  "section": "demo"}
        box.request("schedule_set", {"lessons": [lesson]})
        box.wait_for("state", lambda s: s["next_lesson"] is not None)
        assert agree(ha, ids, box, "with a timetable")["next_lesson"].startswith(day.date().isoformat())
        box.request("schedule_set", {"lessons": []})
        box.wait_for("state", lambda s: s["next_lesson"] is None)
        assert agree(ha, ids, box, "timetable emptied")["next_lesson"] == "unknown"

        # the only finished session deleted: the box empties its retained results
        box.request("delete_session", {"session_id": sid})
        deadline = time.monotonic() + 30
        while box.latest.get("results") != b"":
            assert time.monotonic() < deadline, "the retained results were not emptied"
            time.sleep(0.1)
        shown = agree(ha, ids, box, "results emptied")
        assert shown["last_present"] == shown["last_total"] == shown["last_ended"] == "unknown"

    d.stop()  # a clean stop publishes availability offline
    deadline = time.monotonic() + 30
    while True:
        states = ha.states()
        shown = {k: states[eid]["state"] for k, eid in ids.items()}
        if set(shown.values()) == {"unavailable"}:
            break
        assert time.monotonic() < deadline, f"after the daemon stopped: {shown}"
        time.sleep(0.2)

    problems = ha.problems([d.device, f"attendance/{d.device}", *ids.values()])
    assert not problems, "Home Assistant logged:\n" + "\n".join(problems)
