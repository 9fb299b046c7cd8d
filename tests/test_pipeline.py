"""End-to-end recognition on the synthetic classroom: the exact ground-truth outcome, with real models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import pytest

from attendance_daemon.attendance.results import build_results
from attendance_daemon.common.errors import Conflict, Forbidden, InvalidRequest, MediaError, NotFound
from attendance_daemon.contract.api import Progress
from attendance_daemon.recognition.detect import HogDetector
from attendance_daemon.sessions.planning import plan_mp4
from attendance_daemon.sessions.runner import SessionControl, SessionHooks, SessionRunner
from attendance_daemon.sessions.runtime import Runtime


def _run(rt: Runtime, export: bool = False, hooks: SessionHooks | None = None,
         control: SessionControl | None = None, name: str | None = None) -> Any:
    plan = plan_mp4(rt.cfg, rt.store, "classroom.mp4", "demo", name, export)
    row = SessionRunner(rt.cfg, rt.store, rt.detector, rt.encoder, plan, control, hooks).run()
    return build_results(rt.store, row, rt.cfg)


def _assert_truth(results: Any, truth: dict[str, Any]) -> None:
    assert {p.student_id for p in results.present} == set(truth["present"])
    assert {a.student_id for a in results.absent} == set(truth["absent"])
    assert results.unknowns == truth["unknowns"]
    assert results.present_count == len(truth["present"])
    assert results.total == len(truth["present"]) + len(truth["absent"])


def test_exact_outcome_with_export(runtime: Runtime, ground_truth: dict[str, Any], sample: dict[str, Any]) -> None:
    events: list[tuple[str, dict[str, object]]] = []

    class Hooks(SessionHooks):
        def event(self, kind: str, **fields: object) -> None:
            events.append((kind, fields))

    results = _run(runtime, export=True, hooks=Hooks())
    _assert_truth(results, ground_truth)
    assert results.status == "completed" and results.error is None
    assert results.frames_processed == sample["frames"]
    late = next(p for p in results.present if p.student_id == "S003")  # Tom Hanks arrives at 2.4 s
    assert 2.0 <= late.first_seen_s <= 3.5 and 8.0 <= late.seen_s <= 10.0
    # one event per student, one per unknown person
    present_events = [str(f["student_id"]) for k, f in events if k == "student_present"]
    assert sorted(present_events) == sorted(ground_truth["present"])
    unknown_events = [f for k, f in events if k == "unknown_face"]
    assert len(unknown_events) == 1  # its crop_path is its place in the data directory: no path of the box leaves it
    assert (runtime.cfg.paths.data_dir / str(unknown_events[0]["crop_path"])).is_file()
    # the export is a real, readable video at the analysed rate
    assert results.export_path and Path(results.export_path).is_file()
    cap = cv2.VideoCapture(results.export_path)
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == sample["frames"] // 3
    assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 1280
    cap.release()


def test_hog_fallback_gives_same_outcome(runtime: Runtime, ground_truth: dict[str, Any]) -> None:
    runtime._detector = HogDetector(min_face_px=runtime.cfg.recognition.min_face_px)
    _assert_truth(_run(runtime), ground_truth)


def test_pause_holds_the_exact_frame(runtime: Runtime, ground_truth: dict[str, Any]) -> None:
    control = SessionControl()
    seen: list[Progress] = []
    positions: list[int] = []

    class Hooks(SessionHooks):
        def progress(self, progress: Progress) -> None:
            seen.append(progress)
            if progress.paused:
                positions.append(progress.frame)
                import threading

                threading.Timer(0.3, control.resume).start()

        def heartbeat(self) -> None:
            if not positions and seen and seen[-1].frame >= 60:
                control.pause()

    runtime.cfg.daemon.progress_hz = 2.0
    results = _run(runtime, hooks=Hooks(), control=control)
    _assert_truth(results, ground_truth)
    assert len(positions) == 1
    paused_at = positions[0]
    after = [p for p in seen[seen.index(next(p for p in seen if p.paused)) + 1:]]
    assert after[0].frame == paused_at and not after[0].paused  # resumes where it stopped
    assert results.frames_processed == 180


def test_stop_keeps_what_was_seen(runtime: Runtime) -> None:
    control = SessionControl()

    class Hooks(SessionHooks):
        def event(self, kind: str, **fields: object) -> None:
            if kind == "student_present":
                control.stop()

    results = _run(runtime, hooks=Hooks(), control=control)
    assert results.status == "stopped"
    assert results.present_count >= 1
    assert 0 < results.frames_processed < 180
    assert runtime.store.attendance(results.session_id)


def test_bad_requests(runtime: Runtime, tmp_path: Path) -> None:
    with pytest.raises(Forbidden, match="path"):
        plan_mp4(runtime.cfg, runtime.store, "../../etc/passwd", "demo", None, False)
    with pytest.raises(MediaError, match="no such video"):
        plan_mp4(runtime.cfg, runtime.store, "nope.mp4", "demo", None, False)
    with pytest.raises(NotFound, match="section"):
        plan_mp4(runtime.cfg, runtime.store, "classroom.mp4", "nope", None, False)
    corrupt = runtime.cfg.paths.media / "corrupt.mp4"
    if not corrupt.exists():
        corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    plan = plan_mp4(runtime.cfg, runtime.store, "corrupt.mp4", "demo", None, False)
    with pytest.raises(MediaError, match="corrupt"):
        SessionRunner(runtime.cfg, runtime.store, runtime.detector, runtime.encoder, plan)
    runtime.store.upsert_student("empty", "X1", "No Face")
    plan = plan_mp4(runtime.cfg, runtime.store, "classroom.mp4", "empty", None, False)
    with pytest.raises(InvalidRequest, match="no enrolled faces"):
        SessionRunner(runtime.cfg, runtime.store, runtime.detector, runtime.encoder, plan)
    _run(runtime, name="dup")
    with pytest.raises(Conflict, match="session_name"):
        _run(runtime, name="dup")
