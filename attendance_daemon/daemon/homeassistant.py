"""Home Assistant MQTT discovery: one HA device per box, its entities declared once in ENTITIES.

Single-component discovery as Home Assistant documents it: a retained JSON config on
`<prefix>/<component>/<node_id>/<object_id>/config`, here with node_id = the device id (so a broker ACL can
confine each box to `homeassistant/+/<device>/#`) and object_id = the entity's key. The entities read the
daemon's own retained topics (state, progress, results) with value templates; the buttons publish requests
(never retained: the daemon refuses retained requests). Pure: builds (topic, payload) pairs, publishes nothing."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..config import HomeAssistantConfig
from ..mqtt.topics import Topics

Component = Literal["sensor", "binary_sensor", "button"]
BUTTON_PAYLOAD = '{"transaction":"homeassistant"}'


@dataclass(frozen=True)
class Entity:
    component: Component
    key: str  # object_id and the last part of unique_id
    name: str
    leaf: str  # sensors: the retained topic R/<leaf> read; buttons: the command, published on R/request/<leaf>
    template: str | None = None  # sensors: value_template applied to the JSON payload
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
)


def config_topic(prefix: str, entity: Entity, device_id: str) -> str:
    return f"{prefix}/{entity.component}/{device_id}/{entity.key}/config"


def entity_config(entity: Entity, topics: Topics, version: str) -> dict[str, Any]:
    """The discovery payload of one entity (full key names, no abbreviations)."""
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
    cfg.update(entity.extra)
    return cfg


def discovery_messages(ha: HomeAssistantConfig, topics: Topics, version: str) -> list[tuple[str, bytes]]:
    """Retained (topic, payload) pairs to publish: the configs when enabled, else empty payloads that remove
    configs published earlier under the same prefix."""
    out = []
    for entity in ENTITIES:
        payload = (json.dumps(entity_config(entity, topics, version), separators=(",", ":")).encode()
                   if ha.enabled else b"")
        out.append((config_topic(ha.prefix, entity, topics.device), payload))
    return out
