"""`attendancectl hub ...`: the hub's requests (`<base>/@hub/request/<command>`, docs/fleet.md) with the
box subcommands' client, options, error messages and exit codes.

Imported by ctl.py, which is the `attendancectl` entry point; both build on ctl_base."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from pathlib import Path

import click

from ..mqtt.bridge import HUB
from .ctl_base import call as _call
from .ctl_base import cli
from .ctl_base import print_enrolled as _print_enrolled
from .ctl_base import print_json as _print

# The hub's retained rosters (up to 16 MiB each) share its namespace: a ctl call takes only what it needs.
HUB_LEAVES = ("availability", "response/+")


@cli.group()
@click.pass_context
def hub(ctx: click.Context) -> None:
    """Talk to attendance-hub (many rooms) on the central broker: fleet, sessions, reports, exports, rosters."""
    ctx.obj["device"] = HUB
    ctx.obj["leaves"] = HUB_LEAVES


@hub.command()
@click.pass_context
def fleet(ctx: click.Context) -> None:
    """Every box the hub has seen: online, mode, session, the roster version each applied."""
    _print(_call(ctx, "fleet"))


@hub.command()
@click.option("--device", "device_id", help="Only this box.")
@click.option("--section")
@click.option("--limit", type=int, help="The newest N (default 100).")
@click.pass_context
def sessions(ctx: click.Context, device_id: str | None, section: str | None, limit: int | None) -> None:
    """Sessions stored at the hub, with their delivery and revision counts."""
    _print(_call(ctx, "sessions", {"device_id": device_id, "section": section, "limit": limit}))


@hub.command()
@click.option("--student", "student_id", help="One student over every room and session.")
@click.option("--section", help="Every student of a section over every room and session.")
@click.option("--since", help="ISO 8601 (UTC when without a zone).")
@click.option("--until")
@click.option("--limit", type=int, help="At most N rows (default 1000).")
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "pdf"]), default="json", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True),
              help="Write the report to this local file (needed for pdf; else: printed).")
@click.pass_context
def report(ctx: click.Context, student_id: str | None, section: str | None, since: str | None, until: str | None,
           limit: int | None, fmt: str, out: str | None) -> None:
    """A cross-room attendance report of a student (--student) or a section (--section)."""
    if (student_id is None) == (section is None):
        raise click.UsageError("give --student or --section, not both or neither")
    if fmt == "pdf" and not out:
        raise click.UsageError("--format pdf needs --out FILE")
    command, key = ("student_report", student_id) if student_id is not None else ("section_report", section)
    data = _call(ctx, command, {"student_id" if student_id is not None else "section": key, "since": since,
                                "until": until, "limit": limit, "format": fmt})
    if fmt == "json":
        content = (json.dumps(data, indent=2) + "\n").encode()
    elif fmt == "csv":
        content = str(data.get("csv", "")).encode()
    else:
        try:
            content = base64.b64decode(str(data.get("pdf", "")), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise click.ClickException(f"the hub's pdf is not base64: {exc}") from exc
    if out is None:
        click.echo(content.decode(), nl=False)
        return
    Path(out).write_bytes(content)
    click.echo(f"{out}: {data.get('rows') if fmt != 'json' else len(data.get('rows', []))} rows, "
               f"{len(content)} bytes, {fmt}")


@hub.command()
@click.option("--section", required=True)
@click.option("--since", required=True, help="Sessions that started from then on (ISO 8601; UTC without a zone).")
@click.option("--until", required=True, help="... until then (a date alone is its midnight, UTC).")
@click.option("--format", "fmt", type=click.Choice(["moodle", "csv", "json"]), default="csv", show_default=True,
              help="moodle: a ZIP of one mark-sessions CSV per session (idnumber,status).")
@click.option("--device", "device_id", help="Only this box's sessions.")
@click.option("--include-drafts", is_flag=True, help="Also records not final yet (default: final ones only).")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False, writable=True), help="Local file.")
@click.pass_context
def export(ctx: click.Context, section: str, since: str, until: str, fmt: str, device_id: str | None,
           include_drafts: bool, out: str) -> None:
    """The record of a section's sessions in a window, as a file a school's systems import (checked against the
    hub's sha256 before it is written)."""
    data = _call(ctx, "export", {"section": section, "since": since, "until": until, "format": fmt,
                                 "device_id": device_id, "include_drafts": include_drafts or None})
    try:
        content = base64.b64decode(str(data.get("content", "")), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise click.ClickException(f"the hub's file is not base64: {exc}") from exc
    if len(content) != data.get("bytes") or hashlib.sha256(content).hexdigest() != data.get("sha256"):
        raise click.ClickException("the file does not match the hub's bytes and sha256; nothing written")
    Path(out).write_bytes(content)
    skipped = data.get("skipped") or []
    click.echo(f"{out}: {data.get('sessions')} sessions, {data.get('rows')} rows, {len(content)} bytes, {fmt}"
               + (f"; {len(skipped)} stored sessions could not be read: {', '.join(skipped)}" if skipped else ""))


@hub.command()
@click.option("--section", required=True)
@click.option("--student-id", required=True)
@click.option("--name", required=True, help="Display name.")
@click.argument("images", nargs=-1, required=True)
@click.pass_context
def enroll(ctx: click.Context, section: str, student_id: str, name: str, images: tuple[str, ...]) -> None:
    """Enroll (or add photos of) a student at the hub and publish the section's new roster. IMAGES are paths
    on the hub, relative to its enrollment directory (the hub takes no photos in the request). The first
    enrollment loads the face models: give a generous --timeout. Exits 1 when no image was accepted."""
    _print_enrolled(_call(ctx, "enroll", {"section": section, "student_id": student_id, "name": name,
                                          "images": list(images)}))


@hub.command("remove-student")
@click.option("--section", required=True)
@click.option("--student-id", required=True)
@click.pass_context
def remove_student(ctx: click.Context, section: str, student_id: str) -> None:
    """Remove a student from a section's roster at the hub and publish its new version."""
    _print(_call(ctx, "remove_student", {"section": section, "student_id": student_id}))


@hub.command()
@click.pass_context
def rosters(ctx: click.Context) -> None:
    """Every section's published roster version and hash."""
    _print(_call(ctx, "rosters"))


@hub.command()
@click.argument("section")
@click.pass_context
def publish(ctx: click.Context, section: str) -> None:
    """Publish a section's roster again as a new version (e.g. after `attendance-hub enroll-bulk --no-publish`)."""
    _print(_call(ctx, "publish_roster", {"section": section}))


@hub.command()
@click.argument("student_id")
@click.option("--section", help="Only this section (default: every section).")
@click.option("--remove-attendance", is_flag=True,
              help="Delete their attendance rows (default: anonymise them under a random id).")
@click.pass_context
def forget(ctx: click.Context, student_id: str, section: str | None, remove_attendance: bool) -> None:
    """Erase a student at the hub, publish the affected rosters and send `forget_student` to every box."""
    _print(_call(ctx, "forget_student", {"student_id": student_id, "section": section,
                                         "attendance": "remove" if remove_attendance else None}))


@hub.command()
@click.argument("device_id")
@click.argument("section")
@click.option("--remove", is_flag=True, help="Unassign: the box no longer teaches SECTION.")
@click.pass_context
def assign(ctx: click.Context, device_id: str, section: str, remove: bool) -> None:
    """DEVICE_ID teaches SECTION: it gets that roster (on its own topic) and its results for it count."""
    _print(_call(ctx, "unassign" if remove else "assign", {"device_id": device_id, "section": section}))


@hub.command()
@click.option("--device", "device_id", help="Only this box.")
@click.pass_context
def assignments(ctx: click.Context, device_id: str | None) -> None:
    """Each box and the sections it teaches."""
    _print(_call(ctx, "assignments", {"device_id": device_id}))


@hub.command()
@click.option("--device", "device_id", help="Only this box.")
@click.option("--limit", type=int, help="The newest N (default 1000).")
@click.pass_context
def quarantine(ctx: click.Context, device_id: str | None, limit: int | None) -> None:
    """Sessions a box sent for a section it does not teach: kept out of every report."""
    _print(_call(ctx, "quarantine", {"device_id": device_id, "limit": limit}))


@hub.command()
@click.argument("device_id")
@click.argument("session_id")
@click.pass_context
def release(ctx: click.Context, device_id: str, session_id: str) -> None:
    """Let a quarantined session into the reports (after checking it)."""
    _print(_call(ctx, "release_session", {"device_id": device_id, "session_id": session_id}))


@hub.command()
@click.option("--section", required=True)
@click.option("--student-id", required=True)
@click.pass_context
def photos(ctx: click.Context, section: str, student_id: str) -> None:
    """A student's encodings at the hub, one per enrolled photo (at most 20)."""
    _print(_call(ctx, "student_photos", {"section": section, "student_id": student_id}))


@hub.command("remove-photo")
@click.option("--section", required=True)
@click.option("--student-id", required=True)
@click.argument("photo_id", type=int)
@click.pass_context
def remove_photo(ctx: click.Context, section: str, student_id: str, photo_id: int) -> None:
    """Remove one of a student's encodings at the hub and publish the section."""
    _print(_call(ctx, "remove_photo", {"section": section, "student_id": student_id, "photo_id": photo_id}))
