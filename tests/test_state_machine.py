import threading

import pytest

from attendance_daemon.common.errors import Conflict
from attendance_daemon.contract.api import SessionInfo, State
from attendance_daemon.sessions.state_machine import StateMachine


def _info(sid: str) -> SessionInfo:
    return SessionInfo(id=sid, name=f"n-{sid}", section="cs", source="a.mp4", export=False,
                       started_at="2026-11-24T09:00:00Z")


def test_transitions_and_refusals() -> None:
    published: list[State] = []
    sm = StateMachine(on_change=published.append)
    with pytest.raises(Conflict, match="idle"):
        sm.pause()
    state = sm.begin("mp4", _info("a"))
    assert state.busy and state.mode == "mp4" and published[-1] == state
    with pytest.raises(Conflict) as busy:
        sm.begin("webcam", _info("b"))
    assert busy.value.message == "busy: mp4 session 'n-a' is running"
    assert busy.value.data["state"] == sm.state().model_dump()
    with pytest.raises(Conflict, match="not paused"):
        sm.resume()
    with pytest.raises(Conflict, match="wrong session"):
        sm.pause("b")
    assert sm.pause("a").paused
    with pytest.raises(Conflict, match="already paused"):
        sm.pause()
    assert not sm.resume().paused
    with pytest.raises(Conflict, match="wrong session"):
        sm.check_stop("b")
    assert sm.check_stop("a").id == "a"
    assert sm.end("b").busy  # a stale worker cannot free someone else's session
    assert sm.end("a").mode == "idle"
    assert [s.mode for s in published] == ["mp4", "mp4", "mp4", "idle"]


def test_only_one_of_many_concurrent_begins_wins() -> None:
    sm = StateMachine()
    barrier = threading.Barrier(32)
    wins: list[str] = []
    refusals: list[str] = []

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            sm.begin("mp4", _info(str(i)))
            wins.append(str(i))
        except Conflict:
            refusals.append(str(i))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(refusals) == 31
    assert sm.state().session is not None and sm.state().session.id == wins[0]  # type: ignore[union-attr]


def test_a_start_waits_for_a_session_that_is_only_publishing_its_results() -> None:
    sm = StateMachine()
    sm.begin("mp4", _info("a"))
    with pytest.raises(Conflict, match="busy"):  # still running: refused at once, as ever
        sm.begin("mp4", _info("b"))
    sm.finishing("a")  # the worker stored the session; its results are on their way out
    ended = threading.Timer(0.2, sm.end, args=("a",))
    ended.start()
    state = sm.begin("mp4", _info("b"))  # a dashboard that saw the results starts the next one: no 409
    assert state.session is not None and state.session.id == "b"
    ended.join()
    sm.finishing("b")
    sm.end("b")
    assert not sm.state().busy


def test_a_republish_is_never_overtaken_by_a_transition() -> None:
    """The scheduler republishes the state when the next lesson changes, on its own thread: a start on the
    dispatcher meanwhile must not be followed by the older (idle) snapshot, or the retained state lies."""
    published: list[State] = []
    in_republish, release = threading.Event(), threading.Event()

    def on_change(state: State) -> None:
        if not published and not state.busy:  # the republish: hold it while a start is attempted
            in_republish.set()
            release.wait(10)
        published.append(state)

    sm = StateMachine(on_change=on_change)
    republisher = threading.Thread(target=sm.republish)
    republisher.start()
    assert in_republish.wait(10)
    starter = threading.Thread(target=sm.begin, args=("webcam", _info("a")))
    starter.start()
    starter.join(1.0)  # a bound, not a measurement: with the lock held, the start waits for the republish
    release.set()
    republisher.join(10)
    starter.join(10)
    assert [s.busy for s in published] == [False, True]
    assert sm.state().busy
