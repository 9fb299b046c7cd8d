"""The absence notices of docs/dashboards.md ("Absence notices"), checked as they are printed there: the sample
`absences` event is what the box's own code makes; the Home Assistant automation is validated by Home Assistant
2024.3.3 itself (the version tests/test_home_assistant_real.py installs, its install fixture shared), the way its
automation editor validates what it saves, then its condition and notify call are evaluated on that event, and
broken copies must fail; the Node-RED flow is valid JSON of the four documented node types, wired in order, and,
imported into a real Node-RED with node-red-node-email (both from npm, pinned in examples/node-red/package.json),
it mails the notice of an event published on a real mosquitto to an SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from contextlib import ExitStack
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from paho.mqtt.enums import CallbackAPIVersion

import tests.test_home_assistant_real as ha_real
import tests.test_node_red as nr_real
from attendance_daemon.attendance.notices import absences
from attendance_daemon.config import Config
from attendance_daemon.contract.api import AbsentStudent, PresentStudent, Results
from attendance_daemon.contract.record_api import Absences
from tests.mqtt_fixtures import Broker, free_port

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "dashboards.md"
hass_exe = ha_real.hass_exe  # Home Assistant from scripts/home-assistant.sh (its own venv, cached)
node_red_exe = nr_real.node_red_exe  # Node-RED and its nodes from scripts/node-red.sh (npm, cached)

# Run by Home Assistant's own Python: reads {"config_dir", "topic", "documents": {name: yaml}, "events": {name:
# event}}; for each document's automations: async_validate_config_item (what the automation editor calls on save,
# raising; the check_config script only logs an invalid automation and passes), the MQTT trigger's topic, which
# events pass the conditions, and for those the service call made of the action, checked against notify's schema.
CHECK = """
import asyncio, json, sys
import voluptuous as vol
from homeassistant import core, loader
from homeassistant.components.automation.config import async_validate_config_item
from homeassistant.components.notify.const import NOTIFY_SERVICE_SCHEMA
from homeassistant.config_entries import ConfigEntries
from homeassistant.const import __version__
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import area_registry, condition, device_registry, entity_registry, service
from homeassistant.util.yaml import parse_yaml

async def check(hass, item, job):
    config = await async_validate_config_item(hass, "docs", item)
    (trigger,) = config["trigger"]
    trigger["topic"].hass = hass
    checks = [await condition.async_from_config(hass, c) for c in config.get("condition", [])]
    out = {"platform": trigger["platform"], "topic": trigger["topic"].async_render(), "calls": {}}
    for name, event in job["events"].items():
        raw = json.dumps(event)
        variables = {"trigger": {"platform": "mqtt", "topic": job["topic"], "payload": raw, "qos": 0,
                                 "payload_json": json.loads(raw), "description": "mqtt topic " + job["topic"]}}
        if all(check(hass, variables) for check in checks):
            calls = []
            for action in config["action"]:
                call = service.async_prepare_call_from_config(hass, action, variables)
                if call["domain"] == "notify":
                    NOTIFY_SERVICE_SCHEMA(call["service_data"])
                calls.append(call)
            out["calls"][name] = calls
    return out

async def main(job):
    hass = core.HomeAssistant(job["config_dir"])
    loader.async_setup(hass)
    hass.config_entries = ConfigEntries(hass, {})
    for registry in (area_registry, device_registry, entity_registry):
        await registry.async_load(hass)
    out = {}
    for name, text in job["documents"].items():
        out[name] = []
        for item in parse_yaml(text):
            try:
                out[name].append(await check(hass, item, job))
            except (vol.Invalid, HomeAssistantError) as err:
                out[name].append({"error": type(err).__name__ + ": " + str(err)})
    await hass.async_stop(force=True)
    return {"version": __version__, "documents": out}

print(json.dumps(asyncio.run(main(json.load(sys.stdin))), default=str))
"""


def block(heading: str, lang: str) -> str:
    """The first fenced block of `lang` under `heading` (a line of docs/dashboards.md) before the next heading."""
    text = DOC.read_text(encoding="utf-8")
    assert f"\n{heading}\n" in text, f"docs/dashboards.md has no {heading!r}"
    section = re.split(r"\n#+ ", text.split(f"\n{heading}\n", 1)[1], maxsplit=1)[0]
    m = re.search(rf"^```{lang}\n(.*?)^```$", section, re.M | re.S)
    assert m, f"no ```{lang} block under {heading!r}"
    return m.group(1)


def doc_event() -> dict[str, Any]:
    """The documented sample event: a valid `absences` event, whose subject and text are what the box's code
    (attendance/notices.py) writes for the same session."""
    event: dict[str, Any] = json.loads(block("## Absence notices", "json"))
    notice = Absences.model_validate(event)
    late = notice.late[0]
    results = Results(
        session_id=notice.session_id, name=notice.session, section=notice.section, mode="webcam",
        source="camera:room", status="completed", started_at="2026-12-07T08:00:00Z",
        ended_at="2026-12-07T08:45:00Z", frames_processed=900, present_count=1, device_id=notice.device_id,
        total=2, unknowns=0, export_path=None, export_codec=None, error=None, timezone="Europe/Warsaw",
        end_s=2700.0, late_after_s=300.0, left_early_before_s=300.0, record="final",
        finalized_at=notice.finalized_at, counts={"late": 1, "absent": 1},
        present=[PresentStudent(student_id=late.student_id, name=late.name, first_seen_s=760.0, last_seen_s=2700.0,
                                seen_s=1940.0, arrived_at=late.arrived_at or "", left_at="2026-12-07T09:45:00+01:00",
                                late=True,
                                left_early=False, intervals=[], status="late", recognised_status="late")],
        absent=[AbsentStudent(student_id=a.student_id, name=a.name) for a in notice.absent])
    cfg = Config()
    cfg.attendance = cfg.attendance.model_copy(update={"timezone": "Europe/Warsaw"})
    made = absences(results, cfg)
    assert (made.subject, made.text, made.date) == (notice.subject, notice.text, notice.date)
    assert made.model_dump(exclude={"at"}) == notice.model_dump(exclude={"at"})
    return event


def run_home_assistant(hass: str, tmp: Path, documents: dict[str, str], events: dict[str, Any],
                       topic: str) -> dict[str, list[dict[str, Any]]]:
    python = Path(hass).with_name("python")
    job = {"config_dir": str(tmp), "topic": topic, "documents": documents, "events": events}
    proc = subprocess.run([str(python), "-c", CHECK], input=json.dumps(job), capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["version"] == ha_real.HA_VERSION
    checked: dict[str, list[dict[str, Any]]] = out["documents"]
    return checked


def test_home_assistant_automation_is_valid_and_notifies(hass_exe: str, tmp_path: Path) -> None:
    doc = block("### Home Assistant: a notification", "yaml")
    event = doc_event()
    # broken copies, each a mistake a reader could make: HA must refuse every one, for that mistake
    broken = {
        "misspelt key": (doc.replace("topic:", "topik:"), "extra keys not allowed @ data['topik']"),
        "broken template": (doc.replace("== 'absences' }}", "== 'absences' }"), "TemplateSyntaxError"),
        "bad service name": (doc.replace("service: notify.", "service: notify "), "format <domain>.<name>"),
        "bad topic": (doc.replace("attendance/+/events", "attendance/#/events"), "wildcard must be the last"),
        "no message": (doc.replace("message:", "text:"), "extra keys not allowed @ data['text']"),
        "plural trigger": (doc.replace("  trigger:", "  triggers:"), "extra keys not allowed @ data['triggers']"),
    }
    assert all(copy != doc for copy, _ in broken.values()), "a broken copy is the doc itself: the doc changed"
    device_topic = "attendance/room-101/events"
    out = run_home_assistant(hass_exe, tmp_path / "ha", {"doc": doc, **{k: c for k, (c, _) in broken.items()}},
                             {"absences": event, "other": {"type": "session_started", "session_id": "x"}},
                             device_topic)
    (automation,) = out["doc"]
    assert "error" not in automation, automation
    assert automation["platform"] == "mqtt" and mqtt.topic_matches_sub(automation["topic"], device_topic)
    assert set(automation["calls"]) == {"absences"}  # the other event does not pass the condition
    (call,) = automation["calls"]["absences"]
    assert (call["domain"], call["service"]) == ("notify", "persistent_notification")
    assert call["service_data"] == {"title": event["subject"], "message": event["text"]}
    for name, (_, why) in broken.items():
        (result,) = out[name]
        assert why in result.get("error", ""), (name, result)


def test_node_red_flow_is_four_nodes_that_mail_the_subject_and_text() -> None:
    nodes = json.loads(block("### Node-RED: an e-mail", "json"))
    by_type = {n["type"]: n for n in nodes}
    assert [n["type"] for n in nodes] == ["mqtt in", "switch", "change", "e-mail"]  # no function node
    assert len({n["id"] for n in nodes}) == len(nodes)
    source, switch, change, mail = (by_type[t] for t in ("mqtt in", "switch", "change", "e-mail"))
    for a, b in ((source, switch), (switch, change), (change, mail)):
        assert a["wires"] == [[b["id"]]], (a["id"], a["wires"])
    assert mail["wires"] == [] and mail["server"] and mail["port"]
    # the broker node is the shipped flows.json's, subscribed to every box's events, JSON parsed
    shipped = json.loads((REPO / "examples" / "node-red" / "flows.json").read_text())
    assert any(n["id"] == source["broker"] and n["type"] == "mqtt-broker" for n in shipped)
    assert mqtt.topic_matches_sub(source["topic"], "attendance/room-101/events") and source["datatype"] == "json"
    # what the switch lets through and what the change makes of it (Node-RED's semantics for these rules)
    event = doc_event()
    msg: dict[str, Any] = {"topic": "attendance/room-101/events", "payload": event}

    def prop(m: Any, path: str) -> Any:
        for key in path.split("."):
            m = m.get(key) if isinstance(m, dict) else None
        return m

    (rule,) = switch["rules"]
    assert switch["propertyType"] == "msg" and (rule["t"], rule["vt"]) == ("eq", "str")
    passes = lambda m: prop(m, switch["property"]) == rule["v"]  # noqa: E731
    assert passes(msg) and not passes({"payload": {"type": "session_started"}})
    for r in change["rules"]:  # in order: the subject is taken before the payload is replaced
        assert (r["t"], r["pt"], r["tot"]) == ("set", "msg", "msg")
        msg[r["p"]] = prop(msg, r["to"])
    assert (msg["topic"], msg["payload"]) == (event["subject"], event["text"])  # the e-mail's subject and body


class Mailbox:
    """What an SMTP server on loopback received (aiosmtpd), logins checked: the e-mail node's user/password."""

    def __init__(self, user: str, password: str) -> None:
        self.mails: list[Any] = []
        self.received = threading.Event()
        self._login = (user.encode(), password.encode())

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.mails.append((session.authenticated, envelope.rcpt_tos, message_from_bytes(envelope.content,
                                                                                         policy=policy.default)))
        self.received.set()
        return "250 OK"

    def authenticate(self, server: Any, session: Session, envelope: Envelope, mechanism: str,
                     data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == self._login
        return AuthResult(success=ok)


def test_node_red_flow_mails_the_notice(node_red_exe: str, tmp_path: Path) -> None:
    """The documented flow as a reader sets it up: imported onto a tab, the shipped broker node, the e-mail node's
    server, port and user/password filled in (plain SMTP on loopback here, where the doc's sample has TLS on 465)."""
    event = doc_event()
    nodes = json.loads(block("### Node-RED: an e-mail", "json"))
    shipped = json.loads((REPO / "examples" / "node-red" / "flows.json").read_text())
    (broker_node,) = [n for n in shipped if n["id"] == nodes[0]["broker"]]
    mail = next(n for n in nodes if n["type"] == "e-mail")
    recipient = mail["name"]
    box = Mailbox("attendance@school.example", "smtp-pw")
    subscriptions: list[int] = []
    with ExitStack() as stack:
        smtp = Controller(box, hostname="127.0.0.1", port=free_port(), authenticator=box.authenticate,
                          auth_require_tls=False)
        smtp.start()
        stack.callback(smtp.stop)
        broker = Broker(tmp_path, extra="sys_interval 1\n")
        stack.callback(broker.stop)
        nr = nr_real.NodeRed(node_red_exe, tmp_path / "node-red", {
            "MQTT_HOST": "127.0.0.1", "MQTT_PORT": str(broker.port), "MQTT_USER": "dashboard", "MQTT_PASSWORD": "x"})
        stack.callback(nr.stop)
        nr.start()
        publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="notice-test")
        publisher.on_message = lambda _c, _u, m: subscriptions.append(int(m.payload))
        publisher.connect("127.0.0.1", broker.port)
        stack.callback(publisher.disconnect)
        publisher.loop_start()
        stack.callback(publisher.loop_stop)
        publisher.subscribe("$SYS/broker/subscriptions/count")

        def subscribed(more_than: int) -> int:
            deadline = time.monotonic() + 60
            while not (subscriptions and subscriptions[-1] > more_than):
                assert time.monotonic() < deadline, nr.log.read_text(errors="replace")[-3000:]
                time.sleep(0.2)
            return subscriptions[-1]

        before = subscribed(-1)  # mosquitto's count before the flow is deployed
        mail.update(server="127.0.0.1", port=str(smtp.port), secure=False, tls=False,
                    credentials={"userid": "attendance@school.example", "password": "smtp-pw"})
        tab = {"id": "abs_tab", "type": "tab", "label": "Absence notices"}
        nr.deploy([tab, broker_node, *({**n, "z": tab["id"]} for n in nodes)])
        subscribed(before)  # the flow's mqtt in is subscribed: events published now reach it
        topic = "attendance/room-101/events"
        for payload in ({"type": "session_started", "at": event["at"], "session_id": "x"}, event):
            publisher.publish(topic, json.dumps(payload), qos=1).wait_for_publish(10)
        assert box.received.wait(60), nr.log.read_text(errors="replace")[-3000:]
        time.sleep(1)  # the other event, published first, sent nothing
        ((authenticated, to, message),) = box.mails
        assert authenticated and to == [recipient]
        assert message["Subject"] == event["subject"] and message["To"] == recipient
        assert message.get_content().replace("\r\n", "\n").strip() == event["text"]  # SMTP's line ends
