"""Home Assistant MQTT discovery: one HA device per box, its entities declared once in ENTITIES.

Single-component discovery as Home Assistant documents it: a retained JSON config on
`<prefix>/<component>/<node_id>/<object_id>/config`, here with node_id = the device id (so a broker ACL can
confine each box to `homeassistant/+/<device>/#`) and object_id = the entity's key. The entities read the
daemon's own retained topics (state, progress, results) with value templates; the buttons publish requests
(never retained: the daemon refuses retained requests). The controls (two selects, a text, a switch) read the
retained choices on R/ha/state and send a new choice to R/ha/<control>/set (daemon/ha_controls.py keeps them);
a select's options are the box's sections or media library, so its config is republished when they change.
Pure: builds (topic, payload) pairs, publishes nothing."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..common.names import SAFE_ID_PATTERN
from ..config import HomeAssistantConfig
from ..contract.ha_api import HA_CONTROLS
from ..mqtt.topics import Topics

Component = Literal["sensor", "binary_sensor", "button", "select", "text", "switch"]
CONTROLS: tuple[Component, ...] = ("select", "text", "switch")  # state on R/ha/state, commands on R/ha/<key>/set
CLIENT = "homeassistant"  # the `client` of its starts: sessions show it as started_by
BUTTON_PAYLOAD = '{"transaction":"homeassistant"}'


@dataclass(frozen=True)
class Entity:
    component: Component
    key: str  # object_id and the last part of unique_id
    name: str
    leaf: str  # sensors, controls: the retained topic R/<leaf> read; buttons: the command, on R/request/<leaf>
    template: str | None = None  # sensors, controls: value_template applied to the JSON payload
    extra: Mapping[str, Any] = field(default_factory=dict)  # further documented keys (unit, device_class ...)


# "No value" as Home Assistant 2024.3's MQTT sensor takes it (components/mqtt/sensor.py, _update_state): a rendered
# `None` only on a numeric sensor (unit or state_class: a webcam session's percent); a text sensor keeps whatever
# its template renders, so the literal `unknown` (STATE_UNKNOWN, the same state); a timestamp sensor warns on every
# rendering that is not a date, so the two times are text (ISO 8601). `value_json is defined`: the daemon empties
# the retained results when the last finished session is deleted.
ENTITIES: tuple[Entity, ...] = (
    Entity("sensor", "mode", "Mode", "state", "{{ value_json.mode }}", {"icon": "mdi:cctv"}),
    Entity("sensor", "session", "Session", "state",
           "{{ value_json.session.name if value_json.session else 'unknown' }}", {"icon": "mdi:school"}),
    Entity("sensor", "progress", "Progress", "progress", "{{ value_json.percent }}",
           {"unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:progress-clock"}),
    Entity("sensor", "present", "Present", "progress", "{{ value_json.present }}",
           {"state_class": "measurement", "icon": "mdi:account-check"}),
    Entity("sensor", "last_present", "Last session present", "results",
           "{{ value_json.present_count if value_json is defined else 'unknown' }}",
           {"icon": "mdi:account-multiple-check"}),
    Entity("sensor", "last_total", "Last session total", "results",
           "{{ value_json.total if value_json is defined else 'unknown' }}", {"icon": "mdi:account-multiple"}),
    Entity("sensor", "last_ended", "Last session ended", "results",
           "{{ value_json.ended_at if value_json is defined else 'unknown' }}", {"icon": "mdi:clock-end"}),
    Entity("sensor", "next_lesson", "Next lesson", "state",  # the timetable's (Extension); unknown without one
           "{{ value_json.next_lesson.start if value_json.next_lesson else 'unknown' }}",
           {"icon": "mdi:calendar-clock"}),
    Entity("binary_sensor", "busy", "Busy", "state", "{{ 'ON' if value_json.busy else 'OFF' }}",
           {"device_class": "running"}),
    Entity("button", "pause", "Pause", "pause", extra={"icon": "mdi:pause"}),
    Entity("button", "resume", "Resume", "resume", extra={"icon": "mdi:play"}),
    Entity("button", "stop", "Stop", "stop", extra={"icon": "mdi:stop"}),
    # The controls. "No value" as Home Assistant 2024.3 takes it: a select whose template renders `None` has no
    # option (components/mqtt/select.py, message_received: `payload.lower() == "none"`), so it shows `unknown`;
    # any other rendering outside its options is logged as an error, so the box's choice is always one of them.
    # A switch rendering `None` (PAYLOAD_NONE) is unknown too. A text takes whatever is rendered as its value
    # (mqtt/text.py, handle_state_message_received) and has no "no value" payload: no session name is the empty
    # text. `value_json is defined`: R/ha/state is emptied when the controls are switched off.
    Entity("select", "section", "Section", "ha/state",
           "{{ value_json.section if value_json is defined and value_json.section is not none else 'None' }}",
           {"icon": "mdi:account-group"}),
    Entity("select", "video", "Video", "ha/state",
           "{{ value_json.video if value_json is defined and value_json.video is not none else 'None' }}",
           {"icon": "mdi:filmstrip"}),
    Entity("text", "session_name", "Session name", "ha/state",
           "{{ value_json.session_name if value_json is defined and value_json.session_name else '' }}",
           {"icon": "mdi:rename", "min": 0, "max": 64, "mode": "text",
            "pattern": f"^$|^{SAFE_ID_PATTERN}$"}),  # an empty text (the default name) or a session name
    Entity("switch", "export", "Export", "ha/state",
           "{{ ('ON' if value_json.export else 'OFF') if value_json is defined else 'None' }}",
           {"icon": "mdi:movie-open", "payload_on": "ON", "payload_off": "OFF"}),
    Entity("button", "start_camera", "Start camera", "start_selected",
           extra={"icon": "mdi:cctv", "payload_press": json.dumps(
               {"source": "camera", "client": CLIENT, "transaction": CLIENT}, separators=(",", ":"))}),
    Entity("button", "start_video", "Start video", "start_selected",
           extra={"icon": "mdi:play-box", "payload_press": json.dumps(
               {"source": "video", "client": CLIENT, "transaction": CLIENT}, separators=(",", ":"))}),
)
SELECTS = tuple(e.key for e in ENTITIES if e.component == "select")
assert {e.key for e in ENTITIES if e.component in CONTROLS} == set(HA_CONTROLS)


def config_topic(prefix: str, entity: Entity, device_id: str) -> str:
    return f"{prefix}/{entity.component}/{device_id}/{entity.key}/config"


def entity_config(entity: Entity, topics: Topics, version: str,
                  options: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """The discovery payload of one entity (full key names, no abbreviations); `options`: each select's."""
    device_id = topics.device
    cfg: dict[str, Any] = {
        "name": entity.name,
        "unique_id": f"attendance-daemon_{device_id}_{entity.key}",
        "device": {
            "identifiers": [f"attendance-daemon_{device_id}"],
            "name": f"Attendance {device_id}",
            "manufacturer": "attendance-daemon",
            "model": "attendance-daemon",
            "sw_version": version,
        },
        "origin": {"name": "attendance-daemon", "sw_version": version},
        "availability_topic": topics.of("availability"),
        "payload_available": "online",
        "payload_not_available": "offline",
        "qos": 1,
    }
    if entity.component == "button":
        cfg.update(command_topic=topics.request(entity.leaf), payload_press=BUTTON_PAYLOAD, retain=False)
    else:
        cfg.update(state_topic=topics.of(entity.leaf), value_template=entity.template)
    if entity.component in CONTROLS:
        cfg.update(command_topic=topics.ha_set(entity.key), retain=False)
    if entity.component == "select":
        cfg["options"] = list((options or {}).get(entity.key, ()))
    cfg.update(entity.extra)
    return cfg


def discovery_messages(ha: HomeAssistantConfig, topics: Topics, version: str,
                       options: Mapping[str, Sequence[str]] | None = None,
                       only: Sequence[str] | None = None) -> list[tuple[str, bytes]]:
    """Retained (topic, payload) pairs to publish: the configs when enabled, else empty payloads that remove
    configs published earlier under the same prefix. `only`: those entities' keys (the selects, anew)."""
    out = []
    for entity in ENTITIES:
        if only is not None and entity.key not in only:
            continue
        payload = (json.dumps(entity_config(entity, topics, version, options), separators=(",", ":")).encode()
                   if ha.enabled else b"")
        out.append((config_topic(ha.prefix, entity, topics.device), payload))
    return out
