"""Builds the contract's Results and session summaries from what the store holds."""

from __future__ import annotations

from typing import Literal, cast

from ..common.timeutil import local_iso, parse_iso
from ..config import Config
from ..contract.api import (
    AbsentStudent,
    AttendanceStatus,
    Correction,
    PresenceInterval,
    PresentStudent,
    RecordStage,
    Results,
    SessionStatus,
    SessionSummary,
)
from ..contract.record_api import SessionEntry
from ..media.export import video_codec
from ..store import AttendanceRow, SessionRow, Store
from .punctuality import PunctualityRule, WallClock, intervals
from .record import ATTENDED, STATUSES, correction_info, effective_status, recognised_status

ACTIVE = ("running", "paused")


def build_results(store: Store, session: SessionRow, cfg: Config) -> Results:
    """Seen = seen at least `recognition.min_presence_s`; the rest of the roster is unseen: the one a final record
    keeps (as it was when first finalised), else the section's as it is now.
    Late and left-early follow `[attendance]`; wall-clock times are in its time zone. Each student's recognised
    status is then replaced by the teacher's correction in force, if any: `present` lists those whose effective
    status is present, late or left_early, `absent` those absent or excused."""
    min_presence_s = cfg.recognition.min_presence_s
    seen = {a.student_id: a for a in store.attendance(session.id) if a.seen_s >= min_presence_s}
    corrections = {student: row for (_, student), row in store.corrections_in([session.id]).items()}
    kept = store.frozen_roster(session)
    roster_known = kept is not None or store.section_exists(session.section)
    names = kept if kept is not None else (
        {s.student_id: s.name for s in store.students(session.section)} if roster_known else {})
    for student in corrections:  # a correction of someone removed from the roster since
        names.setdefault(student, seen[student].name if student in seen else student)
    zone_name, zone = cfg.attendance.zone()
    clock = WallClock(parse_iso(session.started_at), zone)
    rule = PunctualityRule(cfg.attendance.late_after_s, cfg.attendance.left_early_before_s)
    end_s = None if session.status in ACTIVE else session.video_s  # a running session has not ended yet
    into = into_lesson_s(session)
    present: list[PresentStudent] = []
    absent: list[AbsentStudent] = []
    for student_id in [*seen, *(s for s in names if s not in seen)]:
        a, correction = seen.get(student_id), corrections.get(student_id)
        name = a.name if a is not None else names[student_id]
        late = a is not None and rule.late(into + a.first_seen_s)
        left_early = a is not None and rule.left_early(a.last_seen_s, end_s)
        recognised = recognised_status(a is not None, late, left_early)
        status = effective_status(recognised, correction)
        info = correction_info(correction) if status != recognised else None
        if status in ATTENDED:
            present.append(_present(student_id, name, a, clock, status, recognised, info, late, left_early, end_s,
                                    rule))
        else:
            absent.append(AbsentStudent(student_id=student_id, name=name, status=status, recognised_status=recognised,
                                        corrected=info is not None, correction=info))
    total = len(present) + len(absent) if roster_known else max(session.roster_total, len(present))
    counts = {s: 0 for s in STATUSES}
    for p in present:
        counts[p.status] += 1
    for ab in absent:
        counts[ab.status] += 1
    active = session.status in ACTIVE
    return Results(
        **summary(session, len(present), cfg.mqtt.device_id).model_dump(),
        total=total,
        unknowns=len(store.unknowns(session.id)),
        present=present,
        absent=absent,
        export_path=session.export_path,
        export_codec=None if active else video_codec(session.export_path),
        error=session.error,
        timezone=zone_name,
        end_s=session.video_s,
        late_after_s=rule.late_after_s,
        left_early_before_s=rule.left_early_before_s,
        warnings=session.warnings,
        lesson=session.lesson,
        lesson_start=local_iso(parse_iso(session.lesson_start), zone) if session.lesson_start else None,
        record=record_stage(session),
        finalized_at=session.finalized_at,
        finalized_by=session.finalized_by,
        revision=session.revision,
        counts=counts,
    )


def into_lesson_s(session: SessionRow) -> float:
    """How far into its lesson a lesson's session started (it waited for the camera, or the box was off): `late`
    counts from the lesson's start, so video second 0 is already this late. 0 for other sessions."""
    if not session.lesson_start:
        return 0.0
    return max(0.0, (parse_iso(session.started_at) - parse_iso(session.lesson_start)).total_seconds())


def _present(student_id: str, name: str, a: AttendanceRow | None, clock: WallClock, status: AttendanceStatus,
             recognised: AttendanceStatus, info: Correction | None, late: bool, left_early: bool,
             end_s: float | None, rule: PunctualityRule) -> PresentStudent:
    """A student whose record says they attended; `late` and `left_early` follow a correction when there is one
    (a student corrected to present was not late, whatever the camera saw)."""
    if info is not None:
        late, left_early = status == "late", status == "left_early"
    if a is None:  # the camera never saw them, a correction says they were there: v1's types, nothing seen
        return PresentStudent(student_id=student_id, name=name, first_seen_s=0.0, last_seen_s=0.0, seen_s=0.0,
                              arrived_at=clock.at(0.0), left_at=clock.at(0.0), late=late, left_early=left_early,
                              intervals=[], status=status, recognised_status=recognised, corrected=True,
                              correction=info)
    spans = intervals(a.intervals or [(a.first_seen_s, a.last_seen_s)], clock)
    return PresentStudent(
        student_id=student_id, name=name, first_seen_s=a.first_seen_s, last_seen_s=a.last_seen_s,
        seen_s=a.seen_s, arrived_at=clock.at(a.first_seen_s), left_at=clock.at(a.last_seen_s),
        late=late, left_early=left_early,
        intervals=[PresenceInterval(start_s=i.start_s, end_s=i.end_s, start=i.start, end=i.end) for i in spans],
        status=status, recognised_status=recognised, corrected=info is not None, correction=info,
    )


def summary(session: SessionRow, present_count: int, device_id: str | None) -> SessionSummary:
    return SessionSummary(
        session_id=session.id, name=session.name, section=session.section,
        mode=cast(Literal["webcam", "mp4"], session.mode), source=session.source,
        status=cast(SessionStatus, session.status), started_at=session.started_at, ended_at=session.ended_at,
        frames_processed=session.frames_processed, present_count=present_count, device_id=device_id,
    )


def record_stage(session: SessionRow) -> RecordStage:
    """`live` while the session runs, then its record's `draft` or `final`."""
    return "live" if session.status in ACTIVE else cast(RecordStage, session.record)


def summaries(store: Store, sessions: list[SessionRow], cfg: Config) -> list[SessionEntry]:
    """`sessions` answers: each with its present count (as its Results would say) and its record's state."""
    counts = store.attended_counts([s.id for s in sessions], cfg.recognition.min_presence_s)
    return [SessionEntry(**summary(s, counts.get(s.id, 0), cfg.mqtt.device_id).model_dump(),
                         record=record_stage(s),
                         revision=s.revision) for s in sessions]
