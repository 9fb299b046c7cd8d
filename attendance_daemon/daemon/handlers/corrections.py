"""The teacher's record: correct a student's status and undo it, list the trail, finalise and reopen. Each change
is one audited row committed before the answer; the changed Results reach the broker (and the hub) through the
record outbox, once the broker has taken them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, cast

from ...contract import api, record_api
from ...store import LogRow, SessionRow
from ..registry import command

if TYPE_CHECKING:
    from ..services import Services


def entry(row: LogRow) -> record_api.LogEntry:
    return record_api.LogEntry(
        id=row.id, action=cast(Literal["correct", "undo", "finalize", "reopen"], row.action),
        student_id=row.student_id, status=cast(api.AttendanceStatus | None, row.status), undoes=row.undoes,
        undone_by=row.undone_by, note=row.note, client=row.client, mqtt_user=row.mqtt_user, at=row.at)


def _state(row: SessionRow, change: LogRow | None) -> record_api.RecordState:
    return record_api.RecordState(session_id=row.id, record=cast(Literal["draft", "final"], row.record),
                                  revision=row.revision, finalized_at=row.finalized_at,
                                  change=entry(change) if change is not None else None)


@command("correct", record_api.CorrectRequest)
def correct(ctx: Services, r: record_api.CorrectRequest) -> record_api.RecordState:
    row = ctx.store.correct(r.session_id, r.student_id, r.status, r.note, r.client, None)
    ctx.outbox.changed()
    return _state(ctx.store.get_session(r.session_id), row)


@command("undo_correction", record_api.UndoRequest)
def undo_correction(ctx: Services, r: record_api.UndoRequest) -> record_api.RecordState:
    row = ctx.store.undo_correction(r.session_id, r.student_id, r.note, r.client, None)
    ctx.outbox.changed()
    return _state(ctx.store.get_session(r.session_id), row)


@command("corrections", record_api.TrailRequest)
def corrections(ctx: Services, r: record_api.TrailRequest) -> record_api.Trail:
    """A page of the trail (bounded: a burst of corrections makes a long one)."""
    row, log = ctx.store.record_log(r.session_id, r.after_id, r.limit + 1)
    record = "live" if row.status in ("running", "paused") else row.record
    return record_api.Trail(session_id=row.id, record=cast(Literal["live", "draft", "final"], record),
                            revision=row.revision, corrections=[entry(x) for x in log[:r.limit]],
                            more=len(log) > r.limit)


@command("finalize", record_api.RecordRequest)
def finalize(ctx: Services, r: record_api.RecordRequest) -> record_api.RecordState:
    row, change = ctx.store.finalize(r.session_id, r.note, r.client, None)
    ctx.outbox.changed()
    return _state(row, change)


@command("reopen", record_api.RecordRequest)
def reopen(ctx: Services, r: record_api.RecordRequest) -> record_api.RecordState:
    row, change = ctx.store.reopen(r.session_id, r.note, r.client, None)
    ctx.outbox.changed()
    return _state(row, change)
