"""The shared world of tests/test_node_red_console.py: mosquitto with passwords and the shipped ACL, the daemon as a
real process with two rendered cameras, two Node-REDs with the shipped flows, and the browsers on the console (module
scoped: the console's tests run in order and build on each other). Each page is saved as a 1280x800 screenshot
(CONSOLE_SCREENSHOTS=1 copies them to docs/img)."""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest

from attendance_daemon.mqtt.client import ApiClient
from tests.console_browser import Browser, browser_missing
from tests.mqtt_fixtures import Broker, DaemonProcess, RecordingClient
from tests.test_enroll_capture import FACES, write_clip
from tests.test_node_red import REPO, NodeRed, _flows, _run

SHOTS = ("start", "upload", "session", "session-camera", "results", "unknown", "students", "history", "overlay",
         "record")

# ---- the shared world: mosquitto, the daemon with two rendered cameras, two Node-REDs ---------------------


@pytest.fixture(scope="module")
def node_red_exe() -> str:
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.fail("node and npm are needed for the Node-RED console test (Node.js 18-22; apt-get install nodejs npm)")
    if browser_missing():
        pytest.fail(f"the console test drives a real browser: {browser_missing()}")
    out = _run(["bash", str(REPO / "scripts" / "node-red.sh"), "--with-chromium"], "scripts/node-red.sh")
    return out.splitlines()[-1]


class World:
    def __init__(self, root: Path, broker: Broker, daemon: DaemonProcess, nr: NodeRed, office: NodeRed,
                 lecture: Path, truth: dict[str, Any]) -> None:
        self.root, self.broker, self.daemon, self.nr, self.office = root, broker, daemon, nr, office
        self.lecture, self.truth = lecture, truth
        self.shots = root / "shots"
        self.browsers: list[Browser] = []
        self.found: dict[str, Any] = {}  # what one test leaves for the next (session ids)

    def browser(self, name: str) -> Browser:
        b = Browser(self.nr.url, self.root / f"downloads-{name}")
        self.browsers.append(b)
        return b

    def box(self, command: str, fields: dict[str, Any] | None = None) -> Any:
        """The box's own answer, asked over MQTT beside the console (as the test's own dashboard user)."""
        with ApiClient("127.0.0.1", self.broker.port, self.daemon.device, username="tester",
                       password="tester-pw") as c:
            return c.request(command, fields or {}, timeout=60)["data"]

    def events(self) -> RecordingClient:
        """The box's topics as the test's own dashboard user gets them (events are not retained: listen first)."""
        return RecordingClient("127.0.0.1", self.broker.port, self.daemon.device, username="tester",
                               password="tester-pw")

    def shot(self, b: Browser, name: str) -> None:
        assert name in SHOTS
        b.screenshot(self.shots / f"node-red-console-{name}.png")


def padded(video: Path, out: Path, pad: int) -> Path:
    """The same video with an ISO BMFF `free` box of `pad` bytes after it: decoders skip it, its sha256 is new."""
    out.write_bytes(video.read_bytes() + struct.pack(">I", pad + 8) + b"free" + bytes(pad))
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, node_red_exe: str, sample: dict[str, Any],
          enrolled_db: Path, ground_truth: dict[str, Any]) -> Iterator[World]:
    root = tmp_path_factory.mktemp("console")
    acl = root / "acl"  # the shipped ACL, and its dashboard block copied for a second dashboard, as it says to
    shipped = (REPO / "deploy" / "mosquitto-attendance.acl").read_text()
    block = shipped[shipped.index("user dashboard\n"):shipped.index("\n\n", shipped.index("user dashboard\n"))]
    acl.write_text(shipped + "".join("\n" + block.replace("user dashboard", f"user {u}") + "\n"
                                     for u in ("office", "tester")))
    broker = Broker.with_passwords(root, {"con-room": "room-pw", "dashboard": "dash-pw", "office": "office-pw",
                                          "tester": "tester-pw"}, acl)
    # cameras: the rendered classroom, and one face turning in front of the desk camera (for enroll_capture)
    obama = [cv2.imread(str(FACES / n)) for n in ("obama.jpg", "obama2.jpg", "obama3.jpg")]
    desk = write_clip(root / "desk.mp4", lambda i: [obama[(i // 5) % 3]])
    media, enrollment = root / "media", root / "enrollment"
    media.mkdir()
    shutil.copytree(sample["enrollment"], enrollment)
    daemon = DaemonProcess(root / "daemon", broker, media, enrollment, enrolled_db, device="con-room",
                           extra=f'[cameras]\nroom = "{sample["video"]}"\ndesk = "{desk}"\n',
                           mqtt_extra='username = "con-room"\npassword = "room-pw"\n')
    daemon.start(wait=False)
    env = {"MQTT_HOST": "127.0.0.1", "MQTT_PORT": str(broker.port), "MQTT_USER": "dashboard",
           "MQTT_PASSWORD": "dash-pw", "ATTENDANCE_CLIENT": "console-test", "ATTENDANCE_DEVICE": "con-room"}
    nr = NodeRed(node_red_exe, root / "node-red", env)
    office = NodeRed(node_red_exe, root / "node-red-office",
                     {**env, "MQTT_USER": "office", "MQTT_PASSWORD": "office-pw", "ATTENDANCE_CLIENT": "office"})
    lecture = padded(Path(sample["video"]), root / "lecture.mp4", 24 * 1024 * 1024)
    w = World(root, broker, daemon, nr, office, lecture, ground_truth)
    try:
        for n in (nr, office):
            n.start()
            n.deploy(_flows())
        for n in (nr, office):
            n.wait(lambda k: (k["devices"].get("con-room") or {}).get("availability") == "online", timeout=90,
                   what="the box online")
        yield w
    finally:
        for b in w.browsers:
            b.close()
        for n in (nr, office):
            n.stop()
        daemon.stop()
        broker.stop()
        if os.environ.get("CONSOLE_SCREENSHOTS"):
            for shot in sorted(w.shots.glob("*.png")):
                shutil.copy(shot, REPO / "docs" / "img" / shot.name)


@pytest.fixture(scope="module")
def teacher(world: World) -> Browser:
    return world.browser("teacher")


@pytest.fixture(scope="module")
def colleague(world: World) -> Browser:
    return world.browser("colleague")


def overlay(b: Browser) -> str | None:
    text = b.js("const o = document.querySelector('#att-busy-overlay'); return o ? o.innerText : null")
    return None if text is None else str(text)


def value_of(b: Browser, css: str) -> str:
    return str(b.js(f"return document.querySelector('{css}').value"))

