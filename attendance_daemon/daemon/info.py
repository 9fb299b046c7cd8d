"""The retained `info`: version, detector, sections, problems, rosters, the next lesson, the declared cameras and
the requests refused on arrival. Republished only when it changed; the dispatcher, the lane workers, the
housekeeper and the scheduler all ask for it."""

from __future__ import annotations

import threading
from collections.abc import Callable

from .. import __version__
from ..common.timeutil import now_iso
from ..contract import api
from ..roster.sync import RosterSync
from ..store import Store
from .publisher import Publisher, encode


class InfoBoard:
    def __init__(self, publisher: Publisher, store: Store, detector_name: str, rosters: RosterSync | None,
                 problems: Callable[[], list[str]], next_lesson: Callable[[], api.NextLesson | None],
                 cameras: list[str] | None = None, refused: Callable[[], dict[str, int]] = dict) -> None:
        self._publisher, self._store, self._detector = publisher, store, detector_name
        self._cameras = list(cameras or [])
        self._rosters, self._problems, self._next, self._refused = rosters, problems, next_lesson, refused
        self.started_at = now_iso()
        self._payload = b""
        self._lock = threading.Lock()

    def publish(self) -> None:
        with self._lock:
            rosters = self._rosters
            info = api.Info(version=__version__, device_id=self._publisher.device_id, detector=self._detector,
                            sections=[{"section": s, "students": n} for s, n in self._store.sections()],
                            started_at=self.started_at,
                            problems=self._problems() + (rosters.problems() if rosters else []),
                            rosters=rosters.status() if rosters else {}, next_lesson=self._next(),
                            cameras=self._cameras, requests_refused=self._refused())
            payload = encode(info)
            if payload != self._payload:
                self._payload = payload
                self._publisher.retained("info", payload)
