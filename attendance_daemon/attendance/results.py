"""Builds the contract's Results and session summaries from what the store holds."""

from __future__ import annotations

from typing import Literal, cast

from ..common.timeutil import local_iso, parse_iso
from ..config import Config
from ..contract.api import AbsentStudent, PresenceInterval, PresentStudent, Results, SessionStatus, SessionSummary
from ..media.export import video_codec
from ..store import AttendanceRow, SessionRow, Store
from .punctuality import PunctualityRule, WallClock, intervals

ACTIVE = ("running", "paused")


def build_results(store: Store, session: SessionRow, cfg: Config) -> Results:
    """Present = seen at least `recognition.min_presence_s`; absent = the rest of the section's roster as it is
    now. Late and left-early follow `[attendance]`; wall-clock times are in its time zone."""
    min_presence_s = cfg.recognition.min_presence_s
    attendance = store.attendance(session.id)
    present = [a for a in attendance if a.seen_s >= min_presence_s]
    present_ids = {a.student_id for a in present}
    if store.section_exists(session.section):
        roster = store.students(session.section)
        absent = [AbsentStudent(student_id=s.student_id, name=s.name)
                  for s in roster if s.student_id not in present_ids]
        total = len(present) + len(absent)
    else:  # the section was removed since: the roster size recorded at the start is all that is left
        absent, total = [], max(session.roster_total, len(present))
    zone_name, zone = cfg.attendance.zone()
    clock = WallClock(parse_iso(session.started_at), zone)
    rule = PunctualityRule(cfg.attendance.late_after_s, cfg.attendance.left_early_before_s)
    end_s = None if session.status in ACTIVE else session.video_s  # a running session has not ended yet
    return Results(
        **summary(session, len(present), cfg.mqtt.device_id).model_dump(),
        total=total,
        unknowns=len(store.unknowns(session.id)),
        present=[_present(a, clock, rule, end_s, into_lesson_s(session)) for a in present],
        absent=absent,
        export_path=session.export_path,
        export_codec=None if session.status in ACTIVE else video_codec(session.export_path),
        error=session.error,
        timezone=zone_name,
        end_s=session.video_s,
        late_after_s=rule.late_after_s,
        left_early_before_s=rule.left_early_before_s,
        warnings=session.warnings,
        lesson=session.lesson,
        lesson_start=local_iso(parse_iso(session.lesson_start), zone) if session.lesson_start else None,
    )


def into_lesson_s(session: SessionRow) -> float:
    """How far into its lesson a lesson's session started (it waited for the camera, or the box was off): `late`
    counts from the lesson's start, so video second 0 is already this late. 0 for other sessions."""
    if not session.lesson_start:
        return 0.0
    return max(0.0, (parse_iso(session.started_at) - parse_iso(session.lesson_start)).total_seconds())


def _present(a: AttendanceRow, clock: WallClock, rule: PunctualityRule, end_s: float | None,
             into_lesson_s: float = 0.0) -> PresentStudent:
    spans = intervals(a.intervals or [(a.first_seen_s, a.last_seen_s)], clock)
    return PresentStudent(
        student_id=a.student_id, name=a.name, first_seen_s=a.first_seen_s, last_seen_s=a.last_seen_s,
        seen_s=a.seen_s, arrived_at=clock.at(a.first_seen_s), left_at=clock.at(a.last_seen_s),
        late=rule.late(into_lesson_s + a.first_seen_s), left_early=rule.left_early(a.last_seen_s, end_s),
        intervals=[PresenceInterval(start_s=i.start_s, end_s=i.end_s, start=i.start, end=i.end) for i in spans],
    )


def summary(session: SessionRow, present_count: int, device_id: str | None) -> SessionSummary:
    return SessionSummary(
        session_id=session.id, name=session.name, section=session.section,
        mode=cast(Literal["webcam", "mp4"], session.mode), source=session.source,
        status=cast(SessionStatus, session.status), started_at=session.started_at, ended_at=session.ended_at,
        frames_processed=session.frames_processed, present_count=present_count, device_id=device_id,
    )


def summaries(store: Store, sessions: list[SessionRow], cfg: Config) -> list[SessionSummary]:
    """`sessions` answers: each with its present count (as its Results would say)."""
    counts = store.present_counts([s.id for s in sessions], cfg.recognition.min_presence_s)
    return [summary(s, counts.get(s.id, 0), cfg.mqtt.device_id) for s in sessions]
