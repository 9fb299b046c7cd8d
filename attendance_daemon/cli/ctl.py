"""`attendancectl`: drive a daemon over MQTT without writing JSON by hand."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Any

import click

from . import ctl_export, ctl_files, ctl_hub, ctl_record  # noqa: F401  (they register their commands)
from . import remote_files as remote
from .ctl_base import CLIENT, cli
from .ctl_base import call as _call
from .ctl_base import client_of as _client
from .ctl_base import print_enrolled as _print_enrolled
from .ctl_base import print_json as _print


def _watch(ctx: click.Context, session_id: str) -> None:
    """Progress bar until the session's results are published, then the results."""
    client = _client(ctx)
    with click.progressbar(length=1000, label="session", show_percent=True, file=sys.stderr) as bar:
        def on_progress(p: Any) -> bool:
            if p and p.get("session_id") == session_id:
                if p.get("total"):
                    bar.update(int(10 * (p.get("percent") or 0)) - bar.pos)
                bar.label = f"frame {p['frame']} fps {p['fps']} present {p['present']}" + (
                    " (paused)" if p.get("paused") else "")
            r = client.json("results")
            return bool(r and r.get("session_id") == session_id)

        client.wait_for("progress", on_progress, timeout=10 ** 6)
        bar.update(1000 - bar.pos)
    _print(client.wait_for("results", lambda r: r.get("session_id") == session_id, timeout=30))


@cli.command("start-mp4")
@click.argument("path")
@click.option("--section", required=True)
@click.option("--name", "session_name")
@click.option("--export", is_flag=True)
@click.option("--watch", is_flag=True, help="Show progress until the session ends, then the results.")
@click.pass_context
def start_mp4(ctx: click.Context, path: str, section: str, session_name: str | None, export: bool,
              watch: bool) -> None:
    """Start a session over a video in the daemon's media directory."""
    state = _call(ctx, "start_mp4", {"path": path, "section": section, "session_name": session_name,
                                     "export": export, "client": CLIENT})
    if watch:
        _watch(ctx, state["session"]["id"])
    else:
        _print(state)


@cli.command("start-webcam")
@click.option("--section", required=True)
@click.option("--camera", help="Index, /dev path or stream URL (default: the daemon's).")
@click.option("--name", "session_name")
@click.option("--duration", "duration_s", type=float, help="Auto-stop after this many seconds.")
@click.option("--export", is_flag=True)
@click.option("--watch", is_flag=True)
@click.pass_context
def start_webcam(ctx: click.Context, section: str, camera: str | None, session_name: str | None,
                 duration_s: float | None, export: bool, watch: bool) -> None:
    """Start a live camera session."""
    cam: str | int | None = int(camera) if camera is not None and camera.isdigit() else camera
    state = _call(ctx, "start_webcam", {"section": section, "camera": cam, "session_name": session_name,
                                        "duration_s": duration_s, "export": export, "client": CLIENT})
    if watch:
        _watch(ctx, state["session"]["id"])
    else:
        _print(state)


def _simple(name: str, command: str, doc: str) -> None:
    @cli.command(name, help=doc)
    @click.option("--session-id", help="Only act if this is the running session.")
    @click.pass_context
    def _cmd(ctx: click.Context, session_id: str | None) -> None:
        _print(_call(ctx, command, {"session_id": session_id}))


_simple("pause", "pause", "Pause the running session (an MP4 holds its exact frame).")
_simple("resume", "resume", "Resume a paused session.")
_simple("stop", "stop", "Stop the running session; its results are kept and published.")


@cli.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Current state."""
    _print(_call(ctx, "status"))


@cli.command()
@click.pass_context
def watch(ctx: click.Context) -> None:
    """Follow the running session's progress, then print its results."""
    state = _call(ctx, "status")
    if not state["session"]:
        raise click.ClickException("idle: no session is running")
    _watch(ctx, state["session"]["id"])


@cli.command()
@click.argument("session_id", required=False)
@click.pass_context
def results(ctx: click.Context, session_id: str | None) -> None:
    """Results of a session (default: the last finished one)."""
    if session_id:
        _print(_call(ctx, "session", {"session_id": session_id}))
        return
    client = _client(ctx)
    try:
        _print(client.wait_for("results", lambda r: True, timeout=3))
    except TimeoutError as exc:
        raise click.ClickException("no results published yet") from exc


@cli.command()
@click.pass_context
def sections(ctx: click.Context) -> None:
    """Sections and student counts."""
    _print(_call(ctx, "sections"))


@cli.command()
@click.option("--section", required=True)
@click.pass_context
def students(ctx: click.Context, section: str) -> None:
    """Students of a section."""
    _print(_call(ctx, "students", {"section": section}))


@cli.command()
@click.option("--section", required=True)
@click.option("--student-id", required=True)
@click.option("--name", required=True, help="Display name.")
@click.option("--image", "local", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A JPEG or PNG on this computer, sent in the request (repeatable; instead of IMAGES).")
@click.argument("images", nargs=-1)
@click.pass_context
def enroll(ctx: click.Context, section: str, student_id: str, name: str, local: tuple[str, ...],
           images: tuple[str, ...]) -> None:
    """Enroll (or add photos of) a student from images in the daemon's enrollment directory (paths on the box,
    relative to that directory), or from photos on this computer (--image). Exits 1 when no image was
    accepted."""
    if bool(local) == bool(images):
        raise click.UsageError("give IMAGES (paths on the box) or --image (local files), not both or neither")
    payload: dict[str, Any] = {"section": section, "student_id": student_id, "name": name}
    if local:
        payload["images_b64"] = remote.upload_images([Path(p) for p in local])
    else:
        payload["images"] = list(images)
    _print_enrolled(_call(ctx, "enroll", payload))


@cli.command("remove-student")
@click.option("--section", required=True)
@click.option("--student-id", required=True)
@click.pass_context
def remove_student(ctx: click.Context, section: str, student_id: str) -> None:
    """Remove a student (and their face encodings) from a section."""
    _print(_call(ctx, "remove_student", {"section": section, "student_id": student_id}))


@cli.command()
@click.option("--section")
@click.option("--status")
@click.option("--record", type=click.Choice(["live", "draft", "final"]),
              help="Only these records (draft: the ones still to finalise).")
@click.option("--limit", type=int)
@click.pass_context
def sessions(ctx: click.Context, section: str | None, status: str | None, record: str | None,
             limit: int | None) -> None:
    """Session history, newest first."""
    _print(_call(ctx, "sessions", {"section": section, "status": status, "record": record, "limit": limit}))


@cli.command()
@click.argument("session_id")
@click.option("--format", "fmt", type=click.Choice(["csv", "pdf"]), default="csv", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, writable=True),
              help="Fetch the report over MQTT into this local file (else: print its path on the box).")
@click.pass_context
def report(ctx: click.Context, session_id: str, fmt: str, out: str | None) -> None:
    """Have the daemon write a report; prints its path on the daemon's box, or fetches it (--out)."""
    data = _call(ctx, "report", {"session_id": session_id, "format": fmt, "content": True if out else None})
    if out:
        _save(data, out)
    else:
        _print(data)


# ---- remote operations: fetch, photos, unknown faces, erasure -------------------------------------------


def _save(data: dict[str, Any], out: str) -> None:
    try:
        size = remote.save_content(data, Path(out))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{out}: {size} bytes, {data.get('content_type')}, sha256 verified")


@cli.command("unknown-faces")
@click.argument("session_id")
@click.pass_context
def unknown_faces(ctx: click.Context, session_id: str) -> None:
    """The unknown faces a session kept, with their face ids."""
    _print(_call(ctx, "unknown_faces", {"session_id": session_id}))


@cli.command("fetch-face")
@click.argument("face_id", type=int)
@click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True))
@click.pass_context
def fetch_face(ctx: click.Context, face_id: int, out: str) -> None:
    """Save an unknown face's crop (JPEG) locally."""
    _save(_call(ctx, "unknown_face_image", {"face_id": face_id}), out)


@cli.command("fetch-snapshot")
@click.argument("session_id")
@click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True))
@click.pass_context
def fetch_snapshot(ctx: click.Context, session_id: str, out: str) -> None:
    """Save the annotated frame kept for a finished session (JPEG) locally."""
    _save(_call(ctx, "snapshot", {"session_id": session_id}), out)


@cli.command("assign-unknown")
@click.argument("face_id", type=int)
@click.option("--section", required=True)
@click.option("--student-id", required=True)
@click.option("--name", help="Display name (required when the student is new).")
@click.pass_context
def assign_unknown(ctx: click.Context, face_id: int, section: str, student_id: str, name: str | None) -> None:
    """"That was Ada": enroll an unknown face as (a new photo of) a student."""
    _print(_call(ctx, "assign_unknown", {"face_id": face_id, "section": section, "student_id": student_id,
                                         "name": name}))


@cli.command()
@click.option("--section", required=True)
@click.option("--student-id", required=True)
@click.pass_context
def photos(ctx: click.Context, section: str, student_id: str) -> None:
    """A student's enrollment photos (one per encoding)."""
    _print(_call(ctx, "student_photos", {"section": section, "student_id": student_id}))


@cli.command("fetch-photo")
@click.argument("photo_id", type=int)
@click.option("--section", required=True)
@click.option("--student-id", required=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True))
@click.pass_context
def fetch_photo(ctx: click.Context, photo_id: int, section: str, student_id: str, out: str) -> None:
    """Save a stored enrollment photo locally."""
    _save(_call(ctx, "student_photo", {"section": section, "student_id": student_id, "photo_id": photo_id}), out)


@cli.command("remove-photo")
@click.argument("photo_id", type=int)
@click.option("--section", required=True)
@click.option("--student-id", required=True)
@click.pass_context
def remove_photo(ctx: click.Context, photo_id: int, section: str, student_id: str) -> None:
    """Remove one enrollment photo and its encoding."""
    _print(_call(ctx, "remove_photo", {"section": section, "student_id": student_id, "photo_id": photo_id}))


@cli.command()
@click.argument("student_id")
@click.option("--section", help="Only this section (default: every section on the box).")
@click.option("--remove-attendance", is_flag=True,
              help="Delete their attendance rows (default: anonymise them, keeping session counts).")
@click.pass_context
def forget(ctx: click.Context, student_id: str, section: str | None, remove_attendance: bool) -> None:
    """Erase a student: encodings, photos, crops, and their attendance rows (anonymised or removed)."""
    _print(_call(ctx, "forget_student", {"student_id": student_id, "section": section,
                                         "attendance": "remove" if remove_attendance else None}))


@cli.command("delete-session")
@click.argument("session_id")
@click.pass_context
def delete_session(ctx: click.Context, session_id: str) -> None:
    """Delete a finished session with its attendance, unknown faces, reports, export and frame."""
    _print(_call(ctx, "delete_session", {"session_id": session_id}))


# ---- timetable and attendance over time (issue 8) ----------------------------------------------------


@cli.command()
@click.pass_context
def schedule(ctx: click.Context) -> None:
    """The timetable, the lesson under way and the next one."""
    _print(_call(ctx, "schedule"))


@cli.command("schedule-add")
@click.argument("lesson_id")
@click.option("--weekday", required=True, type=click.Choice(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]))
@click.option("--start", required=True, help="HH:MM or HH:MM:SS in the box's time zone.")
@click.option("--end", required=True, help="HH:MM or HH:MM:SS, after --start.")
@click.option("--section", required=True)
@click.option("--camera", help="A declared camera's name (default: the daemon's default camera).")
@click.option("--name", help="Display name of the lesson.")
@click.pass_context
def schedule_add(ctx: click.Context, lesson_id: str, weekday: str, start: str, end: str, section: str,
                 camera: str | None, name: str | None) -> None:
    """Add a weekly lesson to the timetable."""
    _print(_call(ctx, "schedule_add", {"lesson_id": lesson_id, "weekday": weekday, "start": start, "end": end,
                                       "section": section, "camera": camera, "name": name}))


@cli.command("schedule-remove")
@click.argument("lesson_id")
@click.pass_context
def schedule_remove(ctx: click.Context, lesson_id: str) -> None:
    """Remove a lesson from the timetable."""
    _print(_call(ctx, "schedule_remove", {"lesson_id": lesson_id}))


@cli.command("schedule-set")
@click.argument("file", type=click.File("rb"))
@click.pass_context
def schedule_set(ctx: click.Context, file: Any) -> None:
    """Replace the whole timetable with the lessons of a TOML file (`[[timetable]]` entries, as in the config
    file) or a JSON file (a list of lessons); `-` reads standard input."""
    raw = file.read()
    try:
        lessons = json.loads(raw)
    except ValueError:
        try:
            lessons = tomllib.loads(raw.decode())["timetable"]
        except (ValueError, KeyError) as exc:  # TOMLDecodeError and UnicodeDecodeError are ValueErrors
            raise click.ClickException(f"{file.name}: neither a JSON list of lessons nor TOML with [[timetable]] "
                                       f"({type(exc).__name__}: {exc})") from exc
    _print(_call(ctx, "schedule_set", {"lessons": lessons}))


@cli.command()
@click.option("--section", required=True)
@click.option("--student-id", required=True)
@click.option("--since", help="ISO 8601 (UTC when without a zone).")
@click.option("--until")
@click.option("--limit", type=int)
@click.pass_context
def history(ctx: click.Context, section: str, student_id: str, since: str | None, until: str | None,
            limit: int | None) -> None:
    """A student's attendance in each session of a section, and their percentage."""
    _print(_call(ctx, "student_history", {"section": section, "student_id": student_id, "since": since,
                                          "until": until, "limit": limit}))


@cli.command()
@click.option("--section", required=True)
@click.option("--since")
@click.option("--until")
@click.pass_context
def attendance(ctx: click.Context, section: str, since: str | None, until: str | None) -> None:
    """Every student's attendance percentage in a section."""
    _print(_call(ctx, "section_attendance", {"section": section, "since": since, "until": until}))


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
