"""The MQTT API as an AsyncAPI 2.6 document, generated from the pydantic payload models.

`python -m attendance_daemon.cli.asyncapi > docs/asyncapi.json`; a test keeps the committed file current."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from .. import __version__
from ..contract import api, ha_api, media_api, record_api
from ..contract.roster_message import RosterMessage
from ..daemon.handlers import COMMANDS
from ..hub.requests import HUB_COMMANDS
from ..mqtt.bridge import BRIDGE_LEAF, HUB

_OUT: dict[str, tuple[type[BaseModel] | None, bool, str]] = {
    "availability": (None, True, "`online` / `offline` (plain text); also the MQTT Last Will"),
    "info": (api.Info, True, "device info: version, detector, sections with student counts"),
    "state": (api.State, True, "published on every transition"),
    "progress": (api.Progress, True, "at most 2 per second while running, and at pause, resume and end"),
    "results": (api.Results, True, "Results of the last finished session, again whenever its record changes"),
    "record": (api.Results, False, "Results of an earlier session whose record changed (a correction, undo, "
               "finalising, reopening), once per change; the last finished session's changes go to results"),
    "snapshot": (None, True, "JPEG bytes: the latest annotated frame, at most 1 per second"),
    "attendance": (api.LiveRoster, True, "live roster of the running session, at most 1 per second; kept with "
                   "final true when it ends"),
}


EVENT_TYPES = ("session_started", "student_present", "unknown_face", "session_finished", "error", "attendance_low",
               "absences", "lesson_started", "lesson_waiting", "lesson_skipped", "lesson_missed")


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(ref_template="#/components/schemas/{model}")


def build() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    schemas: dict[str, Any] = {}

    def put(name: str, schema: dict[str, Any]) -> None:
        """One schema per name: the box and the hub share models (Empty, Response), never a name."""
        if schemas.setdefault(name, schema) != schema:
            raise ValueError(f"two different models are both called {name}: rename one")

    def add(model: type[BaseModel]) -> dict[str, str]:
        s = _schema(model)
        for name, sub in s.pop("$defs", {}).items():
            put(name, sub)
        put(model.__name__, s)
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    for leaf, (model, retained, doc) in _OUT.items():
        payload = add(model) if model else {"type": "string", "contentMediaType": "image/jpeg"
                                                if leaf == "snapshot" else "text/plain"}
        channels[f"{{base}}/{{device}}/{leaf}"] = {
            "description": doc + (" (retained)" if retained else " (not retained)"),
            "subscribe": {"message": {"payload": payload}, "bindings": {"mqtt": {"retain": retained, "qos": 1}}},
        }
    channels["{base}/{device}/events"] = {
        "description": "one JSON object per event: " + ", ".join(EVENT_TYPES) + " (see docs/mqtt-api.md, Events)",
        "subscribe": {"message": {"oneOf": [
            {"name": "absences", "payload": add(record_api.Absences)},
            {"name": "event", "payload": {"type": "object", "required": ["type", "at"], "properties": {
                "type": {"enum": [t for t in EVENT_TYPES if t != "absences"]}, "at": {"type": "string"}}}},
        ]}, "bindings": {"mqtt": {"retain": False, "qos": 1}}},
    }
    channels["{base}/{device}/upload/{upload_id}/{offset}"] = {
        "description": "raw bytes of an upload (no JSON), written at byte `offset`; any order, re-sends harmless, "
                       "at most `chunk_bytes` each (see upload_begin)",
        "publish": {"message": {"payload": {"type": "string", "contentMediaType": "application/octet-stream"}},
                    "bindings": {"mqtt": {"retain": False, "qos": 1}}},
    }
    channels["{base}/{device}/upload/{upload_id}/status"] = {
        "description": "the upload as the box holds it durably, at most ~4 per second while chunks land, and when "
                       "verified or failed",
        "subscribe": {"message": {"payload": add(media_api.UploadStatus)},
                      "bindings": {"mqtt": {"retain": False, "qos": 1}}},
    }
    channels["{base}/{device}/ha/state"] = {
        "description": "the choices of Home Assistant's controls (section, video, session_name, export) that "
                       "start_selected uses (retained)",
        "subscribe": {"message": {"payload": add(ha_api.HaChoices)}, "bindings": {"mqtt": {"retain": True, "qos": 1}}},
    }
    channels["{base}/{device}/ha/{control}/set"] = {
        "description": "a new choice for a Home Assistant control (section, video, session_name: the value or empty; "
                       "export: ON or OFF); a refused one is an `error` event",
        "publish": {"message": {"payload": {"type": "string", "contentMediaType": "text/plain",
                                            "maxLength": ha_api.MAX_CONTROL_BYTES}},
                    "bindings": {"mqtt": {"retain": False, "qos": 1}}},
    }
    response = add(api.Response)
    for name, (model, _fn) in sorted(COMMANDS.items()):
        channels[f"{{base}}/{{device}}/request/{name}"] = {
            "description": f"request `{name}`; answered once on {{base}}/{{device}}/response/{name} "
                           "(and on an MQTT v5 Response Topic with its Correlation Data)",
            "publish": {"message": {"payload": add(model)}, "bindings": {"mqtt": {"retain": False, "qos": 1}}},
        }
        channels[f"{{base}}/{{device}}/response/{name}"] = {"subscribe": {"message": {"payload": response}}}
    channels.update(_hub_channels(add, response))
    return {
        "asyncapi": "2.6.0",
        "info": {"title": "attendance-daemon MQTT API", "version": f"contract v1 / daemon {__version__}"},
        "defaultContentType": "application/json",
        "channels": channels,
        "components": {"schemas": dict(sorted(schemas.items()))},
    }


def _hub_channels(add: Callable[[type[BaseModel]], dict[str, str]], response: dict[str, str]) -> dict[str, Any]:
    """Many rooms: the bridge's notification of each box, and the hub's namespace (its rosters and requests)."""
    hub = f"{{base}}/{HUB}"
    text = {"type": "string", "contentMediaType": "text/plain"}
    channels: dict[str, Any] = {
        f"{{base}}/{{device}}/{BRIDGE_LEAF}": {
            "description": "mosquitto's bridge notification on the central broker: `1` connected, `0` not (its "
                           "will) (retained)",
            "subscribe": {"message": {"payload": text}, "bindings": {"mqtt": {"retain": True, "qos": 1}}},
        },
        f"{hub}/availability": {
            "description": "the hub: `online` / `offline` (plain text); also its MQTT Last Will (retained)",
            "subscribe": {"message": {"payload": text}, "bindings": {"mqtt": {"retain": True, "qos": 1}}},
        },
        f"{hub}/roster/{{device}}/{{section}}": {
            "description": "the section's roster for one box the hub assigned it, a new version per change, signed "
                           "(Ed25519), bridged in to that box only (retained)",
            "subscribe": {"message": {"payload": add(RosterMessage)},
                          "bindings": {"mqtt": {"retain": True, "qos": 1}}},
        },
        f"{hub}/roster/{{section}}": {
            "description": "upgrade only (hub.legacy_roster_topics): the section's roster for every box, without "
                           "key_id and signature, as boxes read it before per-box topics (retained)",
            "subscribe": {"message": {"payload": add(RosterMessage)},
                          "bindings": {"mqtt": {"retain": True, "qos": 1}}},
        },
    }
    for name, (model, _fn) in sorted(HUB_COMMANDS.items()):
        channels[f"{hub}/request/{name}"] = {
            "description": f"hub request `{name}`; answered once on {hub}/response/{name} (and on an MQTT v5 "
                           f"Response Topic under {hub}/reply/ with its Correlation Data)",
            "publish": {"message": {"payload": add(model)}, "bindings": {"mqtt": {"retain": False, "qos": 1}}},
        }
        channels[f"{hub}/response/{name}"] = {"subscribe": {"message": {"payload": response}}}
    return channels


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
