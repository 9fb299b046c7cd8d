"""Benchmark: this pipeline against the two loops people write first, on the same videos, in one run.

- naive: face_recognition's HOG and an encoding of every face in every frame;
- stride: the same, but only at the pipeline's analysis rate (5 frames a second): the "obvious script".

Videos: the demo's 12 s 720p classroom (15 fps, 95 px faces) and a 10 s 1080p 30 fps room of 36 faces
(44-88 px, from bench.accuracy's scenarios; `--no-room` skips it, the naive loop is skipped there: it would take
an hour). Each side runs in its own process; reported: frames/s, CPU seconds (the process and its encoder child),
peak RSS, present students against the ground truth, and the ratios pipeline vs each baseline.

    .venv/bin/python -m bench.pipeline_vs_naive [--no-room]
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

from .accuracy import _cpu

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache"
ROOM = "1080p room of 36, 44-88px"


def _prepare(workdir: Path, room: bool) -> dict[str, Any]:
    """Enrolls the section of each video and returns {video: (path, truth, analysis stride)}."""
    from attendance_daemon.demo.faces import build_people
    from attendance_daemon.demo.scenarios import scenario_set
    from attendance_daemon.demo.synth import classroom_scene, expected, render
    from attendance_daemon.roster.enrollment import Enroller
    from attendance_daemon.store import Store

    from .accuracy import scenario_video

    people = build_people(CACHE / "faces")
    store = Store(workdir / "data" / "attendance.sqlite3")
    enroller = Enroller(store)
    scene = classroom_scene(people, 12.0)
    video = workdir / "media" / "classroom.mp4"
    render(scene, video)
    for p in scene.enrolled:
        enroller.enroll("classroom", p.student_id, p.name, [p.enroll])
    present, _absent, unknowns = expected(scene, 3.0)
    videos = {"classroom": {"path": str(video), "present": sorted(present), "unknowns": unknowns}}
    if room:
        sc = next(s for s in scenario_set(people) if s.name == ROOM)
        for p in sc.enrolled:
            enroller.enroll("room", p.student_id, p.name, [p.enroll])
        want, unknowns = sc.truth(3.0)
        path = scenario_video(sc, ",".join(p.key for p in people))
        videos["room"] = {"path": str(path), "present": sorted(want), "unknowns": unknowns}
    store.close()
    return videos


def _run_pipeline(workdir: Path, section: str, video: str) -> dict[str, Any]:
    from attendance_daemon.attendance.results import build_results
    from attendance_daemon.config import Config, PathsConfig
    from attendance_daemon.sessions.planning import plan_mp4
    from attendance_daemon.sessions.runner import SessionRunner
    from attendance_daemon.sessions.runtime import Runtime
    from attendance_daemon.store import Store

    cfg = Config(paths=PathsConfig(data_dir=workdir / "data", media_dir=workdir / "media"))  # the default config
    cfg.ensure_dirs()
    rt = Runtime(cfg, Store(cfg.paths.database))
    rt.detector.detect(np.zeros((720, 1280, 3), np.uint8))  # models loaded before the clock starts
    _ = rt.encoder
    plan = plan_mp4(cfg, rt.store, video, section, None, False, allow_outside_media=True)
    t0, c0 = time.perf_counter(), _cpu()
    row = SessionRunner(cfg, rt.store, rt.detector, rt.encoder, plan).run()
    elapsed, cpu = time.perf_counter() - t0, _cpu() - c0
    results = build_results(rt.store, row, cfg)
    rt.close()
    return {"frames": row.frames_processed, "seconds": elapsed, "cpu": cpu,
            "present": sorted(p.student_id for p in results.present), "unknowns": results.unknowns}


def _run_script(workdir: Path, section: str, video: str, every: int | None) -> dict[str, Any]:
    """What a first attempt looks like: HOG detection and an encoding per face, then match (0.5 tolerance).
    `every` = None analyses every frame; otherwise every n-th frame (the others only grabbed)."""
    import face_recognition

    from attendance_daemon.store import Store

    store = Store(workdir / "data" / "attendance.sqlite3")
    roster, known, owners = store.section_encodings(section)
    cap = cv2.VideoCapture(video)
    fps = cap.get(cv2.CAP_PROP_FPS)
    step = every or 1
    seen = np.zeros(len(roster))
    unknown_people: list[np.ndarray] = []
    frames = 0
    t0, c0 = time.perf_counter(), _cpu()
    while True:
        if frames % step:
            if not cap.grab():
                break
            frames += 1
            continue
        ok, bgr = cap.read()
        if not ok:
            break
        frames += 1
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        for enc in face_recognition.face_encodings(rgb, face_recognition.face_locations(rgb)):
            d = np.linalg.norm(known - enc, axis=1)
            if d.min() <= 0.5:
                seen[owners[d.argmin()]] += step / fps
            elif not unknown_people or np.linalg.norm(np.stack(unknown_people) - enc, axis=1).min() > 0.5:
                unknown_people.append(enc)
    elapsed, cpu = time.perf_counter() - t0, _cpu() - c0
    present = sorted(roster[i].student_id for i in range(len(roster)) if seen[i] >= 3.0)
    return {"frames": frames, "seconds": elapsed, "cpu": cpu, "present": present, "unknowns": len(unknown_people)}


def _child(mode: str, workdir: Path, section: str, video: str) -> None:
    if mode == "pipeline":
        out = _run_pipeline(workdir, section, video)
    else:
        fps = cv2.VideoCapture(video).get(cv2.CAP_PROP_FPS)
        out = _run_script(workdir, section, video, None if mode == "naive" else max(1, round(fps / 5.0)))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["child_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the encoder, reaped
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-room", action="store_true", help="only the 720p classroom")
    ap.add_argument("--mode", choices=["pipeline", "naive", "stride"], help=argparse.SUPPRESS)
    ap.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--section", help=argparse.SUPPRESS)
    ap.add_argument("--video", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:
        _child(args.mode, args.workdir, args.section, args.video)
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        videos = _prepare(workdir, room=not args.no_room)
        for section, truth in videos.items():
            modes = ("pipeline", "stride") if section == "room" else ("pipeline", "stride", "naive")
            res = {}
            for mode in modes:
                proc = subprocess.run([sys.executable, "-m", "bench.pipeline_vs_naive", "--mode", mode, "--workdir",
                                       str(workdir), "--section", section, "--video", truth["path"]],
                                      cwd=REPO, capture_output=True, text=True, check=True)
                res[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
            _report(section, truth, res)


def _report(section: str, truth: dict[str, Any], res: dict[str, dict[str, Any]]) -> None:
    cap = cv2.VideoCapture(truth["path"])
    w, h, fps = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                 cap.get(cv2.CAP_PROP_FPS))
    want = set(truth["present"])
    print(f"\n{section}: {w}x{h} {fps:g} fps, {res['pipeline']['frames']} frames; "
          f"{len(want)} present, {truth['unknowns']} unknown visitors")
    print("| | frames/s | CPU s | peak RSS (+ encoder child) | present found | false presents | unknowns |")
    print("|---|---|---|---|---|---|---|")
    for mode, r in res.items():
        got = set(r["present"])
        child = f" + {r['child_rss_mb']:.0f}" if r["child_rss_mb"] > 1 else ""
        print(f"| {mode} | {r['frames'] / r['seconds']:.1f} | {r['cpu']:.1f} | {r['peak_rss_mb']:.0f}{child} MB | "
              f"{len(got & want)}/{len(want)} | {len(got - want)} | {r['unknowns']}/{truth['unknowns']} |")
    base = res["pipeline"]
    for mode in (m for m in res if m != "pipeline"):
        print(f"pipeline vs {mode}: {res[mode]['cpu'] / base['cpu']:.1f}x less CPU, "
              f"{(base['frames'] / base['seconds']) / (res[mode]['frames'] / res[mode]['seconds']):.1f}x the "
              f"frames/s (same run, same machine)")


if __name__ == "__main__":
    main()
