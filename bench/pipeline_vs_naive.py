"""Benchmark: this pipeline vs a naive loop (HOG + encodings of every face in every frame) on the same
synthetic 720p classroom video, in one run. Prints frames/s of each, the ratio, peak RSS, and whether both
reach the same attendance outcome. Each side runs in its own process so peak RSS is its own.

    .venv/bin/python -m bench.pipeline_vs_naive [--seconds 12]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "faces"


def _prepare(workdir: Path, seconds: float) -> dict[str, Any]:
    from attendance_daemon.demo.faces import build_people
    from attendance_daemon.demo.synth import classroom_scene, expected, render
    from attendance_daemon.enrollment import Enroller
    from attendance_daemon.store import Store

    people = build_people(CACHE)
    scene = classroom_scene(people, seconds)
    video = workdir / "media" / "bench.mp4"
    frames = render(scene, video)
    store = Store(workdir / "data" / "attendance.sqlite3")
    enroller = Enroller(store)
    for p in scene.enrolled:
        enroller.enroll("bench", p.student_id, p.name, [p.enroll])
    store.close()
    present, _absent, unknowns = expected(scene, 3.0)
    return {"video": str(video), "frames": frames, "present": sorted(present), "unknowns": unknowns}


def _run_pipeline(workdir: Path) -> dict[str, Any]:
    from attendance_daemon.config import Config, PathsConfig
    from attendance_daemon.planning import plan_mp4
    from attendance_daemon.results import build_results
    from attendance_daemon.runtime import Runtime
    from attendance_daemon.session import SessionRunner
    from attendance_daemon.store import Store

    cfg = Config(paths=PathsConfig(data_dir=workdir / "data", media_dir=workdir / "media"))
    cfg.ensure_dirs()
    rt = Runtime(cfg, Store(cfg.paths.database))
    rt.detector.detect(np.zeros((720, 1280, 3), np.uint8))  # models loaded before the clock starts
    _ = rt.encoder
    plan = plan_mp4(cfg, rt.store, "bench.mp4", "bench", None, False)
    t0 = time.perf_counter()
    row = SessionRunner(cfg, rt.store, rt.detector, rt.encoder, plan).run()
    elapsed = time.perf_counter() - t0
    results = build_results(rt.store, row, cfg.recognition.min_presence_s)
    return {"frames": row.frames_processed, "seconds": elapsed,
            "present": sorted(p.student_id for p in results.present), "unknowns": results.unknowns}


def _run_naive(workdir: Path) -> dict[str, Any]:
    """What a first attempt looks like: every frame, HOG detection and an encoding per face, then match."""
    import face_recognition

    from attendance_daemon.store import Store

    store = Store(workdir / "data" / "attendance.sqlite3")
    roster, known, owners = store.section_encodings("bench")
    cap = cv2.VideoCapture(str(workdir / "media" / "bench.mp4"))
    fps = cap.get(cv2.CAP_PROP_FPS)
    seen = np.zeros(len(roster))
    unknown_people: list[np.ndarray] = []
    frames = 0
    t0 = time.perf_counter()
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames += 1
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        for enc in face_recognition.face_encodings(rgb, face_recognition.face_locations(rgb)):
            d = np.linalg.norm(known - enc, axis=1)
            if d.min() <= 0.5:
                seen[owners[d.argmin()]] += 1 / fps
            elif not unknown_people or np.linalg.norm(np.stack(unknown_people) - enc, axis=1).min() > 0.5:
                unknown_people.append(enc)
    elapsed = time.perf_counter() - t0
    present = sorted(roster[i].student_id for i in range(len(roster)) if seen[i] >= 3.0)
    return {"frames": frames, "seconds": elapsed, "present": present, "unknowns": len(unknown_people)}


def _child(mode: str, workdir: Path) -> None:
    out = _run_pipeline(workdir) if mode == "pipeline" else _run_naive(workdir)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=12.0, help="length of the synthetic video")
    ap.add_argument("--mode", choices=["pipeline", "naive"], help=argparse.SUPPRESS)
    ap.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:
        _child(args.mode, args.workdir)
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        truth = _prepare(workdir, args.seconds)
        res = {}
        for mode in ("pipeline", "naive"):
            proc = subprocess.run([sys.executable, "-m", "bench.pipeline_vs_naive", "--mode", mode,
                                   "--workdir", str(workdir)], cwd=REPO, capture_output=True, text=True,
                                  check=True)
            res[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    fps = {m: r["frames"] / r["seconds"] for m, r in res.items()}
    print(f"video: {truth['frames']} frames 1280x720, expected present {truth['present']}, "
          f"unknowns {truth['unknowns']}")
    for m, r in res.items():
        print(f"{m:>9}: {fps[m]:8.1f} frames/s  ({r['seconds']:.1f} s)  peak RSS {r['peak_rss_mb']:.0f} MB  "
              f"present {r['present']} unknowns {r['unknowns']}")
    print(f"speed-up: {fps['pipeline'] / fps['naive']:.1f}x (pipeline / naive, same run, same machine)")
    same = res["pipeline"]["present"] == res["naive"]["present"] == truth["present"]
    print(f"equal attendance outcome: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
