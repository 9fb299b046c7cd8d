"""Tracker: links detections across analysed frames so a face is encoded a few times, not always.

Detections flicker (a face missed for a few frames, a sweep that reaches a tile only every second), so a track
survives `max_age_s` without a detection, and a detection that does not overlap its track any more but sits where
it was (a student who leaned aside) still continues it: its identity and votes carry on, no new encoding."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .boxes import Box, iou_matrix
from .encode import Crop


@dataclass
class Track:
    id: int
    box: Box
    first_t: float
    last_t: float
    last_encoded_t: float | None = None
    encodings: int = 0
    pending: bool = False  # an encoding of this track is under way
    encoding_sum: np.ndarray | None = None  # of all its encodings, for the track's mean
    observed: list[float] = field(default_factory=list)
    best_sharpness: float = 0.0  # of the views looked at for encoding (recognition.quality)
    deferred: int = 0  # views passed over since the last encoding, waiting for a sharper one
    views: list[Crop] = field(default_factory=list)  # its latest crops in a noisy room, to be fused

    def __post_init__(self) -> None:
        self.observed.append(self.first_t)


class IouTracker:
    """Greedy association: best IoU pairs first, then remaining pairs by centre distance (relative to face size)."""

    def __init__(self, iou_threshold: float = 0.3, max_age_s: float = 3.0, relink_distance: float = 0.75) -> None:
        self._iou = iou_threshold
        self._max_age = max_age_s
        self._relink = relink_distance
        self._next_id = 1
        self.tracks: dict[int, Track] = {}

    def update(self, boxes: list[Box], t: float) -> tuple[list[Track], list[Track]]:
        """Returns (tracks seen in this frame, tracks that just expired)."""
        live = list(self.tracks.values())
        det = np.array([b.as_array() for b in boxes]).reshape(-1, 4)
        trk = np.array([tr.box.as_array() for tr in live]).reshape(-1, 4)
        pairs = _greedy(iou_matrix(trk, det), self._iou)
        free_t = [i for i in range(len(live)) if i not in {p[0] for p in pairs}]
        free_d = [j for j in range(len(boxes)) if j not in {p[1] for p in pairs}]
        if free_t and free_d:
            closeness = _closeness(trk[free_t], det[free_d])
            pairs += [(free_t[i], free_d[j]) for i, j in _greedy(closeness, 1.0 - self._relink)]
        seen: list[Track] = []
        matched_d: set[int] = set()
        for ti, di in pairs:
            tr = live[ti]
            tr.box, tr.last_t = boxes[di], t
            tr.observed.append(t)
            seen.append(tr)
            matched_d.add(di)
        for di, box in enumerate(boxes):
            if di not in matched_d:
                tr = Track(self._next_id, box, t, t)
                self._next_id += 1
                self.tracks[tr.id] = tr
                seen.append(tr)
        expired = [tr for tr in live if t - tr.last_t > self._max_age]
        for tr in expired:
            del self.tracks[tr.id]
        return seen, expired


def _greedy(score: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """(row, column) pairs, highest score first, each row and column used once, scores >= threshold."""
    pairs: list[tuple[int, int]] = []
    if not score.size:
        return pairs
    used_r: set[int] = set()
    used_c: set[int] = set()
    for flat in np.argsort(-score, axis=None):
        r, c = divmod(int(flat), score.shape[1])
        if score[r, c] < threshold:
            break
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            pairs.append((r, c))
    return pairs


def _closeness(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - centre distance in units of the track's face width; 0 where the sizes differ by more than 1.6x."""
    ca = (a[:, None, :2] + a[:, None, 2:]) / 2
    cb = (b[None, :, :2] + b[None, :, 2:]) / 2
    wa = np.maximum(a[:, 2] - a[:, 0], 1.0)[:, None]
    wb = np.maximum(b[:, 2] - b[:, 0], 1.0)[None, :]
    dist = np.linalg.norm(ca - cb, axis=2) / wa
    ratio = np.maximum(wa / wb, wb / wa)
    out: np.ndarray = np.where(ratio <= 1.6, 1.0 - dist, 0.0)
    return out
