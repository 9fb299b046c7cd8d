"""Late arrivals, early leaves and the wall clock of video time. No I/O: numbers and datetimes in, facts out.

Video time is what the pipeline measures (seconds from the start of the source). The wall clock of a video
position is the session's start plus that position: for a webcam session that is when it happened (video time
runs with the clock, a pause aside: paused time is not video time, so positions after a pause read that much
earlier); for an MP4 file it is only the session's start plus the position in the file, not when the recording
was made (the file carries no trustworthy clock)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from ..common.timeutil import local_iso


@dataclass(frozen=True)
class PunctualityRule:
    """`late`: first seen more than `late_after_s` after the start; `left_early`: last seen more than
    `left_early_before_s` before the end of the session (its last video position)."""

    late_after_s: float
    left_early_before_s: float

    def late(self, first_seen_s: float) -> bool:
        return first_seen_s > self.late_after_s

    def left_early(self, last_seen_s: float, end_s: float | None) -> bool:
        """False when the end is not known (a running session, or one recorded before ends were stored)."""
        return end_s is not None and end_s - last_seen_s > self.left_early_before_s


@dataclass(frozen=True)
class WallClock:
    """Video seconds -> wall-clock ISO 8601 in the box's zone, from the session's start."""

    started: datetime
    zone: tzinfo

    def at(self, video_s: float) -> str:
        return local_iso(self.started + timedelta(seconds=video_s), self.zone)


@dataclass(frozen=True)
class Interval:
    start_s: float
    end_s: float
    start: str
    end: str


def intervals(spans: list[tuple[float, float]], clock: WallClock) -> list[Interval]:
    """Presence spans (video seconds) with their wall-clock times, in order, rounded to 0.01 s."""
    return [Interval(round(a, 2), round(b, 2), clock.at(a), clock.at(b)) for a, b in sorted(spans)]
