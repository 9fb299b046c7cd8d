"""Vectorised nearest-neighbour matching of encodings against a section's roster."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Match:
    student: int | None  # roster index, None when no encoding is within tolerance
    distance: float
    runner_up: float = float("inf")  # distance to the second-nearest student (how clearly this one is nearest)


class Matcher:
    """Holds the section's (N, 128) encodings and the roster index that owns each row."""

    def __init__(self, encodings: np.ndarray, owners: np.ndarray, roster_size: int, tolerance: float) -> None:
        self._enc = np.asarray(encodings, dtype=np.float32)
        self._owners = np.asarray(owners, dtype=np.int64)
        self._roster_size = roster_size
        self._tolerance = tolerance

    def nearest(self, queries: np.ndarray) -> list[int]:
        """The nearest student of each query, however far."""
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        dist = np.linalg.norm(q[:, None, :] - self._enc[None, :, :], axis=2)
        return [int(self._owners[i]) for i in dist.argmin(axis=1)]

    def match_many(self, queries: np.ndarray) -> list[Match]:
        """Best student per query: the minimum distance over each student's encodings."""
        q = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if len(q) == 0:
            return []
        if len(self._enc) == 0:
            return [Match(None, float("inf")) for _ in q]
        dist = np.linalg.norm(q[:, None, :] - self._enc[None, :, :], axis=2)  # (Q, N)
        per_student = np.full((self._roster_size, len(q)), np.inf, dtype=np.float32)
        np.minimum.at(per_student, self._owners, dist.T)  # unbuffered: owners repeat
        per_student = per_student.T
        best = per_student.argmin(axis=1)
        best_d = per_student[np.arange(len(q)), best]
        second = np.partition(per_student, 1, axis=1)[:, 1] if self._roster_size > 1 else np.full(len(q), np.inf)
        return [
            Match(int(s) if d <= self._tolerance else None, float(d), float(r))
            for s, d, r in zip(best, best_d, second, strict=True)
        ]
