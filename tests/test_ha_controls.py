"""Home Assistant's controls on the box (daemon/ha_controls.py): the one validation of a set, what a select may
offer, the stored choices, and against the real daemon and mosquitto: sets as Home Assistant sends them, hostile
ones refused with an `error` event naming the control, both Start buttons' presses, options that follow the
media library, choices kept over a restart, and everything removed when disabled."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from attendance_daemon.common.errors import AttendanceError
from attendance_daemon.contract.ha_api import MAX_CONTROL_BYTES, MAX_SELECT_OPTIONS, HaChoices
from attendance_daemon.daemon.ha_controls import load_choices, offered, parse_set, save_choices
from attendance_daemon.daemon.homeassistant import ENTITIES
from attendance_daemon.mqtt.client import ApiClient
from attendance_daemon.mqtt.uploader import UPLOAD_LEAVES, upload
from tests.mqtt_fixtures import Broker, RecordingClient
from tests.test_dashboards import Sniffer

OPTIONS = {"section": ["cs101", "demo"], "video": ["lecture.mp4"]}


@pytest.mark.parametrize(("control", "payload", "error"), [
    ("colour", b"red", "ha/colour: unknown control (known: section, video, session_name, export)"),
    ("x" * 500, b"", "ha/" + "x" * 64 + ": unknown control"),
    ("section", b"s" * (MAX_CONTROL_BYTES + 1), f"ha/section: payload of 257 bytes; at most {MAX_CONTROL_BYTES}"),
    ("section", b"\xff\xfe", "ha/section: not UTF-8 text"),
    ("section", b"cs999", "ha/section: 'cs999' is not one of the box's sections (options: cs101, demo)"),
    ("section", b"None", "ha/section: 'None' is not one of the box's sections"),
    ("video", b"../etc/passwd", "ha/video: '../etc/passwd' is not one of the box's media library's videos"),
    ("session_name", b"bad name", "ha/session_name: must match"),
    ("session_name", b"a" * 65, "ha/session_name: must match"),
    ("export", b"yes", "ha/export: must be ON or OFF, got 'yes'"),
    ("export", b"on", "ha/export: must be ON or OFF"),
    ("export", b"", "ha/export: must be ON or OFF"),
])
def test_a_hostile_set_is_refused_naming_the_control(control: str, payload: bytes, error: str) -> None:
    with pytest.raises(AttendanceError) as exc:
        parse_set(control, payload, OPTIONS)
    assert exc.value.message.startswith(error), exc.value.message


def test_a_valid_set_gives_the_new_value() -> None:
    assert parse_set("section", b"demo", OPTIONS) == "demo"
    assert parse_set("section", b"", OPTIONS) is None  # clears
    assert parse_set("video", b"lecture.mp4", OPTIONS) == "lecture.mp4"
    assert parse_set("session_name", b"cs101-monday", OPTIONS) == "cs101-monday"
    assert parse_set("session_name", b"1.50", OPTIONS) == "1.50"  # HA shows a rendering as is (not as 1.5)
    assert parse_set("session_name", b"", OPTIONS) is None  # the default name again
    assert parse_set("export", b"ON", OPTIONS) is True and parse_set("export", b"OFF", OPTIONS) is False


def test_a_select_offers_only_what_home_assistant_shows_as_is() -> None:
    assert offered(["cs101", "none", "NONE", "1.50", "101", "s" * 256, "s" * 255]) == \
        ["cs101", "1.50", "101", "s" * 255]
    assert len(offered([f"s{i}" for i in range(MAX_SELECT_OPTIONS + 5)])) == MAX_SELECT_OPTIONS


def test_choices_are_stored_and_a_bad_file_is_no_choice(tmp_path: Path) -> None:
    path = tmp_path / "homeassistant.json"
    assert load_choices(path) == HaChoices()
    chosen = HaChoices(section="demo", video="lecture.mp4", session_name="monday", export=True)
    save_choices(path, chosen)
    assert load_choices(path) == chosen and "device_id" not in json.loads(path.read_text())
    for bad in (b"{", b'{"section": 7}', b'{"session_name": "../x"}', b'{"colour": "red"}', b"\xff"):
        path.write_bytes(bad)
        assert load_choices(path) == HaChoices()


def _configs(sniffer: Sniffer) -> dict[str, dict[str, Any]]:
    return {t.split("/")[3]: json.loads(p) for t, (p, _) in sniffer.got.items() if p}


def _errors(c: RecordingClient) -> list[str]:
    return [e["error"] for leaf, p, _ in list(c.messages) if leaf == "events"
            for e in [json.loads(p)] if e["type"] == "error"]


def test_controls_against_the_daemon(broker: Broker, daemon_factory: Any, daemon_media: Path) -> None:
    d = daemon_factory(extra=f'[cameras]\nroom = "{daemon_media / "long.mp4"}"\n').start()
    ha = Sniffer(broker.port, "homeassistant/#")
    try:
        ha.settle(len(ENTITIES))
        configs = _configs(ha)
        assert configs["section"]["options"] == ["demo"] and configs["video"]["options"] == []
        sets = {k: configs[k]["command_topic"] for k in ("section", "video", "session_name", "export")}
        starts = {k: configs[k] for k in ("start_camera", "start_video")}
        with d.broker.client(d.device) as box:
            fresh = box.wait_for("ha/state", lambda s: True, timeout=10)
            assert fresh == {"section": None, "video": None, "session_name": None, "export": False,
                             "device_id": d.device}
            press = starts["start_video"]
            ha.press(press["command_topic"], press["payload_press"], press["retain"], press["qos"])
            refused = box.wait_for("response/start_selected", lambda r: True, timeout=10)
            assert (refused["code"], refused["error"].split(":")[0]) == (400, "section")

            # the video select offers the library: an upload appears within the housekeeper's tick
            with ApiClient("127.0.0.1", broker.port, d.device, leaves=UPLOAD_LEAVES) as up:
                upload(up, daemon_media / "classroom.mp4", name="lesson.mp4")
            deadline = time.monotonic() + 10
            while _configs(ha)["video"]["options"] != ["lesson.mp4"]:
                assert time.monotonic() < deadline, _configs(ha)["video"]
                time.sleep(0.1)

            for control, value in (("section", "demo"), ("video", "lesson.mp4"), ("session_name", "ha-lesson"),
                                   ("export", "ON")):
                ha.press(sets[control], value, False, 1)  # what HA publishes on a choice
            chosen = box.wait_for("ha/state", lambda s: s["export"], timeout=10)
            assert chosen == {"section": "demo", "video": "lesson.mp4", "session_name": "ha-lesson", "export": True,
                              "device_id": d.device}
            # hostile sets: each an error event naming the control; the choices stay
            hostile = [("section", b"nope"), ("video", b"long.mp4"), ("session_name", b"../../x"),
                       ("export", b"maybe"), ("colour", b"red"), ("section", b"d" * 5000), ("video", b"\xc3\x28")]
            for control, payload in hostile:
                ha.client.publish(f"{box.topics.root}/ha/{control}/set", payload, qos=1).wait_for_publish(5)
            deadline = time.monotonic() + 10
            while len(_errors(box)) < len(hostile):
                assert time.monotonic() < deadline, _errors(box)
                time.sleep(0.1)
            assert [e.split(":")[0] for e in _errors(box)] == [f"ha/{c}" for c, _ in hostile]
            ha.press(sets["section"], "demo", True, 1)  # retained: applied once live, refused when replayed
            assert box.wait_for("ha/state", lambda s: True) == chosen and len(_errors(box)) == len(hostile)

            # Start video: the chosen library video, name and export, started by Home Assistant
            ha.press(press["command_topic"], press["payload_press"], press["retain"], press["qos"])
            session = box.wait_for("state", lambda s: s["busy"], timeout=30)["session"]
            assert (session["name"], session["source"], session["export"], session["started_by"]) == \
                   ("ha-lesson", "lesson.mp4", True, "homeassistant")
            box.request("stop")
            # Start camera: the default camera; the taken name gets -2
            cam = starts["start_camera"]
            ha.press(cam["command_topic"], cam["payload_press"], cam["retain"], cam["qos"])
            session = box.wait_for("state", lambda s: s["busy"], timeout=30)["session"]
            assert (session["name"], session["source"], session["started_by"]) == \
                   ("ha-lesson-2", "camera:room", "homeassistant")
            box.request("stop")

            # the chosen video deleted: the choice is cleared, then the select offers no video
            box.request("delete_media", {"name": "lesson.mp4"})
            assert box.wait_for("ha/state", lambda s: s["video"] is None, timeout=10)["section"] == "demo"
            deadline = time.monotonic() + 10
            while _configs(ha)["video"]["options"]:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            kept = box.wait_for("ha/state", lambda s: True)
    finally:
        ha.close()
    assert "Traceback" not in d.log_text()
    d.stop()
    with broker.client(d.device) as late:
        late.wait_for("availability", lambda v: v == "offline", timeout=10)
    with broker.client(d.device) as box:
        d.start()  # the choices survive a restart (kept on the box, in its data directory)
        assert json.loads((d.data / "homeassistant.json").read_text())["session_name"] == "ha-lesson"
        box.wait_for("availability", lambda v: v == "online")
        assert box.wait_for("ha/state", lambda s: True) == kept
        deadline = time.monotonic() + 10  # the retained set, replayed by the broker: refused, and deleted
        while not _errors(box):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert _errors(box) == ["ha/section: must not be retained (it would replay on every reconnect)"]
    probe = Sniffer(broker.port, f"attendance/{d.device}/ha/+/set")
    try:
        assert probe.settle(1, timeout=1.0) == {}
    finally:
        probe.close()
    d.stop()

    daemon_factory(device=d.device, extra="[homeassistant]\nenabled = false\n").start()
    time.sleep(1.0)
    gone = Sniffer(broker.port, "homeassistant/#")
    try:
        assert gone.settle(1, timeout=2.0) == {}
        with broker.client(d.device) as box:
            box.wait_for("state", lambda s: True)
            time.sleep(0.5)
            assert "ha/state" not in box.latest  # emptied: no retained choices
            gone.press(f"{box.topics.root}/ha/export/set", "ON", False, 1)  # not subscribed: nothing happens
            time.sleep(0.5)
            assert "ha/state" not in box.latest and not _errors(box)
    finally:
        gone.close()


def test_the_shipped_acl_lets_home_assistant_set_a_control(tmp_path: Path, daemon_factory: Any) -> None:
    from tests.test_ctl_and_auth import REPO

    secured = Broker.with_passwords(tmp_path / "secured", {"room-1": "pw1", "homeassistant": "ha", "dashboard": "d"},
                                    REPO / "deploy" / "mosquitto-attendance.acl")
    try:
        daemon_factory(device="room-1", mqtt_extra='username = "room-1"\npassword = "pw1"\n', on=secured).start(
            wait=False)
        with ApiClient("127.0.0.1", secured.port, "room-1", username="homeassistant", password="ha") as ha:
            ha.wait_for("ha/state", lambda s: True, timeout=60)
            with ApiClient("127.0.0.1", secured.port, "room-1", username="dashboard", password="d") as dashboard:
                dashboard.client.publish(dashboard.topics.ha_set("export"), b"ON", qos=1).wait_for_publish(5)
                assert dashboard.request("status")["code"] == 200  # answered after the set, had it come through
                time.sleep(0.3)
            assert json.loads(ha.latest["ha/state"])["export"] is False  # the dashboard user may not choose
            ha.client.publish(ha.topics.ha_set("export"), b"ON", qos=1).wait_for_publish(5)
            assert ha.wait_for("ha/state", lambda s: s["export"], timeout=10)["export"] is True
            ha.client.publish(ha.topics.ha_set("export"), b"OFF", qos=1).wait_for_publish(5)
            assert ha.wait_for("ha/state", lambda s: not s["export"], timeout=10)["export"] is False
    finally:
        secured.stop()
