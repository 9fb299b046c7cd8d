"""Erasure requests: forget a student everywhere, delete a session with its files; refused (409) for what the
running session holds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...common.errors import Conflict, NotFound
from ...contract import api
from ...privacy import erasure
from ...store import StudentRow
from ..registry import command

if TYPE_CHECKING:
    from ..services import Services


def _refuse_running(ctx: Services, session_id: str | None = None, student_id: str | None = None,
                    section: str | None = None) -> None:
    """409 (with the running session's id) for the running session itself, or for a student on its roster:
    the session holds its rows and the roster's encodings in memory and would write them back."""
    session = ctx.sessions.sm.state().session
    if session is None:
        return
    if session_id == session.id:
        raise Conflict("session_id: the session is running; stop it first", data={"session_id": session.id})
    on_it = student_id is not None and section in (None, session.section) and (
        any(s.student_id == student_id for s in _roster(ctx, session.section))
        or any(a.student_id == student_id for a in ctx.store.attendance(session.id)))  # removed since its start
    if on_it:
        raise Conflict(f"student_id: '{student_id}' is on the roster of the running session; stop it first "
                       "(or retry when it has ended)", data={"session_id": session.id})


def _roster(ctx: Services, section: str) -> list[StudentRow]:
    try:
        return ctx.store.students(section)
    except NotFound:  # the section was removed while its session runs
        return []


# ---- erasure ---------------------------------------------------------------------------------------------


@command("forget_student", api.ForgetStudentRequest)
def forget_student(ctx: Services, r: api.ForgetStudentRequest) -> dict[str, Any]:
    _refuse_running(ctx, student_id=r.student_id, section=r.section)
    done = erasure.forget_student(ctx.cfg, ctx.store, r.student_id, r.section, r.attendance == "remove")
    ctx.info.publish()
    if done.sessions or done.sections:  # retained results and live roster list roster students absent, by name
        ctx.publisher.after_erasure(ctx.sessions.idle)
    return {"student_id": r.student_id, "sections": done.sections, "encodings_removed": done.encodings,
            "photos_removed": done.photos, "crops_removed": done.crops,
            "attendance": "removed" if r.attendance == "remove" else "anonymised",
            "attendance_rows": done.attendance_rows}


@command("delete_session", api.SessionRequest)
def delete_session(ctx: Services, r: api.SessionRequest) -> dict[str, Any]:
    _refuse_running(ctx, session_id=r.session_id)
    row, files = erasure.delete_session(ctx.cfg, ctx.store, r.session_id)
    ctx.publisher.after_erasure(ctx.sessions.idle)
    return {"session_id": row.id, "deleted": True, "files_removed": files}
