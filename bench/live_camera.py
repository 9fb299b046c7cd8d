"""Benchmark: CPU needed to keep up with a live 1080p 30 fps camera watching a room of 36 faces.

A USB camera at 1080p30 delivers MJPEG; OpenCV dequeues every frame (`grab`) and decodes only what it
`retrieve`s. This replays the room scenario that way, paced by the wall clock: every frame is dequeued at 30 fps,
the analysed ones (5 a second) are JPEG-decoded and run through the real recognizer with the default config and the
encoder child, for `--seconds` of wall time. Reported: CPU of the process and its encoder child as % of one core,
for the first 10 s (faces being encoded) and the rest (steady state); baseline in the same run: the same camera
feed decoded at 5 fps with no recognition.

    .venv/bin/python -m bench.live_camera [--seconds 40]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from attendance_daemon.attendance.presence import AttendanceBook
from attendance_daemon.config import Config, PathsConfig
from attendance_daemon.demo.faces import build_people
from attendance_daemon.demo.scenarios import scenario_set
from attendance_daemon.recognition.match import Matcher
from attendance_daemon.sessions.recognizer import Recognizer
from attendance_daemon.sessions.runtime import Runtime
from attendance_daemon.sessions.sources import Frame
from attendance_daemon.store import Store

from .accuracy import CACHE, _cpu, enrollment_vectors, scenario_video
from .pipeline_vs_naive import ROOM

FPS = 30.0


def _jpeg_frames(video: Path) -> list[bytes]:
    """The video's frames as a camera's MJPEG stream would carry them."""
    cap = cv2.VideoCapture(str(video))
    out = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        out.append(cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    return out


def _feed(frames: list[bytes], seconds: float, analyse: float,
          on_frame: Callable[[Frame], object] | None) -> list[tuple[float, float]]:
    """Paces the stream at 30 fps; every 1/analyse s the newest frame is decoded and handed on.
    Returns (wall t, cumulative CPU) samples once a second."""
    t0 = time.monotonic()
    samples = [(0.0, _cpu())]
    n = 0
    next_analysis = 0.0
    while (t := time.monotonic() - t0) < seconds:
        due = n / FPS
        if t < due:
            time.sleep(due - t)
        jpeg = frames[n % len(frames)]  # dequeued: a camera's buffer handed over, no decoding
        if due >= next_analysis:
            next_analysis += 1.0 / analyse
            bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            if on_frame is not None and bgr is not None:
                on_frame(Frame(n, due, bgr))
        n += 1
        if n % int(FPS) == 0:
            samples.append((time.monotonic() - t0, _cpu()))
    return samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=40.0)
    args = ap.parse_args()
    people = build_people(CACHE / "faces")
    sc = next(s for s in scenario_set(people) if s.name == ROOM)
    frames = _jpeg_frames(scenario_video(sc, ",".join(p.key for p in people)))
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Config(paths=PathsConfig(data_dir=Path(tmp) / "data", media_dir=Path(tmp) / "media"))
        cfg.ensure_dirs()
        rt = Runtime(cfg, Store(cfg.paths.database))
        vectors = enrollment_vectors(people, rt)
        rc = cfg.recognition
        for p in sc.enrolled:
            rt.store.add_encoding(rt.store.upsert_student("room", p.student_id, p.name), vectors[p.student_id], "b")
        roster, enc, owners = rt.store.section_encodings("room")
        book = AttendanceBook(roster, 1.0 / rc.analysis_fps, rc.presence_gap_s, rc.votes_to_confirm, rc.vote_ratio,
                              rc.min_presence_s, rc.unknown_votes, rc.unknown_distance, rc.confident_distance)
        rt.detector.detect(np.zeros((1080, 1920, 3), np.uint8))
        recognizer = Recognizer(rt.detector, rt.encoder, Matcher(enc, owners, len(roster), rc.match_tolerance),
                                book, rc)
        base = _feed(frames, min(args.seconds, 15.0), rc.analysis_fps, None)
        live = _feed(frames, args.seconds, rc.analysis_fps, recognizer.process)
        recognizer.finish()
        present = len(book.present_indices())
        rt.close()
    want, _ = sc.truth(rc.min_presence_s)

    def pct(samples: list[tuple[float, float]], start: float, end: float) -> float:
        inside = [s for s in samples if start <= s[0] <= end]
        return 100.0 * (inside[-1][1] - inside[0][1]) / max(1e-9, inside[-1][0] - inside[0][0])

    print(f"live 1080p {FPS:g} fps camera (MJPEG), room of 36 faces, analysis {rc.analysis_fps:g} fps, "
          f"{args.seconds:g} s; present {present}/{len(want)}, {recognizer.encodings} encodings")
    print("| | CPU, % of one core |")
    print("|---|---|")
    print(f"| camera feed only (baseline) | {pct(base, 0, 1e9):.0f} % |")
    print(f"| recognition, first 10 s (faces being encoded) | {pct(live, 0, 10):.0f} % |")
    print(f"| recognition, after 10 s (steady state) | {pct(live, 10, 1e9):.0f} % |")


if __name__ == "__main__":
    main()
