"""Home Assistant's controls on the box: the section and video selects, the session-name text and the export
switch. The choices live on the box, in a small JSON file under the data directory (replaced atomically; UI state,
not a record: no schema migration, so a daemon rolled back still opens its database), are shown retained on
R/ha/state, and change only through R/ha/<control>/set, validated here, in one place. `start_selected` (the Start
camera / Start video buttons) starts a session with them.

A set is handled on the dispatcher's thread, in arrival order with the requests, so a select followed at once by
a Start press starts with the new choice. A refused set is an `error` event naming the control (Home Assistant
sees no answers); the choice and R/ha/state stay as they were. The selects' options are the box's sections and
media library, polled by the housekeeper: when they change the select's config is republished, and a choice no
longer offered is cleared first, so Home Assistant never reads a choice outside the options it holds."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from pydantic import ValidationError

from ..common.errors import AttendanceError, InvalidRequest, PayloadTooLarge, public_error
from ..common.names import check_id
from ..config import Config
from ..contract.ha_api import HA_CONTROLS, MAX_CONTROL_BYTES, MAX_SELECT_OPTIONS, HaChoices
from ..mqtt.link import Incoming
from ..store import Store
from . import homeassistant
from .publisher import Publisher, encode

log = logging.getLogger(__name__)

CHOICES_FILE = "homeassistant.json"  # under the data directory
HA_STATE_LIMIT = 255  # Home Assistant refuses longer states: such a section is not offered


def offered(values: list[str]) -> list[str]:
    """What a select may offer: at most MAX_SELECT_OPTIONS, none that Home Assistant 2024.3 would show as
    `unknown` (`none` in any case) or refuse (longer than its 255-character state)."""
    return [v for v in values if v.lower() != "none" and 0 < len(v) <= HA_STATE_LIMIT][:MAX_SELECT_OPTIONS]


def parse_set(control: str, payload: bytes, options: dict[str, list[str]]) -> str | bool | None:
    """The one validation of a set on R/ha/<control>/set: the new value (None clears a select or the session
    name), or an error naming the control. A select takes one of the options it offers, or an empty payload."""
    field = f"ha/{control[:64]}"
    if control not in HA_CONTROLS:
        raise InvalidRequest(f"{field}: unknown control (known: {', '.join(HA_CONTROLS)})")
    if len(payload) > MAX_CONTROL_BYTES:
        raise PayloadTooLarge(f"{field}: payload of {len(payload)} bytes; at most {MAX_CONTROL_BYTES}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"{field}: not UTF-8 text ({exc.reason})") from exc
    if control == "export":
        if text not in ("ON", "OFF"):
            raise InvalidRequest(f"{field}: must be ON or OFF, got {text[:64]!r}")
        return text == "ON"
    if not text:
        return None
    if control == "session_name":
        return check_id(text, field)
    if text not in options[control]:
        what = "sections" if control == "section" else "media library's videos"
        raise InvalidRequest(f"{field}: {text[:64]!r} is not one of the box's {what} (options: "
                             f"{', '.join(options[control][:10]) or 'none'})")
    return text


def load_choices(path: Path) -> HaChoices:
    """The stored choices; the defaults (nothing chosen, no export) when there are none or they are unreadable."""
    try:
        return HaChoices.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return HaChoices()
    except (OSError, ValidationError) as exc:
        log.warning("Home Assistant choices in %s unreadable, starting without: %s", path, str(exc)[:200])
        return HaChoices()


def save_choices(path: Path, choices: HaChoices) -> None:
    """Written, fsynced, renamed over the old file, the folder fsynced: a crash keeps the old or the new."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(choices.model_dump_json(exclude={"device_id"}).encode())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class HaControls:
    """The choices, the options the selects offer, and what is published about them (all under one lock)."""

    def __init__(self, cfg: Config, store: Store, publisher: Publisher, version: str) -> None:
        self._cfg, self._store, self._publisher, self._version = cfg, store, publisher, version
        self.enabled = cfg.homeassistant.enabled
        self._file = cfg.paths.data_dir / CHOICES_FILE
        self._lock = threading.Lock()
        self._choices = load_choices(self._file)
        self._options: dict[str, list[str]] = {key: [] for key in homeassistant.SELECTS}

    def choices(self) -> HaChoices:
        with self._lock:
            return self._choices

    def owns(self, topic: str) -> bool:
        return self.enabled and self._publisher.topics.ha_control_of(topic) is not None

    def announce(self) -> None:
        """At start-up: every discovery config (or its removal when disabled) and the retained choices."""
        with self._lock:
            if self.enabled:
                self._options = self._read_options()
                self._drop_unoffered()
            for topic, payload in homeassistant.discovery_messages(self._cfg.homeassistant, self._publisher.topics,
                                                                   self._version, self._options):
                self._publisher.link.set_retained_topic(topic, payload)
            self._publish_state()

    def refresh(self) -> None:
        """The housekeeper's tick: the selects whose options changed are announced anew (a choice no longer
        offered is cleared first)."""
        if not self.enabled:
            return
        with self._lock:
            options = self._read_options()
            changed = [key for key in options if options[key] != self._options[key]]
            if not changed:
                return
            self._options = options
            if self._drop_unoffered():  # before the config without it
                self._publish_state()
            for topic, payload in homeassistant.discovery_messages(self._cfg.homeassistant, self._publisher.topics,
                                                                   self._version, options, only=changed):
                self._publisher.link.set_retained_topic(topic, payload)

    def command(self, incoming: Incoming) -> None:
        """A set on R/ha/<control>/set (the dispatcher's thread): applied and R/ha/state republished, or an
        `error` event naming the control. Never raises."""
        control = self._publisher.topics.ha_control_of(incoming.topic) or "?"
        try:
            if incoming.retain:  # replayed from the broker's store: it would be at every reconnect. Deleted with
                if self._publisher.link.v5:  # v5 only: with 3.1.1 the deletion would come back as an empty set
                    self._publisher.link.clear_retained(incoming.topic)
                raise InvalidRequest(f"ha/{control[:64]}: must not be retained (it would replay on every reconnect)")
            with self._lock:
                value = parse_set(control, incoming.payload, self._options)
                self._save(self._choices.model_copy(update={control: value}))
                self._publish_state()
        except (AttendanceError, OSError) as exc:
            message = (exc.message if isinstance(exc, AttendanceError)
                       else f"ha/{control[:64]}: not saved: {exc.strerror or type(exc).__name__}")
            log.info("Home Assistant control refused: %s", message)
            self._publisher.event("error", error=public_error(message))  # bounded, no paths
        except Exception:  # a bug must not end the dispatcher
            log.exception("Home Assistant control %.64s failed", control)

    # ---- under the lock ------------------------------------------------------------------------------------

    def _read_options(self) -> dict[str, list[str]]:
        return {"section": offered([s for s, _ in self._store.sections()]),
                "video": offered([m.name for m in self._store.media()])}

    def _drop_unoffered(self) -> bool:
        """Clears choices the selects no longer offer; True when one was."""
        c = self._choices
        update = {key: None for key in homeassistant.SELECTS if getattr(c, key) not in (None, *self._options[key])}
        if not update:
            return False
        try:
            self._save(c.model_copy(update=update))
        except OSError as exc:  # cleared all the same (never offered again); the next change saves again
            self._choices = c.model_copy(update=update)
            log.error("could not save the Home Assistant choices: %s", exc)
        return True

    def _save(self, choices: HaChoices) -> None:
        """Saved first (a failure changes nothing), then taken."""
        save_choices(self._file, choices)
        self._choices = choices

    def _publish_state(self) -> None:
        payload = (encode(self._choices.model_copy(update={"device_id": self._publisher.device_id}))
                   if self.enabled else b"")
        self._publisher.link.set_retained_topic(self._publisher.topics.ha_state, payload)
