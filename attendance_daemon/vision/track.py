"""Greedy IoU tracker: links detections across analysed frames so a face is encoded a few times, not always."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .boxes import Box, iou_matrix


@dataclass
class Track:
    id: int
    box: Box
    first_t: float
    last_t: float
    last_encoded_t: float | None = None
    encodings: int = 0
    observed: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.observed.append(self.first_t)


class IouTracker:
    """Associates each frame's boxes with live tracks by IoU (best pairs first); drops stale tracks."""

    def __init__(self, iou_threshold: float = 0.3, max_age_s: float = 1.0) -> None:
        self._iou = iou_threshold
        self._max_age = max_age_s
        self._next_id = 1
        self.tracks: dict[int, Track] = {}

    def update(self, boxes: list[Box], t: float) -> tuple[list[Track], list[Track]]:
        """Returns (tracks seen in this frame, tracks that just expired)."""
        live = list(self.tracks.values())
        det = np.array([b.as_array() for b in boxes]).reshape(-1, 4)
        trk = np.array([tr.box.as_array() for tr in live]).reshape(-1, 4)
        ious = iou_matrix(trk, det)
        assigned_t: set[int] = set()
        assigned_d: set[int] = set()
        seen: list[Track] = []
        if ious.size:
            for flat in np.argsort(-ious, axis=None):
                ti, di = divmod(int(flat), ious.shape[1])
                if ious[ti, di] < self._iou:
                    break
                if ti in assigned_t or di in assigned_d:
                    continue
                assigned_t.add(ti)
                assigned_d.add(di)
                tr = live[ti]
                tr.box, tr.last_t = boxes[di], t
                tr.observed.append(t)
                seen.append(tr)
        for di, box in enumerate(boxes):
            if di not in assigned_d:
                tr = Track(self._next_id, box, t, t)
                self._next_id += 1
                self.tracks[tr.id] = tr
                seen.append(tr)
        expired = [tr for tr in live if t - tr.last_t > self._max_age]
        for tr in expired:
            del self.tracks[tr.id]
        return seen, expired
