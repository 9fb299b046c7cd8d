"""What command handlers are given: the daemon's few services, by name. Handlers never see the Daemon, so what a
handler may touch is written here, and a test can build one from real parts."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config
from ..media.downloads import HashCache
from ..media.uploads import Uploads
from ..roster.enrollment import Enroller
from ..store import Store
from .ha_controls import HaControls
from .info import InfoBoard
from .publisher import Publisher
from .record_outbox import RecordOutbox
from .scheduler import Scheduler
from .session_worker import SessionWorker


@dataclass(frozen=True)
class Services:
    cfg: Config
    store: Store
    sessions: SessionWorker  # start, pause, resume, stop, state: the one way to the state machine
    enroller: Enroller
    publisher: Publisher  # events and retained results after an erasure
    info: InfoBoard  # republish the retained info after a roster change
    scheduler: Scheduler  # the timetable's lessons and `changed()`
    uploads: Uploads  # begin and status of uploads (their chunks go to the upload worker)
    downloads: HashCache  # sha256 of files being downloaded, hashed once
    controls: HaControls  # Home Assistant's choices (start_selected) and its sets on R/ha/<control>/set
    outbox: RecordOutbox  # `changed()` after a record changed: its Results reach the broker and the hub
