"""The single active mode (idle / webcam / mp4) is the global lock: one session at a time.

No MQTT here: transitions are plain method calls under one lock, each returning the new State or raising
Conflict (409) with the current state attached, so any front end can report the refusal identically.

The lock is private: callers pass the small step that must happen atomically with a transition (create the
session's row, flip a pause switch) as a callable, and do their slow preparation (opening a camera) before.
So nobody waits on I/O behind it: the main loop reads the state for its watchdog status line."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Literal

from ..common.errors import Conflict
from ..common.timeutil import now_iso
from ..contract.api import SessionInfo, State

ActiveMode = Literal["webcam", "mp4"]
FINISH_WAIT_S = 10.0  # a start waits this long for a session that is only publishing its results


class StateMachine:
    def __init__(self, on_change: Callable[[State], None] | None = None, device_id: str | None = None) -> None:
        self._device_id = device_id  # carried in every State, so a fleet flow knows the box after a join
        self._lock = threading.RLock()
        self._mode: Literal["idle", "webcam", "mp4"] = "idle"
        self._paused = False
        self._session: SessionInfo | None = None
        self._finishing = False  # the session's worker is done and is publishing its results
        self._ended = threading.Condition(self._lock)
        self._updated_at = now_iso()
        self._on_change = on_change

    def state(self) -> State:
        with self._lock:
            return State(mode=self._mode, busy=self._mode != "idle", paused=self._paused, session=self._session,
                         updated_at=self._updated_at, device_id=self._device_id)

    def _refuse(self, message: str) -> Conflict:
        return Conflict(message, {"state": self.state().model_dump()})

    def ensure_idle(self) -> None:
        """Refuses while a session runs. A session that is only publishing its results (a dashboard saw them
        and starts the next one at once) is waited for, so that start is not a spurious 409."""
        with self._lock:
            if self._session is not None and self._finishing:
                self._ended.wait_for(lambda: self._session is None or not self._finishing, FINISH_WAIT_S)
            if self._session is not None:
                raise self._refuse(f"busy: {self._mode} session '{self._session.name}' is running")

    def begin(self, mode: ActiveMode, session: SessionInfo | Callable[[], SessionInfo]) -> State:
        """Idle -> mode. `session` may be a commit step (e.g. create the row, start the worker) that runs
        under the lock only once idleness is confirmed; if it raises, nothing changes."""
        with self._lock:
            self.ensure_idle()
            info = session() if callable(session) else session
            self._mode, self._paused, self._session, self._finishing = mode, False, info, False
            return self._changed()

    def _guard(self, session_id: str | None, action: str) -> SessionInfo:
        if self._session is None:
            raise self._refuse(f"not running: cannot {action} while idle")
        if session_id is not None and session_id != self._session.id:
            raise self._refuse(
                f"wrong session: session_id '{session_id}' is not the running session '{self._session.id}'"
            )
        return self._session

    def pause(self, session_id: str | None = None, then: Callable[[], None] | None = None) -> State:
        """`then` (e.g. flip the worker's pause switch) runs under the lock once the pause is allowed."""
        with self._lock:
            self._guard(session_id, "pause")
            if self._paused:
                raise self._refuse("already paused")
            if then is not None:
                then()
            self._paused = True
            return self._changed()

    def resume(self, session_id: str | None = None, then: Callable[[], None] | None = None) -> State:
        with self._lock:
            self._guard(session_id, "resume")
            if not self._paused:
                raise self._refuse("not paused: resume needs a paused session")
            if then is not None:
                then()
            self._paused = False
            return self._changed()

    def check_stop(self, session_id: str | None = None, then: Callable[[], None] | None = None) -> SessionInfo:
        with self._lock:
            info = self._guard(session_id, "stop")
            if then is not None:
                then()
            return info

    def finishing(self, session_id: str) -> None:
        """The worker has stored the session and is publishing its results; `end` follows."""
        with self._lock:
            if self._session is not None and self._session.id == session_id:
                self._finishing = True

    def end(self, session_id: str) -> State:
        """The worker finished: back to idle (only if that session is still the active one)."""
        with self._lock:
            if self._session is not None and self._session.id == session_id:
                self._mode, self._paused, self._session, self._finishing = "idle", False, None, False
                self._ended.notify_all()
                return self._changed()
            return self.state()

    def republish(self) -> State:
        """Hands the unchanged state to `on_change` (something its publisher adds changed, e.g. the next lesson),
        under the lock: a thread republishing never overtakes a transition with an older snapshot."""
        with self._lock:
            state = self.state()
            if self._on_change is not None:
                self._on_change(state)
            return state

    def _changed(self) -> State:
        self._updated_at = now_iso()
        state = self.state()
        if self._on_change is not None:
            self._on_change(state)
        return state
