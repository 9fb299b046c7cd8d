"""One analysed frame in, labelled faces out: detect, track, encode a track only when it needs a vote, match."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .attendance import AttendanceBook
from .config import RecognitionConfig
from .export import Label
from .sources import Frame
from .vision.detect import Detector
from .vision.encode import FaceEncoder
from .vision.match import Matcher
from .vision.track import IouTracker, Track


@dataclass
class FrameOutcome:
    labels: list[Label]
    new_unknowns: list[Track] = field(default_factory=list)


class Recognizer:
    """Encodings are the cost (~80 ms a face), so a track is encoded at most `encodings_per_track` times
    while undecided, spaced by `encode_every_s`, then only every `reencode_every_s` while it is undecided or
    unknown (a student first seen turned away can still be recognised); a known track is never re-encoded."""

    def __init__(
        self, detector: Detector, encoder: FaceEncoder, matcher: Matcher, book: AttendanceBook, cfg: RecognitionConfig
    ) -> None:
        self.detector, self.encoder, self.matcher, self.book, self.cfg = detector, encoder, matcher, book, cfg
        self.tracker = IouTracker(cfg.track_iou, cfg.track_max_age_s)
        self._unknown_people: list[np.ndarray] = []
        self._unknown_reported: set[int] = set()

    def _needs_encoding(self, tr: Track, t: float) -> bool:
        if self.book.identity(tr.id) is not None:
            return False
        if tr.last_encoded_t is None:
            return True
        eager = tr.encodings < self.cfg.encodings_per_track and not self.book.is_unknown(tr.id)
        wait = self.cfg.encode_every_s if eager else self.cfg.reencode_every_s
        return t - tr.last_encoded_t >= wait

    def process(self, frame: Frame) -> FrameOutcome:
        rgb = cv2.cvtColor(frame.bgr, cv2.COLOR_BGR2RGB)
        boxes = self.detector.detect(rgb)
        seen, expired = self.tracker.update(boxes, frame.t)
        for tr in expired:
            self.book.forget(tr.id)
            self._unknown_reported.discard(tr.id)
        todo = [tr for tr in seen if self._needs_encoding(tr, frame.t)]
        outcome = FrameOutcome(labels=[])
        if todo:
            encodings = self.encoder.encode(rgb, [tr.box for tr in todo])
            for tr, enc, match in zip(todo, encodings, self.matcher.match_many(np.array(encodings)), strict=True):
                tr.encodings += 1
                tr.last_encoded_t = frame.t
                self.book.vote(tr.id, match, tr.observed)
                if self.book.is_unknown(tr.id) and tr.id not in self._unknown_reported:
                    self._unknown_reported.add(tr.id)
                    if self._is_new_person(enc):
                        outcome.new_unknowns.append(tr)
        for tr in seen:
            self.book.observe(tr.id, frame.t)
            outcome.labels.append(self._label(tr))
        return outcome

    def _is_new_person(self, enc: np.ndarray) -> bool:
        """One unknown person seen in several tracks is kept once as evidence."""
        if self._unknown_people:
            d = np.linalg.norm(np.stack(self._unknown_people) - enc[None, :], axis=1)
            if float(d.min()) <= self.cfg.match_tolerance:
                return False
        self._unknown_people.append(enc)
        return True

    def _label(self, tr: Track) -> Label:
        idx = self.book.identity(tr.id)
        if idx is not None:
            return Label(tr.box, self.book.roster[idx].name, "known")
        if self.book.is_unknown(tr.id):
            return Label(tr.box, "unknown", "unknown")
        return Label(tr.box, "?", "pending")
