"""Per-track identity votes and per-student presence in video seconds: the attendance logic, free of I/O."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..recognition.match import Match
from ..store.records import AttendanceRow, StudentRow

UNKNOWN = -1


@dataclass
class Votes:
    """Encodings of one track, each a vote for a roster index or UNKNOWN; an unclear encoding abstains."""

    counts: Counter[int] = field(default_factory=Counter)
    identity: int | None = None  # roster index once confirmed
    unknown: bool = False  # judged an unknown visitor (a later majority for a student still overturns it)

    def add(self, label: int | None, needed: int, ratio: float, unknown_needed: int) -> None:
        """`label` is a roster index, UNKNOWN, or None for an encoding that says nothing (abstains)."""
        if label is None:
            return
        self.counts[label] += 1
        if self.identity is not None:
            return
        best, n = self.counts.most_common(1)[0]
        if n / sum(self.counts.values()) < ratio:
            return
        if best != UNKNOWN and n >= needed:
            self.identity, self.unknown = best, False
        elif best == UNKNOWN and n >= unknown_needed:
            self.unknown = True


class Presence:
    """Merged observation intervals of one student: gaps up to `gap_s` count as continuous presence."""

    def __init__(self, step_s: float, gap_s: float) -> None:
        self._step = step_s
        self._gap = gap_s
        self.intervals: list[list[float]] = []

    def add(self, t: float) -> None:
        end = t + self._step
        last = self.intervals[-1] if self.intervals else None
        if last is not None and last[0] <= t <= last[1] + self._gap:  # the usual case: time moves forward
            last[1] = max(last[1], end)
            return
        # a confirmed track's earlier frames, or a new stretch of presence
        self.intervals.append([t, end])
        self.intervals.sort()
        self._merge()

    def _merge(self) -> None:
        merged: list[list[float]] = []
        for iv in self.intervals:
            if merged and iv[0] <= merged[-1][1] + self._gap:
                merged[-1][1] = max(merged[-1][1], iv[1])
            else:
                merged.append(list(iv))
        self.intervals = merged

    @property
    def seen_s(self) -> float:
        return sum(b - a for a, b in self.intervals)

    @property
    def first_s(self) -> float:
        return self.intervals[0][0]

    @property
    def last_s(self) -> float:
        return self.intervals[-1][1] - self._step


class AttendanceBook:
    """Turns matched tracks into presence; `present_indices()` applies the minimum-presence rule."""

    def __init__(
        self, roster: list[StudentRow], step_s: float, gap_s: float, votes_to_confirm: int, vote_ratio: float,
        min_presence_s: float, unknown_votes: int = 3, unknown_distance: float = 0.6, confident_distance: float = 0.0,
    ) -> None:
        self.roster = roster
        self._step, self._gap = step_s, gap_s
        self._needed, self._ratio = votes_to_confirm, vote_ratio
        self._unknown_needed, self._unknown_distance = max(unknown_votes, votes_to_confirm), unknown_distance
        self._confident = confident_distance
        self._min_presence = min_presence_s
        self.votes: dict[int, Votes] = {}
        self.presence: dict[int, Presence] = {}
        self._announced: set[int] = set()

    def vote(self, track_id: int, match: Match, observed: list[float], clear_view: bool = True) -> int | None:
        """Records a vote; when it confirms the track, the track's past observations count. Returns identity.

        An encoding that matches nobody is a vote for "unknown visitor" only from a clear view (big enough,
        sharp enough) and only when it is far from every student (`unknown_distance`): a student whose face is
        small, blurred or turned, whose encoding lands just outside the match tolerance, is not a visitor.
        A single encoding confirms a track when it matches very closely (`confident_distance`, well inside the
        tolerance), or when it matches a student already confirmed by another track of this session (the same
        person seen again after the tracker lost them): encodings are the cost, and a face is encoded once."""
        v = self.votes.setdefault(track_id, Votes())
        before = v.identity
        if match.student is not None:
            label: int | None = match.student
        else:
            label = UNKNOWN if clear_view and match.distance > self._unknown_distance else None
        sure = label in self.presence or match.distance <= self._confident
        needed = 1 if label is not None and label != UNKNOWN and sure else self._needed
        v.add(label, needed, self._ratio, self._unknown_needed)
        if v.identity is not None and before is None:
            for t in observed:
                self._presence(v.identity).add(t)
        return v.identity

    def confirm_by_mean(self, track_id: int, match: Match, observed: list[float]) -> int | None:
        """The mean of a track's encodings matched a student: averaging several views cancels most of what blur,
        compression and light add to each (and converges on the true face, so it does not pull a look-alike in).
        Confirms the track unless its own votes already favour someone else. Returns identity."""
        v = self.votes.setdefault(track_id, Votes())
        if v.identity is None and match.student is not None:
            rivals = [n for label, n in v.counts.items() if label not in (match.student, UNKNOWN)]
            if not rivals or max(rivals) < v.counts[match.student]:
                v.identity, v.unknown = match.student, False
                for t in observed:
                    self._presence(match.student).add(t)
        return v.identity

    def observe(self, track_id: int, t: float) -> None:
        v = self.votes.get(track_id)
        if v is not None and v.identity is not None:
            self._presence(v.identity).add(t)

    def identity(self, track_id: int) -> int | None:
        v = self.votes.get(track_id)
        return None if v is None else v.identity

    def is_unknown(self, track_id: int) -> bool:
        v = self.votes.get(track_id)
        return v is not None and v.unknown and v.identity is None

    def forget(self, track_id: int) -> None:
        self.votes.pop(track_id, None)

    def _presence(self, idx: int) -> Presence:
        return self.presence.setdefault(idx, Presence(self._step, self._gap))

    def present_indices(self) -> list[int]:
        return sorted(i for i, p in self.presence.items() if p.seen_s >= self._min_presence)

    def newly_present(self) -> list[int]:
        """Students that crossed the presence threshold since the last call (for one-time events)."""
        fresh = [i for i in self.present_indices() if i not in self._announced]
        self._announced.update(fresh)
        return fresh

    def rows(self) -> list[AttendanceRow]:
        """Everything seen so far (also students below the threshold), for durable flushes."""
        out = []
        for idx, p in sorted(self.presence.items(), key=lambda kv: kv[1].first_s):
            s = self.roster[idx]
            out.append(AttendanceRow(
                s.student_id, s.name, round(p.first_s, 3), round(p.last_s, 3), round(p.seen_s, 3),
                [(round(a, 3), round(b, 3)) for a, b in p.intervals],
            ))
        return out
