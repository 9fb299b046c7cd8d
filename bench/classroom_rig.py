"""What several benchmarks start from: a rendered classroom video in a media folder and a database with its
section enrolled, for a daemon process to run sessions on."""

from __future__ import annotations

from pathlib import Path

from attendance_daemon.demo.faces import build_people
from attendance_daemon.demo.synth import classroom_scene, render
from attendance_daemon.roster.enrollment import Enroller
from attendance_daemon.store import Store

REPO = Path(__file__).resolve().parent.parent


def classroom(work: Path, scene_s: float) -> tuple[Path, Path]:
    """(media folder holding `long.mp4` of `scene_s` seconds, seed database with section `demo` enrolled)."""
    scene = classroom_scene(build_people(REPO / ".cache" / "faces"), scene_s)
    media = work / "media"
    render(scene, media / "long.mp4")
    db = work / "seed.sqlite3"
    store = Store(db)
    enroller = Enroller(store)
    for p in scene.enrolled:
        enroller.enroll("demo", p.student_id, p.name, [p.enroll])
    store.close()
    return media, db
