"""Synthetic classroom videos with known ground truth: real faces moving, entering and leaving."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .faces import Person


@dataclass(frozen=True)
class Appearance:
    person: Person
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Scene:
    """Who is on screen when; `enrolled` are the section's roster (others are unknown visitors)."""

    appearances: list[Appearance]
    enrolled: list[Person]
    duration_s: float


def classroom_scene(people: list[Person], duration_s: float = 12.0) -> Scene:
    """Six students present (one arrives late, one leaves early), one only glimpsed (too short to count),
    one enrolled but absent, one unknown visitor. Expects build_people()'s ten people."""
    by = {p.key: p for p in people}
    d = duration_s
    appearances = [
        Appearance(by["obama"], 0.0, d),
        Appearance(by["biden"], 0.0, d),
        Appearance(by["hanks"], d * 0.2, d),  # late
        Appearance(by["group0"], 0.0, d * 0.65),  # leaves early
        Appearance(by["group1"], d * 0.1, d * 0.9),
        Appearance(by["group2"], 0.0, d),
        Appearance(by["group4"], d * 0.45, d * 0.45 + 1.0),  # glimpsed for 1 s: below min_presence
        Appearance(by["group5"], d * 0.25, d * 0.85),  # not enrolled: the unknown
    ]
    enrolled = [by[k] for k in ("obama", "biden", "hanks", "group0", "group1", "group2", "group3", "group4")]
    return Scene(appearances, enrolled, duration_s)


def expected(scene: Scene, min_presence_s: float) -> tuple[set[str], set[str], int]:
    """(present student ids, absent student ids, unknown count) as the ground truth says."""
    enrolled = {p.student_id for p in scene.enrolled}
    seen: dict[str, float] = {}
    for a in scene.appearances:
        if a.person.student_id in enrolled:
            seen[a.person.student_id] = seen.get(a.person.student_id, 0.0) + (a.end_s - a.start_s)
    present = {sid for sid, s in seen.items() if s >= min_presence_s}
    unknowns = len({a.person.key for a in scene.appearances if a.person.student_id not in enrolled})
    return present, enrolled - present, unknowns


def _background(width: int, height: int) -> np.ndarray:
    """A plain classroom-ish backdrop: wall gradient, a board, desk rows. Deterministic."""
    ramp = np.linspace(170, 120, height, dtype=np.float32)[:, None, None]
    bg = np.broadcast_to(ramp * np.array([1.0, 0.97, 0.9], np.float32), (height, width, 3)).copy()
    cv2.rectangle(bg, (width // 4, height // 20), (3 * width // 4, height // 5), (40, 70, 40), -1)
    for row in range(3):
        y = int(height * (0.55 + 0.15 * row))
        cv2.rectangle(bg, (0, y), (width, y + height // 30), (60, 90, 120), -1)
    noise = np.random.default_rng(7).normal(0, 4, bg.shape).astype(np.float32)
    out: np.ndarray = np.clip(bg + noise, 0, 255).astype(np.uint8)
    return out


def render(scene: Scene, path: Path, width: int = 1280, height: int = 720, fps: float = 15.0,
           face_px: int = 200) -> int:
    """Writes the scene as an mp4v video; each person keeps a seat slot and sways in it. Returns frames."""
    slots = [(c, r) for r in range(2) for c in range(4)]
    keys = list(dict.fromkeys(a.person.key for a in scene.appearances))
    sprites: dict[str, np.ndarray] = {}
    for a in scene.appearances:
        img = cv2.imread(str(a.person.appear))
        if img is None:
            raise FileNotFoundError(a.person.appear)
        scale = face_px / img.shape[0]
        sprites[a.person.key] = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    bg = _background(width, height)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"cannot write {path}")
    n = round(scene.duration_s * fps)
    cell_w, cell_h = width // 4, height // 2
    try:
        for i in range(n):
            t = i / fps
            frame = bg.copy()
            for a in scene.appearances:
                if not a.start_s <= t < a.end_s:
                    continue
                k = keys.index(a.person.key)
                col, row = slots[k % len(slots)]
                sprite = sprites[a.person.key]
                sh, sw = sprite.shape[:2]
                dx = int(25 * math.sin(2 * math.pi * t / 6.0 + k))
                dy = int(12 * math.sin(2 * math.pi * t / 4.0 + 2 * k))
                x = col * cell_w + (cell_w - sw) // 2 + dx
                y = row * cell_h + (cell_h - sh) // 2 + dy
                x, y = max(0, min(width - sw, x)), max(0, min(height - sh, y))
                frame[y:y + sh, x:x + sw] = sprite
            writer.write(frame)
    finally:
        writer.release()
    return n
