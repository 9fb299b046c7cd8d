"""One analysed frame in, labelled faces out: detect, track, encode a track only when it needs a vote, match.

Encodings are the cost (~80 ms a face), so they run beside the frame loop: a batch of faces is handed to the
encoder and its votes are counted when it is done, a frame or a few later, while detection and tracking go on.
A live camera's loop never waits for the encoder; a file read faster than real time waits once the oldest batch
is `_MAX_LAG_S` of video old and other faces wait (`_MAX_LAG_NEW_S` while a burst of faces never encoded waits:
a room that fills the encoder at once is read on meanwhile), so the encoder is never left a video's length behind."""

from __future__ import annotations

from concurrent import futures
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..attendance.presence import AttendanceBook
from ..config import RecognitionConfig
from ..media.export import Label
from ..recognition.detect import Detector
from ..recognition.encode import Crop, FaceEncoder, crops_for
from ..recognition.match import Match, Matcher
from ..recognition.quality import enhance, luma, noise, sharpness
from ..recognition.track import IouTracker, Track
from .sources import Frame

_MAX_BATCH = 6  # faces per encoder job: ~0.5 s of encoding, so new faces are not queued behind a long batch
_IN_FLIGHT = 2  # batches handed to the encoder at once: it starts the next as soon as one is done
_MAX_LAG_S = 1.0  # video seconds a batch may be under way while other faces wait for the encoder
# ... while `_BURST` or more of the faces waiting were never encoded (a room seen at once): a first encoding is as
# good later (its crop is taken when it is sent). A face or two new (a flickering small face) keep the 1 s pace:
# the encodings a hard face gets, the mean of which identifies it, must not fall behind.
_MAX_LAG_NEW_S = 3.0
_BURST = 3  # never-encoded faces waiting that make a burst
_NOISE_EVERY_S = 2.0  # video seconds between estimates of the room's sensor noise
_MEAN_AFTER = 3  # encodings of a track before its mean is matched too
_MEAN_AFTER_FUSED = 2  # ... in a noisy room, where each encoding is already of the mean of fuse_views views
_MAX_RECHECK_S = 60.0  # an unknown or undecided track is re-encoded at most this rarely, once backed off


@dataclass
class UnknownFace:
    """An unknown visitor, first seen: the face crop is the evidence kept."""

    track_id: int
    crop: Crop
    t: float
    encoding: np.ndarray | None = None  # the track's mean encoding, kept so the face can be assigned later


@dataclass
class FrameOutcome:
    labels: list[Label]
    new_unknowns: list[UnknownFace] = field(default_factory=list)
    retracted_unknowns: list[int] = field(default_factory=list)  # tracks kept as unknown that proved a student


@dataclass
class _Job:
    future: Future[list[np.ndarray]]
    tracks: list[Track]
    crops: list[Crop]
    t: float
    sharp: list[bool] = field(default_factory=list)  # each view as sharp as its track's best (may vote visitor)


class Recognizer:
    """A track is encoded at most `encodings_per_track` times while undecided, spaced by `encode_every_s`, then
    re-checked while it is undecided or unknown (a student first seen turned away can still be recognised) after
    `reencode_every_s`, doubling each time up to a minute; a known track is never re-encoded."""

    def __init__(
        self, detector: Detector, encoder: FaceEncoder, matcher: Matcher, book: AttendanceBook, cfg: RecognitionConfig
    ) -> None:
        self.detector, self.encoder, self.matcher, self.book, self.cfg = detector, encoder, matcher, book, cfg
        self.tracker = IouTracker(cfg.track_iou, cfg.track_max_age_s)
        self._unknown_people: list[np.ndarray] = []
        self._unknown_saved: set[int] = set()
        self._jobs: list[_Job] = []
        self.encodings = 0  # how many faces were encoded (for benchmarks and progress)
        self.noisy = False  # the room's sensor noise reached fuse_noise at its latest estimate
        self._noise_t: float | None = None
        self._mean: np.ndarray | None = None  # running mean of the analysed frames in a noisy room (float32)

    def _denoised(self, frame: Frame) -> np.ndarray:
        """The frame the detector looks at. In a noisy room (the scene's noise, estimated every `_NOISE_EVERY_S`,
        at least `fuse_noise`) a running mean of the analysed frames (window ~`fuse_views`): fresh sensor noise
        falls, the still faces stay; a lit room pays one estimate every few seconds."""
        if self.cfg.fuse_views < 2:
            return frame.bgr
        if self._noise_t is None or frame.t - self._noise_t >= _NOISE_EVERY_S or frame.t < self._noise_t:
            self._noise_t, self.noisy = frame.t, noise(frame.bgr) >= self.cfg.fuse_noise
        if not self.noisy:
            self._mean = None
            return frame.bgr
        if self._mean is None or self._mean.shape != frame.bgr.shape:
            self._mean = frame.bgr.astype(np.float32)
        else:
            cv2.accumulateWeighted(frame.bgr, self._mean, 2.0 / (self.cfg.fuse_views + 1))
        out: np.ndarray = cv2.convertScaleAbs(self._mean)
        return out

    def _keep_views(self, frame: Frame) -> list[Track]:
        """In a noisy room, the latest crops of each undecided face, for fusion before encoding: at every
        analysed frame, where the track's box was last found when the sweep did not look there (a student sits
        still; the fusion aligns each view by its own landmarks). Returns the tracks given a view."""
        if not self.noisy:
            return []
        live = [tr for tr in self.tracker.tracks.values() if frame.t - tr.last_t <= self.cfg.full_scan_s + 0.05]
        todo = [tr for tr in live if self.book.identity(tr.id) is None]
        for tr, crop in zip(todo, crops_for(frame.bgr, [tr.box for tr in todo]), strict=True):
            tr.views = [*tr.views[1 - self.cfg.fuse_views:], crop]
        return todo

    def _needs_encoding(self, tr: Track, t: float) -> bool:
        if tr.pending or self.book.identity(tr.id) is not None:
            return False
        if tr.last_encoded_t is None:
            return not self.noisy or len(tr.views) >= self.cfg.fuse_views  # in a noisy room, views first
        eager = tr.encodings < self.cfg.encodings_per_track and not self.book.is_unknown(tr.id)
        if eager:
            return t - tr.last_encoded_t >= self.cfg.encode_every_s
        later = max(0, tr.encodings - self.cfg.encodings_per_track)  # re-checks so far: back off, up to a minute
        return t - tr.last_encoded_t >= min(self.cfg.reencode_every_s * 2.0**later, _MAX_RECHECK_S)

    def process(self, frame: Frame) -> FrameOutcome:
        outcome = FrameOutcome(labels=[])
        self._collect(outcome, wait=False)
        settled = [tr.box for tr in self.tracker.tracks.values() if self.book.identity(tr.id) is not None]
        seen, expired = self.tracker.update(self.detector.detect(self._denoised(frame), settled), frame.t)
        for tr in expired:
            self.book.forget(tr.id)
        viewed = self._keep_views(frame)
        candidates = seen + [tr for tr in viewed if tr not in seen]  # a noisy room: the views stand for a detection
        needy = [tr for tr in candidates if self._needs_encoding(tr, frame.t)]
        newcomers = sum(tr.encodings == 0 for tr in needy)
        lag = _MAX_LAG_NEW_S if newcomers >= _BURST else _MAX_LAG_S
        if self._jobs and needy and frame.t - self._jobs[0].t >= lag:
            futures.wait([self._jobs[0].future])  # a file read faster than real time waits for its encodings
            self._collect(outcome, wait=False)
        if len(self._jobs) < _IN_FLIGHT:  # the encoder always has the next batch; none queue up behind a backlog
            todo = sorted((tr for tr in candidates if self._needs_encoding(tr, frame.t)),
                          key=lambda tr: (tr.encodings, -tr.box.width))[:_MAX_BATCH]
            if todo:
                self._submit(frame, todo)
                self._collect(outcome, wait=False)  # an in-process encoder is already done
        for tr in seen:
            self.book.observe(tr.id, frame.t)
        max_gap = self.cfg.full_scan_s + 1.0 / self.cfg.analysis_fps  # a face is looked for once a sweep
        outcome.labels = [self._label(tr) for tr in self.tracker.tracks.values() if frame.t - tr.last_t <= max_gap]
        return outcome

    def _submit(self, frame: Frame, todo: list[Track]) -> None:
        """Hands the views of `todo` to the encoder: a blurred view waits for a sharper one (at most
        `quality_defer` views), a dim one is enhanced first."""
        crops = crops_for(frame.bgr, [tr.box for tr in todo])
        tracks, kept, sharp = [], [], []
        for tr, view in zip(todo, crops, strict=True):
            crop = Crop(view.rgb, view.face, tuple(tr.views[:-1])) if self.noisy and tr.views else view
            ok = True
            if self.cfg.quality_ratio > 0 and not self.noisy:  # noise, not sharpness, rules a noisy view
                s = sharpness(crop)
                ok = s >= self.cfg.quality_ratio * tr.best_sharpness
                tr.best_sharpness = max(tr.best_sharpness, s)
                if not ok and tr.deferred < self.cfg.quality_defer:
                    tr.deferred += 1
                    continue
            dim = self.cfg.low_light_luma > 0 and luma(crop) < self.cfg.low_light_luma
            tr.pending, tr.last_encoded_t, tr.deferred = True, frame.t, 0
            tracks.append(tr)
            kept.append(enhance(crop) if dim else crop)
            sharp.append(ok)
        if tracks:
            self._jobs.append(_Job(self.encoder.submit(kept), tracks, kept, frame.t, sharp))

    def _mean_match(self, tr: Track) -> Match:
        """The track's mean encoding against the section: within match_tolerance as any encoding, or within the
        looser mean_tolerance when no other student is near (mean_margin)."""
        assert tr.encoding_sum is not None
        m = self.matcher.match_many(tr.encoding_sum[None, :] / tr.encodings)[0]
        if m.student is None and m.distance <= self.cfg.mean_tolerance \
                and m.runner_up - m.distance >= self.cfg.mean_margin:
            nearest = self.matcher.nearest(tr.encoding_sum[None, :] / tr.encodings)[0]
            return Match(nearest, m.distance, m.runner_up)
        return m

    def finish(self) -> FrameOutcome:
        """Waits for the encodings still under way and counts their votes (end of a session)."""
        outcome = FrameOutcome(labels=[])
        self._collect(outcome, wait=True)
        return outcome

    def _collect(self, outcome: FrameOutcome, wait: bool) -> None:
        for job in [j for j in self._jobs if wait or j.future.done()]:
            self._jobs.remove(job)
            try:
                encodings = job.future.result()
            except BrokenProcessPool:  # the encoder child died: these faces are encoded again later
                for tr in job.tracks:
                    tr.pending, tr.last_encoded_t = False, None
                continue
            self.encodings += len(encodings)
            matches = self.matcher.match_many(np.array(encodings))
            sharp = job.sharp or [True] * len(job.tracks)
            for tr, crop, enc, match, clear in zip(job.tracks, job.crops, encodings, matches, sharp, strict=True):
                tr.pending = False
                tr.encodings += 1
                tr.encoding_sum = enc if tr.encoding_sum is None else tr.encoding_sum + enc
                was_unknown = self.book.is_unknown(tr.id)
                self.book.vote(tr.id, match, tr.observed, clear_view=clear and self._clear_view(crop))
                if self.book.identity(tr.id) is None and tr.encodings >= (_MEAN_AFTER_FUSED if crop.earlier
                                                                          else _MEAN_AFTER):
                    self.book.confirm_by_mean(tr.id, self._mean_match(tr), tr.observed)
                if self.book.is_unknown(tr.id) and tr.id not in self._unknown_saved:
                    self._unknown_saved.add(tr.id)
                    mean_encoding = tr.encoding_sum / tr.encodings
                    if self._is_new_person(mean_encoding):
                        outcome.new_unknowns.append(UnknownFace(tr.id, Crop(crop.rgb, crop.face), job.t, mean_encoding))
                elif was_unknown and self.book.identity(tr.id) is not None and tr.id in self._unknown_saved:
                    outcome.retracted_unknowns.append(tr.id)

    def _clear_view(self, crop: Crop) -> bool:
        """Big enough to judge someone a stranger; smaller faces wait for a better view."""
        box = crop.face_box()
        return min(box.width, box.height) >= self.cfg.unknown_min_face_px

    def _is_new_person(self, enc: np.ndarray) -> bool:
        """One unknown person seen in several tracks is kept once as evidence (compared by the tracks' mean
        encodings, with the looser distance that also separates visitors from students)."""
        if self._unknown_people:
            d = np.linalg.norm(np.stack(self._unknown_people) - enc[None, :], axis=1)
            if float(d.min()) <= self.cfg.unknown_distance:
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
