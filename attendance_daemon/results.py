"""Builds the contract's Results and session summaries from what the store holds."""

from __future__ import annotations

from typing import Literal, cast

from .api import AbsentStudent, PresentStudent, Results, SessionStatus, SessionSummary
from .export import video_codec
from .store import SessionRow, Store


def build_results(store: Store, session: SessionRow, min_presence_s: float) -> Results:
    """Present = seen at least `min_presence_s`; absent = the rest of the section's roster as it is now."""
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
    return Results(
        **summary(session).model_dump(),
        present_count=len(present),
        total=total,
        unknowns=len(store.unknowns(session.id)),
        present=[
            PresentStudent(student_id=a.student_id, name=a.name, first_seen_s=a.first_seen_s,
                           last_seen_s=a.last_seen_s, seen_s=a.seen_s)
            for a in present
        ],
        absent=absent,
        export_path=session.export_path,
        export_codec=video_codec(session.export_path) if session.status not in ("running", "paused") else None,
        error=session.error,
    )


def summary(session: SessionRow) -> SessionSummary:
    return SessionSummary(
        session_id=session.id, name=session.name, section=session.section,
        mode=cast(Literal["webcam", "mp4"], session.mode), source=session.source,
        status=cast(SessionStatus, session.status), started_at=session.started_at, ended_at=session.ended_at,
        frames_processed=session.frames_processed,
    )
