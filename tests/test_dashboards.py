"""Dashboards: Home Assistant discovery (against HA's documented schema, and live with mosquitto and the daemon),
the live roster on R/attendance, and exports that play in a browser (H.264)."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from attendance_daemon.common.timeutil import iso, parse_iso
from attendance_daemon.config import HomeAssistantConfig
from attendance_daemon.contract import api
from attendance_daemon.contract.ha_api import HA_CONTROLS, HaChoices
from attendance_daemon.daemon.handlers import COMMANDS
from attendance_daemon.daemon.homeassistant import ENTITIES, discovery_messages
from attendance_daemon.media.export import VideoExporter, video_codec
from attendance_daemon.mqtt.client import ApiClient
from attendance_daemon.mqtt.topics import RETAINED, Topics
from tests.mqtt_fixtures import Broker, RecordingClient

# ---- Home Assistant's MQTT discovery schema (home-assistant.io/integrations/{sensor,binary_sensor,button,select,
# text,switch}.mqtt; in 2024.3's code the PLATFORM_SCHEMA_MODERN of components/mqtt/<component>.py, whose
# MQTT_RW_SCHEMA requires `command_topic`). Keys this project may use, with their types; the `required` ones per
# component. Full names, no abbreviations.
COMMON: dict[str, type | tuple[type, ...]] = {
    "name": str, "unique_id": str, "device": dict, "origin": dict, "availability_topic": str,
    "payload_available": str, "payload_not_available": str, "qos": int, "icon": str, "entity_category": str,
    "enabled_by_default": bool, "json_attributes_topic": str, "json_attributes_template": str, "encoding": str,
}
COMPONENTS: dict[str, tuple[set[str], dict[str, type | tuple[type, ...]]]] = {
    "sensor": ({"state_topic"}, {"state_topic": str, "value_template": str, "unit_of_measurement": str,
                                 "device_class": str, "state_class": str, "expire_after": int,
                                 "force_update": bool, "suggested_display_precision": int}),
    "binary_sensor": ({"state_topic"}, {"state_topic": str, "value_template": str, "payload_on": str,
                                        "payload_off": str, "device_class": str, "expire_after": int,
                                        "force_update": bool, "off_delay": int}),
    "button": ({"command_topic"}, {"command_topic": str, "payload_press": str, "retain": bool,
                                   "command_template": str, "device_class": str}),
    "select": ({"command_topic", "options"}, {"command_topic": str, "options": list, "state_topic": str,
                                              "value_template": str, "command_template": str, "retain": bool,
                                              "optimistic": bool}),
    "text": ({"command_topic"}, {"command_topic": str, "state_topic": str, "value_template": str,
                                 "command_template": str, "retain": bool, "optimistic": bool, "min": int,
                                 "max": int, "mode": str, "pattern": str}),
    "switch": ({"command_topic"}, {"command_topic": str, "state_topic": str, "value_template": str,
                                   "payload_on": str, "payload_off": str, "state_on": str, "state_off": str,
                                   "retain": bool, "optimistic": bool, "device_class": str}),
}
HA_MAX_STATE = 255  # homeassistant.const.MAX_LENGTH_STATE_STATE: a text's `max` may not exceed it
DEVICE_KEYS = {"identifiers": list, "connections": list, "name": str, "manufacturer": str, "model": str,
               "sw_version": str, "hw_version": str, "configuration_url": str, "suggested_area": str,
               "via_device": str, "serial_number": str}
SENSOR_DEVICE_CLASSES = {"timestamp", "duration", "enum", None}  # the subset that could fit; None = none
STATE_CLASSES = {"measurement", "total", "total_increasing"}
BINARY_DEVICE_CLASSES = {"running", "occupancy", "problem", "connectivity"}
TOPIC = re.compile(r"^(?P<prefix>[^/#+]+)/(?P<component>sensor|binary_sensor|button|select|text|switch)/"
                   r"(?P<node>[a-zA-Z0-9_-]+)/(?P<object>[a-zA-Z0-9_-]+)/config$")
MODEL_OF: dict[str, type[api.Payload]] = {"state": api.State, "progress": api.Progress, "results": api.Results,
                                          "ha/state": HaChoices}
OPTIONS = {"section": ["cs101", "demo"], "video": ["lecture.mp4"]}


def test_discovery_payloads_follow_the_home_assistant_schema() -> None:
    topics = Topics("attendance", "room-1")
    messages = discovery_messages(HomeAssistantConfig(), topics, "9.9", OPTIONS)
    assert len(messages) == len(ENTITIES) == 18
    unique_ids, object_ids = set(), set()
    components = set()
    for topic, payload in messages:
        m = TOPIC.match(topic)
        assert m, topic
        assert m["prefix"] == "homeassistant" and m["node"] == "room-1"
        cfg = json.loads(payload)
        component = m["component"]
        components.add(component)
        required, specific = COMPONENTS[component]
        allowed = {**COMMON, **specific}
        assert required <= set(cfg), f"{topic}: missing {required - set(cfg)}"
        assert set(cfg) <= set(allowed), f"{topic}: keys outside HA's schema: {set(cfg) - set(allowed)}"
        for key, value in cfg.items():
            assert isinstance(value, allowed[key]), f"{topic}: {key} must be {allowed[key]}"
        assert cfg["unique_id"] not in unique_ids and m["object"] not in object_ids
        unique_ids.add(cfg["unique_id"])
        object_ids.add(m["object"])
        assert cfg["availability_topic"] == topics.of("availability")
        assert (cfg["payload_available"], cfg["payload_not_available"]) == ("online", "offline")
        device = cfg["device"]
        assert set(device) <= set(DEVICE_KEYS) and device["identifiers"] == ["attendance-daemon_room-1"]
        assert device["sw_version"] == "9.9" and device["model"] and device["name"]
        assert cfg["origin"]["name"] == "attendance-daemon"
        if component == "button":
            command = cfg["command_topic"].removeprefix(f"{topics.root}/request/")
            assert cfg["command_topic"] == topics.request(command) and command in COMMANDS
            assert cfg["retain"] is False  # the daemon refuses retained requests
            COMMANDS[command][0].model_validate_json(cfg["payload_press"])  # a valid request body
        else:
            leaf = cfg["state_topic"].removeprefix(f"{topics.root}/")
            assert leaf in (*RETAINED, "ha/state") and cfg["state_topic"] == topics.of(leaf)
            fields = re.findall(r"value_json\.(\w+)", cfg["value_template"])
            assert fields and all(f in MODEL_OF[leaf].model_fields for f in fields), cfg["value_template"]
            if component in ("select", "text", "switch"):  # the controls: choices on R/ha/state, sets on .../set
                assert leaf == "ha/state" and m["object"] in HA_CONTROLS and m["object"] in fields
                assert cfg["command_topic"] == topics.ha_set(m["object"]) and cfg["retain"] is False
                assert "value_json is defined" in cfg["value_template"]  # R/ha/state is emptied when disabled
            if component == "select":
                assert cfg["options"] == OPTIONS[m["object"]] and "'None'" in cfg["value_template"]
            elif component == "text":
                assert 0 <= cfg["min"] <= cfg["max"] <= HA_MAX_STATE and cfg["mode"] in ("text", "password")
                pattern = re.compile(cfg["pattern"])  # HA: pattern_cmp.match, on the set and on the state
                assert pattern.match("") and pattern.match("cs101-monday") and pattern.match("a" * 64)
                assert not pattern.match("bad name") and not pattern.match("-x") and not pattern.match("a" * 65)
            elif component == "switch":
                assert (cfg["payload_on"], cfg["payload_off"]) == ("ON", "OFF") and "'None'" in cfg["value_template"]
            elif component == "sensor":
                assert cfg.get("device_class") in SENSOR_DEVICE_CLASSES
                assert cfg.get("state_class", "measurement") in STATE_CLASSES
            else:
                assert cfg["device_class"] in BINARY_DEVICE_CLASSES and "'ON'" in cfg["value_template"]
    assert components == set(COMPONENTS)
    assert object_ids >= {"mode", "session", "progress", "present", "last_present", "last_total",
                          "last_ended", "next_lesson", "busy", "pause", "resume", "stop", "section", "video",
                          "session_name", "export", "start_camera", "start_video"}
    starts = [json.loads(p) for t, p in messages if t.endswith(("/start_camera/config", "/start_video/config"))]
    assert sorted(json.loads(b["payload_press"])["source"] for b in starts) == ["camera", "video"]
    assert all(json.loads(b["payload_press"])["client"] == "homeassistant" for b in starts)  # -> started_by
    off = discovery_messages(HomeAssistantConfig(enabled=False, prefix="ha"), topics, "9.9", OPTIONS)
    assert [t for t, _ in off] == [t.replace("homeassistant/", "ha/", 1) for t, _ in messages]
    assert all(p == b"" for _, p in off)


class Sniffer:
    """A plain paho subscriber that keeps the latest payload and retain flag per topic."""

    def __init__(self, port: int, pattern: str, username: str | None = None, password: str | None = None) -> None:
        self.got: dict[str, tuple[bytes, bool]] = {}
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_connect = lambda c, *a: c.subscribe(pattern, qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = lambda c, u, m: self.got.__setitem__(m.topic, (bytes(m.payload), bool(m.retain)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._subscribed.wait(10)

    def settle(self, count: int, timeout: float = 30.0) -> dict[str, tuple[bytes, bool]]:
        deadline = time.monotonic() + timeout
        while len(self.got) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # nothing more should come
        return dict(self.got)

    def press(self, topic: str, payload: str, retain: bool, qos: int) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_home_assistant_discovery_live(broker: Broker, daemon_factory: Any) -> None:
    d = daemon_factory().start()
    ha = Sniffer(broker.port, "homeassistant/#")
    try:
        configs = ha.settle(len(ENTITIES))
        assert len(configs) == len(ENTITIES), sorted(configs)
        assert all(retained for _, retained in configs.values())  # delivered from the broker's retained store
        assert all(f"/{d.device}/" in t for t in configs)
        buttons = {t.split("/")[3]: json.loads(p) for t, (p, _) in configs.items() if t.split("/")[1] == "button"}
        with broker.client(d.device) as c:
            sid = c.request("start_mp4", {"path": "long.mp4", "section": "demo"})["data"]["session"]["id"]
            for name, want in (("pause", lambda s: s["paused"]), ("resume", lambda s: not s["paused"])):
                b = buttons[name]
                ha.press(b["command_topic"], b["payload_press"], b["retain"], b["qos"])  # what HA does on a press
                assert c.wait_for("state", want, timeout=30)["session"]["id"] == sid
            b = buttons["stop"]
            ha.press(b["command_topic"], b["payload_press"], b["retain"], b["qos"])
            assert c.wait_for("results", lambda r: r["session_id"] == sid, timeout=60)["status"] == "stopped"
            assert c.wait_for("state", lambda s: s["mode"] == "idle")["busy"] is False
    finally:
        ha.close()
    d.stop()
    # disabled in the config: the daemon removes the configs it published before
    daemon_factory(device=d.device, extra="[homeassistant]\nenabled = false\n").start()
    time.sleep(1.0)
    late = Sniffer(broker.port, "homeassistant/#")
    try:
        assert late.settle(1, timeout=2.0) == {}
    finally:
        late.close()


class TimedClient(RecordingClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.times: list[tuple[float, str, bytes]] = []
        super().__init__(*args, **kwargs)

    def received(self, leaf: str, payload: bytes, retain: bool) -> None:
        super().received(leaf, payload, retain)
        self.times.append((time.monotonic(), leaf, payload))


def test_live_roster(broker: Broker, daemon_factory: Any, long_truth: dict[str, Any]) -> None:
    d = daemon_factory().start()
    with TimedClient("127.0.0.1", broker.port, d.device) as c:
        state = c.request("start_mp4", {"path": "long.mp4", "section": "demo", "session_name": "roster"})["data"]
        sid, started = state["session"]["id"], state["session"]["started_at"]
        mid = c.wait_for("attendance", lambda r: r["session_id"] == sid and any(s["present"] for s in r["students"]),
                         timeout=120)
        api.LiveRoster.model_validate(mid)
        assert mid["final"] is False and mid["device_id"] == d.device and mid["section"] == "demo"
        assert len(mid["students"]) == 8  # the whole roster, present or not
        present = {s["student_id"] for s in mid["students"] if s["present"]}
        assert present <= set(long_truth["present"])
        for s in mid["students"]:
            if s["first_seen_s"] is None:
                assert (s["present"], s["seen_s"], s["last_seen_s"], s["first_seen_at"], s["last_seen_at"]) == \
                       (False, 0.0, None, None, None)
            else:
                assert s["first_seen_at"] == iso(parse_iso(started) + timedelta(seconds=s["first_seen_s"]))
                assert s["last_seen_s"] >= s["first_seen_s"] and s["seen_s"] > 0
        # a dashboard opened mid-lesson sees it at once (retained)
        with broker.client(d.device) as late:
            assert late.wait_for("attendance", lambda r: r["session_id"] == sid, timeout=5)["final"] is False
        c.request("stop")
        final = c.wait_for("attendance", lambda r: r["session_id"] == sid and r["final"], timeout=30)
        results = c.wait_for("results", lambda r: r["session_id"] == sid)
        roster_present = {s["student_id"]: s for s in final["students"] if s["present"]}
        assert set(roster_present) == {p["student_id"] for p in results["present"]}
        for p in results["present"]:
            assert abs(roster_present[p["student_id"]]["seen_s"] - p["seen_s"]) <= 0.01
        during = [t for t, leaf, payload in c.times if leaf == "attendance" and not json.loads(payload)["final"]]
        assert len(during) >= 2
        assert min(b - a for a, b in itertools.pairwise(during)) >= 0.8  # at most once per second (+ delivery jitter)
    with broker.client(d.device) as later:  # kept retained after the lesson
        kept = later.wait_for("attendance", lambda r: True, timeout=5)
        assert kept["session_id"] == sid and kept["final"] is True


# ---- exports ------------------------------------------------------------------------------------------------


def _ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=codec_name,pix_fmt,width,height,nb_frames", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    stream: dict[str, Any] = json.loads(out)["streams"][0]
    return stream


def _frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_exporter_h264_with_ffmpeg_and_mp4v_without(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (49, 65, 3), dtype=np.uint8) for _ in range(10)]  # odd size on purpose
    for ffmpeg, codec in (("auto", "h264"), (None, "mp4v")):
        path = tmp_path / f"{codec}.mp4"
        ex = VideoExporter(path, 5.0, (65, 49), ffmpeg=ffmpeg)
        for f in frames:
            ex.write(f)
        ex.close()
        assert ex.codec == codec and video_codec(path) == codec
        assert _frames(path) == 10
    assert _ffprobe(tmp_path / "h264.mp4")["pix_fmt"] == "yuv420p"
    assert video_codec(tmp_path / "missing.mp4") is None


def test_daemon_export_is_h264_and_plays(broker: Broker, daemon_factory: Any) -> None:
    d = daemon_factory().start()
    with ApiClient("127.0.0.1", broker.port, d.device) as c:  # the product client, no test log
        sid = c.request("start_mp4", {"path": "classroom.mp4", "section": "demo", "export": True})["data"][
            "session"]["id"]
        results = c.wait_for("results", lambda r: r["session_id"] == sid, timeout=120)
        assert not hasattr(c, "messages")
        assert set(c.latest) <= {*RETAINED, "ha/state", "events", "request/start_mp4", "response/start_mp4"}
    assert results["export_codec"] == "h264"
    path = Path(results["export_path"])
    stream = _ffprobe(path)
    assert (stream["codec_name"], stream["pix_fmt"], stream["width"], stream["height"]) == \
           ("h264", "yuv420p", 1280, 720)
    data = path.read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")  # +faststart: a browser can play while downloading
    assert _frames(path) >= 50  # 12 s at the analysed 5 fps
