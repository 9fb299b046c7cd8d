"""`attendancectl correct / undo-correction / corrections / finalize / reopen`: a teacher's record of a session."""

from __future__ import annotations

import getpass

import click

from ..contract.record_api import ATTENDED
from .ctl_base import call, cli, print_json

STATUSES = click.Choice(sorted([*ATTENDED, "excused", "absent"]))


def _who(by: str | None) -> str:
    """Who changes the record, as kept in the trail: `--by`, else the user running attendancectl."""
    if by:
        return by
    try:
        return f"attendancectl ({getpass.getuser()})"
    except (KeyError, OSError):  # no name for this uid (a container): still say which tool
        return "attendancectl"


_by = click.option("--by", help="Who changes the record (kept in the trail; default: attendancectl and your user).")
_note = click.option("--note", default="", help="Why (e.g. 'doctor's note'); kept in the trail.")


@cli.command()
@click.option("--session-id", required=True)
@click.option("--student-id", required=True)
@click.option("--status", type=STATUSES, required=True)
@_note
@_by
@click.pass_context
def correct(ctx: click.Context, session_id: str, student_id: str, status: str, note: str, by: str | None) -> None:
    """Correct a student's status in a finished session's draft record."""
    print_json(call(ctx, "correct", {"session_id": session_id, "student_id": student_id, "status": status,
                                     "note": note, "client": _who(by)}))


@cli.command("undo-correction")
@click.option("--session-id", required=True)
@click.option("--student-id", required=True)
@_note
@_by
@click.pass_context
def undo_correction(ctx: click.Context, session_id: str, student_id: str, note: str, by: str | None) -> None:
    """Take back the student's newest correction."""
    print_json(call(ctx, "undo_correction", {"session_id": session_id, "student_id": student_id, "note": note,
                                             "client": _who(by)}))


@cli.command()
@click.option("--session-id", required=True)
@click.pass_context
def corrections(ctx: click.Context, session_id: str) -> None:
    """A session's trail: every correction, undo, finalisation and reopening (all of its pages)."""
    page = call(ctx, "corrections", {"session_id": session_id})
    entries = list(page["corrections"])
    while page.get("more") and page["corrections"]:  # after_id grows with every page: it ends
        page = call(ctx, "corrections", {"session_id": session_id, "after_id": entries[-1]["id"]})
        entries += page["corrections"]
    print_json({**page, "corrections": entries})  # the record's state as of the last page


@cli.command()
@click.option("--session-id", required=True)
@_note
@_by
@click.pass_context
def finalize(ctx: click.Context, session_id: str, note: str, by: str | None) -> None:
    """Make a session's record final (corrections refused until reopened); sends the absence notice."""
    print_json(call(ctx, "finalize", {"session_id": session_id, "note": note, "client": _who(by)}))


@cli.command()
@click.option("--session-id", required=True)
@_note
@_by
@click.pass_context
def reopen(ctx: click.Context, session_id: str, note: str, by: str | None) -> None:
    """Make a final record a draft again (kept in the trail)."""
    print_json(call(ctx, "reopen", {"session_id": session_id, "note": note, "client": _who(by)}))
