"""The box's MQTT discovery in a real Home Assistant: 2024.3.3 (the newest release that runs on Python 3.11),
installed from PyPI by scripts/home-assistant.sh, set up headlessly (onboarding, then its MQTT integration through
the config-flow REST API) on the real mosquitto, with the daemon as a real process.

Every entity the box announces is checked against the box's own retained topics: idle; with a video uploaded (the
Video select offers it); its controls used through HA's REST API (a section and a video selected, a session name
set, export turned on); a session started by HA's Start video, paused, resumed and stopped by its buttons; one
started by Start camera (a declared camera that is a recorded file) and stopped; the session name cleared; the
chosen video deleted (the choice cleared, the select without it); with a timetable and without it again; after
the sessions are deleted (the retained results emptied); unavailable once the daemon stops; the same choices after
it restarts; every entity removed once it runs with `homeassistant.enabled = false`. Home Assistant must log no
warning or error about the box's topics or the MQTT integration's entities all along."""

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
from attendance_daemon.mqtt.client import ApiClient
from attendance_daemon.mqtt.uploader import UPLOAD_LEAVES, upload
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
               "homeassistant.components.button", "homeassistant.components.select",
               "homeassistant.components.text", "homeassistant.components.switch")


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

    def call(self, domain: str, service: str, entity_id: str, **data: Any) -> None:
        """A service call (what a dashboard card does): select_option, text set_value, switch turn_on ..."""
        self.http("POST", f"/api/services/{domain}/{service}", {"entity_id": entity_id, **data})

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
    raw = {leaf: box.latest.get(leaf) for leaf in ("state", "progress", "results", "ha/state")}
    state, progress, results, chosen = (json.loads(p) if p else None for p in raw.values())
    assert state is not None and chosen is not None, "the box always has a retained state and choices"
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
        "section": chosen["section"] or unknown,
        "video": chosen["video"] or unknown,
        "session_name": chosen["session_name"] or "",  # HA 2024.3's MQTT text has no "no value": the empty text
        "export": "on" if chosen["export"] else "off",
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


def wait(what: str, ok: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := ok()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return value


def test_real_home_assistant_shows_the_box(home_assistant: HomeAssistant, broker: Broker, daemon_factory: Any,
                                           daemon_media: Path) -> None:
    ha = home_assistant
    d = daemon_factory()
    d.config.write_text(d.config.read_text() + '[attendance]\ntimezone = "UTC"\n'
                        f'[cameras]\nroom = "{daemon_media / "long.mp4"}"\n')  # a recorded classroom as the camera
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
    assert all(eid.startswith(f"{e.component}.") for e in ENTITIES for eid in [ids[e.key]])

    with broker.client(d.device) as box:
        box.wait_for("state", lambda s: s["mode"] == "idle", timeout=10)
        box.wait_for("ha/state", lambda c: True, timeout=10)
        shown = agree(ha, ids, box, "idle, a fresh box")
        assert shown["session"] == shown["next_lesson"] == shown["last_ended"] == "unknown"  # not `None`
        assert shown["section"] == shown["video"] == "unknown" and shown["export"] == "off"
        assert all(ha.states()[eid]["state"] == "unknown" for eid in buttons.values())  # never pressed
        assert ha.states()[ids["section"]]["attributes"]["options"] == ["demo"]

        # a video in the box's library: the Video select offers it (its config republished)
        with ApiClient("127.0.0.1", broker.port, d.device, leaves=UPLOAD_LEAVES) as up:
            upload(up, daemon_media / "long.mp4", name="lesson.mp4")
        wait("the Video select offers the upload",
             lambda: ha.states()[ids["video"]]["attributes"]["options"] == ["lesson.mp4"])
        # HA's controls, as a dashboard card uses them; each choice lands on the box and comes back
        ha.call("select", "select_option", ids["section"], option="demo")
        ha.call("select", "select_option", ids["video"], option="lesson.mp4")
        ha.call("text", "set_value", ids["session_name"], value="ha-lesson")
        ha.call("switch", "turn_on", ids["export"])
        chosen = box.wait_for("ha/state", lambda c: c["export"], timeout=10)
        assert (chosen["section"], chosen["video"], chosen["session_name"]) == ("demo", "lesson.mp4", "ha-lesson")
        agree(ha, ids, box, "choices made in HA", lambda want: want["export"] == "on")

        ha.press(buttons["start_video"])
        session = box.wait_for("state", lambda s: s["busy"], timeout=30)["session"]
        assert (session["name"], session["source"], session["export"], session["started_by"]) == \
            ("ha-lesson", "lesson.mp4", True, "homeassistant")
        sid = session["id"]
        box.wait_for("progress", lambda p: p["session_id"] == sid and p["frame"] > 0)
        agree(ha, ids, box, "a session started by HA's Start video", lambda want: want["session"] == "ha-lesson")
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

        ha.press(buttons["start_camera"])  # the default camera; the name taken, so -2
        session = box.wait_for("state", lambda s: s["busy"], timeout=30)["session"]
        assert (session["name"], session["source"], session["started_by"]) == \
            ("ha-lesson-2", "camera:room", "homeassistant")
        camera_sid = session["id"]
        box.wait_for("progress", lambda p: p["session_id"] == camera_sid and p["frame"] > 0)
        agree(ha, ids, box, "a session started by HA's Start camera", lambda want: want["progress"] == "unknown")
        ha.press(buttons["stop"])
        box.wait_for("results", lambda r: r["session_id"] == camera_sid, timeout=60)
        box.wait_for("state", lambda s: s["mode"] == "idle", timeout=30)
        agree(ha, ids, box, "after the camera session")
        states = ha.states()
        for key, eid in buttons.items():  # a pressed button shows when it was pressed
            assert datetime.fromisoformat(states[eid]["state"]) > datetime.now(UTC) - timedelta(minutes=5), key

        ha.call("text", "set_value", ids["session_name"], value="1.50")  # rendered as text: not 1.5
        box.wait_for("ha/state", lambda c: c["session_name"] == "1.50", timeout=10)
        assert agree(ha, ids, box, "a numeric session name")["session_name"] == "1.50"
        ha.call("text", "set_value", ids["session_name"], value="")  # the default name again
        ha.call("switch", "turn_off", ids["export"])
        box.wait_for("ha/state", lambda c: c["session_name"] is None and not c["export"], timeout=10)
        agree(ha, ids, box, "session name cleared, export off")
        box.request("delete_media", {"name": "lesson.mp4"})  # the chosen video goes: the choice first, then the option
        box.wait_for("ha/state", lambda c: c["video"] is None, timeout=10)
        wait("the Video select without the deleted video", lambda: ha.states()[ids["video"]]["attributes"]["options"]
             == [])
        assert agree(ha, ids, box, "the chosen video deleted")["video"] == "unknown"

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

        # the finished sessions deleted: the box empties its retained results
        box.request("delete_session", {"session_id": camera_sid})
        box.request("delete_session", {"session_id": sid})
        wait("the retained results were not emptied", lambda: box.latest.get("results") == b"")
        shown = agree(ha, ids, box, "results emptied")
        assert shown["last_present"] == shown["last_total"] == shown["last_ended"] == "unknown"
        kept = agree(ha, ids, box, "before the restart")

    d.stop()  # a clean stop publishes availability offline
    wait("all unavailable after the daemon stopped",
         lambda: {s["state"] for eid, s in ha.states().items() if eid in ids.values()} == {"unavailable"})
    d.start()  # the choices are the box's: the same after a restart
    with broker.client(d.device) as box:
        box.wait_for("ha/state", lambda c: True, timeout=10)
        box.wait_for("state", lambda s: True, timeout=10)
        assert agree(ha, ids, box, "after the daemon restarted") == kept
    d.stop()

    # disabled: every entity removed from Home Assistant
    daemon_factory(device=d.device, extra="[homeassistant]\nenabled = false\n").start()
    wait("every entity removed", lambda: not set(ids.values()) & set(ha.states())
         and ha.template("{{ integration_entities('mqtt') | tojson }}") == [])

    problems = ha.problems([d.device, f"attendance/{d.device}", *ids.values()])
    assert not problems, "Home Assistant logged:\n" + "\n".join(problems)
