"""systemd notify protocol (READY, WATCHDOG, STATUS, STOPPING); silent when not run by systemd."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


class SystemdNotifier:
    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._n = None
        if self.enabled:
            import sdnotify

            self._n = sdnotify.SystemdNotifier()
        usec = os.environ.get("WATCHDOG_USEC")
        self.watchdog_s: float | None = int(usec) / 1e6 if usec and usec.isdigit() else None

    def _send(self, message: str) -> None:
        if self._n is not None:
            self._n.notify(message)

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        self._send(f"STATUS={status}")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def stopping(self) -> None:
        self._send("STOPPING=1\nSTATUS=stopping")
