"""Byte ranges of a file, as sorted, merged, end-exclusive `(start, end)` pairs: what an upload has received
and what it still misses. No I/O."""

from __future__ import annotations

Range = tuple[int, int]


def add(ranges: list[Range], start: int, end: int) -> list[Range]:
    """`ranges` with [start, end) added, merged with every range it touches or overlaps."""
    out: list[Range] = []
    for a, b in sorted([*ranges, (start, end)]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def merge(ranges: list[Range], more: list[Range]) -> list[Range]:
    for a, b in more:
        ranges = add(ranges, a, b)
    return ranges


def covered(ranges: list[Range]) -> int:
    return sum(b - a for a, b in ranges)


def missing(ranges: list[Range], total: int) -> list[list[int]]:
    """The gaps of [0, total) as `[start, end]` lists (end exclusive), for JSON."""
    gaps, at = [], 0
    for a, b in ranges:
        if a > at:
            gaps.append([at, a])
        at = max(at, b)
    if at < total:
        gaps.append([at, total])
    return gaps
