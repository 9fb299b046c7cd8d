"""Payloads of Home Assistant's controls on the box (docs/mqtt-api.md "Home Assistant discovery"): the choices the
box keeps for its section and video selects, session-name text and export switch (retained on R/ha/state, changed
on R/ha/<control>/set), and `start_selected`, the start that uses them (the Start camera / Start video buttons)."""

from __future__ import annotations

from typing import Literal

from pydantic import StrictBool

from ..common.names import DisplayName, LookupText, MediaName, SafeId
from .api import Payload, Request

HA_CONTROLS = ("section", "video", "session_name", "export")  # R/ha/<control>/set
MAX_CONTROL_BYTES = 256  # a set payload: a section (at most 256 characters), a media or session name, ON/OFF
MAX_SELECT_OPTIONS = 100  # options of one select (sections by name, videos newest first): beyond, not offered


class HaChoices(Payload):
    """Retained on R/ha/state: what the next `start_selected` uses; null where nothing is chosen."""

    section: LookupText | None = None
    video: MediaName | None = None
    session_name: SafeId | None = None
    export: StrictBool = False
    device_id: str | None = None


class StartSelected(Request):
    source: Literal["camera", "video"]
    client: DisplayName | None = None
