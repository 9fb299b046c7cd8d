"""Classroom scenario videos for measuring recognition where it is hard: small faces, full rooms, 480p to 1080p,
blur, dim light, heavy H.264, turned heads, covered mouths, a glimpse, a look-alike. Real faces (see faces.py),
rendered with ffmpeg (libx264) so the decoder sees what a camera's encoder produces; ground truth is exact."""

from __future__ import annotations

import math
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .faces import Person
from .synth import _background


@dataclass(frozen=True)
class Condition:
    """What the camera and the room do to every frame (defaults: a clean, well-lit recording)."""

    blur_px: int = 0  # horizontal motion-blur length in pixels of the output frame
    light: float = 1.0  # brightness factor (0.45 = dim room, 0.22 = lights off)
    noise: float = 0.0  # sensor noise sigma added after dimming
    crf: int = 23  # libx264 quality (higher = stronger compression)
    turn_deg: float = 0.0  # head yaw, rendered as a perspective squeeze of the face
    mouth_covered: bool = False  # a hand over the mouth and chin


@dataclass(frozen=True)
class Seat:
    person: Person
    x: int  # face centre in the frame
    y: int
    face_px: int  # face box width (what a detector would report)
    start_s: float = 0.0
    end_s: float = math.inf


@dataclass
class Scenario:
    name: str
    width: int
    height: int
    seats: list[Seat]
    enrolled: list[Person]
    duration_s: float = 10.0
    fps: float = 30.0
    condition: Condition = field(default_factory=Condition)
    note: str = ""
    family: Any = None  # families.FamilyParams of a seeded hard-room family (rendered by families.render_family)

    def truth(self, min_presence_s: float) -> tuple[set[str], int]:
        """(student ids that must be present, distinct unknown visitors seen at least min_presence_s)."""
        enrolled = {p.student_id for p in self.enrolled}
        seen: dict[str, float] = {}
        for s in self.seats:
            end = min(s.end_s, self.duration_s)
            seen[s.person.student_id] = seen.get(s.person.student_id, 0.0) + max(0.0, end - s.start_s)
        present = {sid for sid, t in seen.items() if sid in enrolled and t >= min_presence_s}
        unknowns = len({sid for sid, t in seen.items() if sid not in enrolled and t >= min_presence_s})
        return present, unknowns


def _face_box(sprite: np.ndarray) -> tuple[int, int, int, int]:
    """(top, right, bottom, left) of the sprite's face by dlib HOG, upsampled once (sprites are small)."""
    import face_recognition

    found = face_recognition.face_locations(cv2.cvtColor(sprite, cv2.COLOR_BGR2RGB), 1, "hog")
    if not found:
        raise RuntimeError("no face in sprite")
    top, right, bottom, left = max(found, key=lambda b: (b[1] - b[3]))
    return int(top), int(right), int(bottom), int(left)


@dataclass
class _Sprite:
    image: np.ndarray
    face: tuple[int, int, int, int]  # top, right, bottom, left inside image


def _load_sprites(people: list[Person]) -> dict[str, _Sprite]:
    out = {}
    for p in people:
        img = cv2.imread(str(p.appear))
        if img is None:
            raise FileNotFoundError(p.appear)
        out[p.key] = _Sprite(img, _face_box(img))
    return out


def _cover_mouth(img: np.ndarray, face: tuple[int, int, int, int]) -> None:
    """A skin-coloured hand from just below the nose down past the chin."""
    top, right, bottom, left = face
    h, w = bottom - top, right - left
    centre = ((left + right) // 2, int(top + 0.88 * h))
    axes = (int(0.55 * w), int(0.32 * h))
    cv2.ellipse(img, centre, axes, 0, 0, 360, (120, 150, 205), -1)
    for i in range(3):  # knuckle lines so it is not a flat blob
        y = int(top + 0.72 * h + i * 0.1 * h)
        cv2.line(img, (left + w // 6, y), (right - w // 6, y), (100, 125, 180), max(1, w // 40))


def _turn(img: np.ndarray, face: tuple[int, int, int, int], deg: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Yaw approximated by a perspective warp: the face narrows by cos(yaw) and its far side shrinks."""
    h, w = img.shape[:2]
    c = math.cos(math.radians(deg))
    far = 1.0 - 0.25 * math.sin(math.radians(deg))
    new_w = max(2, int(w * c))
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    dy = h * (1 - far) / 2
    dst = np.array([[0, 0], [new_w, dy], [new_w, h - dy], [0, h]], np.float32)
    warped = cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (new_w, h),
                                 borderMode=cv2.BORDER_REPLICATE)
    top, right, bottom, left = face
    return warped, (top, int(right * c), bottom, int(left * c))


def render_scenario(sc: Scenario, path: Path) -> int:
    """Writes the scenario as H.264 (yuv420p, crf from the condition) through the ffmpeg command line."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg is not installed (scripts/setup.sh installs it)")
    cond = sc.condition
    sprites = _load_sprites(list({s.person.key: s.person for s in sc.seats}.values()))
    placed = []
    for i, seat in enumerate(sc.seats):
        sp = sprites[seat.person.key]
        img, face = sp.image.copy(), sp.face
        if cond.mouth_covered:
            _cover_mouth(img, face)
        if cond.turn_deg:
            img, face = _turn(img, face, cond.turn_deg if i % 2 else -cond.turn_deg)
            if i % 2 == 0:
                img = img[:, ::-1].copy()  # turned the other way
                face = (face[0], img.shape[1] - face[3], face[2], img.shape[1] - face[1])
        scale = seat.face_px / max(1, face[1] - face[3])
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        cx, cy = (face[1] + face[3]) / 2 * scale, (face[0] + face[2]) / 2 * scale
        placed.append((seat, img, cx, cy))
    bg = _background(sc.width, sc.height)
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [ffmpeg, "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s",
           f"{sc.width}x{sc.height}", "-r", f"{sc.fps:g}", "-i", "-", "-c:v", "libx264", "-preset", "veryfast",
           "-crf", str(cond.crf), "-pix_fmt", "yuv420p", str(path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    rng = np.random.default_rng(11)
    kernel = None
    if cond.blur_px > 1:
        kernel = np.zeros((1, cond.blur_px), np.float32) + 1.0 / cond.blur_px
    n = round(sc.duration_s * sc.fps)
    try:
        for f in range(n):
            t = f / sc.fps
            frame = bg.copy()
            for k, (seat, img, cx, cy) in enumerate(placed):
                if not seat.start_s <= t < seat.end_s:
                    continue
                sway = 0.12 * seat.face_px
                x0 = round(seat.x - cx + sway * math.sin(2 * math.pi * t / 7.0 + k))
                y0 = round(seat.y - cy + 0.4 * sway * math.sin(2 * math.pi * t / 5.0 + 2 * k))
                _paste(frame, img, x0, y0)
            if kernel is not None:
                frame = cv2.filter2D(frame, -1, kernel)
            if cond.light != 1.0 or cond.noise:
                lit = frame.astype(np.float32) * cond.light
                if cond.noise:
                    lit += rng.normal(0, cond.noise, frame.shape).astype(np.float32)
                frame = np.clip(lit, 0, 255).astype(np.uint8)
            proc.stdin.write(frame.tobytes())
    finally:
        proc.stdin.close()
        if proc.wait() != 0:
            raise RuntimeError(f"ffmpeg failed writing {path}")
    return n


def _paste(frame: np.ndarray, img: np.ndarray, x0: int, y0: int) -> None:
    h, w = img.shape[:2]
    fh, fw = frame.shape[:2]
    x1, y1, x2, y2 = max(0, x0), max(0, y0), min(fw, x0 + w), min(fh, y0 + h)
    if x2 > x1 and y2 > y1:
        frame[y1:y2, x1:x2] = img[y1 - y0:y2 - y0, x1 - x0:x2 - x0]


# ---- the scenario set ---------------------------------------------------------------------------------------

RESOLUTIONS = {"1080p": (1920, 1080), "720p": (1280, 720), "480p": (854, 480)}


def _row(people: list[Person], width: int, y: int, face_px: int, count: int, offset: int = 0) -> list[Seat]:
    """`count` seats spread evenly across a row of the room."""
    step = width / count
    return [Seat(people[(offset + i) % len(people)], int(step * (i + 0.5)), y, face_px) for i in range(count)]


def _grid(people: list[Person], width: int, height: int, face_px: int) -> list[Seat]:
    """Ten people in two rows of five, everyone at the same face size."""
    return (_row(people, width, int(height * 0.33), face_px, 5)
            + _row(people, width, int(height * 0.7), face_px, 5, offset=5))


def _rotated(people: list[Person], k: int) -> list[Person]:
    return people[k % len(people):] + people[:k % len(people)]


def scenario_set(people: list[Person], full: bool = True) -> list[Scenario]:
    """The benchmark's scenarios. Each rotates which two of the ten people are unknown visitors, so every
    person is a student in most scenarios and a per-person miss shows up as a pattern."""
    by = {p.key: p for p in people}
    out: list[Scenario] = []

    def add(name: str, res: str, face_px: int, k: int, cond: Condition | None = None, note: str = "") -> None:
        w, h = RESOLUTIONS[res]
        ppl = _rotated(people, k)
        out.append(Scenario(name, w, h, _grid(ppl, w, h, face_px), ppl[:8], condition=cond or Condition(),
                            note=note))

    sizes = (120, 80, 60, 40, 30) if full else (40,)
    for k, px in enumerate(sizes):
        add(f"1080p {px}px", "1080p", px, k)
    if full:
        add("720p 40px", "720p", 40, 5)
        add("720p 30px", "720p", 30, 6)
        add("480p 50px", "480p", 50, 7)
    add("480p 30px", "480p", 30, 8)
    if full:
        w, h = RESOLUTIONS["1080p"]
        seats: list[Seat] = []
        for r, (y, px) in enumerate(zip((0.2, 0.33, 0.46, 0.6, 0.74, 0.88), (44, 52, 60, 70, 78, 88), strict=True)):
            seats += _row(people, w, int(h * y), px, 6, offset=r * 6)
        out.append(Scenario("1080p room of 36, 44-88px", w, h, seats, people[:8],
                            note="10 people in 36 seats (each appears 3-4 times); 2 unknown visitors"))
    conditions = {
        "mild blur": Condition(blur_px=7),
        "dim 0.45x + noise": Condition(light=0.45, noise=6.0),
        "H.264 crf 32": Condition(crf=32),
        "45 deg head turn": Condition(turn_deg=45.0),
        "H.264 crf 40 (hard)": Condition(crf=40),
        "0.22x light (hard)": Condition(light=0.22, noise=6.0),
        "mouth covered (hard)": Condition(mouth_covered=True),
    }
    for k, (label, cond) in enumerate(conditions.items()):
        if full or label in ("dim 0.45x + noise",):
            add(f"1080p 80px {label}", "1080p", 80, k + 2, cond)
    w, h = RESOLUTIONS["720p"]
    glimpse = _grid(people, w, h, 60)
    glimpse[3] = Seat(glimpse[3].person, glimpse[3].x, glimpse[3].y, 60, start_s=4.0, end_s=5.5)
    out.append(Scenario("720p glimpse of 1.5 s", w, h, glimpse, people[:8],
                        note=f"{glimpse[3].person.name} passes by for 1.5 s: must be absent"))
    # the closest pair of the ten (dlib distance 0.64): Dijkstra enrolled but away, Liskov in the room, not enrolled
    lookalike = [p for p in people if p.key != "group3"]
    enrolled = [p for p in people if p.key != "group4"][:8]
    if by["group3"] not in enrolled:
        enrolled[-1] = by["group3"]
    out.append(Scenario("720p look-alike", w, h, _grid(lookalike, w, h, 60)[:9], enrolled,
                        note="Liskov (not enrolled) sits in; enrolled look-alike Dijkstra is away"))
    return out
