"""The demo/test sample: an enrollment tree and a classroom video with its ground truth as JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .faces import build_people
from .synth import classroom_scene, expected, render


def write_sample(out: Path, cache: Path, seconds: float = 12.0, min_presence_s: float = 3.0) -> dict[str, Any]:
    people = build_people(cache)
    scene = classroom_scene(people, seconds)
    enroll_root = out / "enrollment" / "demo"
    for p in scene.enrolled:
        folder = enroll_root / f"{p.student_id}__{p.name.replace(' ', '_')}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(p.enroll, folder / f"photo{p.enroll.suffix}")
    video = out / "media" / "classroom.mp4"
    frames = render(scene, video)
    present, absent, unknowns = expected(scene, min_presence_s)
    info = {
        "video": str(video), "frames": frames, "section": "demo", "enrollment": str(out / "enrollment"),
        "expected": {"present": sorted(present), "absent": sorted(absent), "unknowns": unknowns},
    }
    (out / "ground_truth.json").write_text(json.dumps(info, indent=2))
    return info
