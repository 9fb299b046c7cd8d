"""`attendancectl upload` and `attendancectl download ...`: files to and from the box in chunks, with a progress
bar; both resume (run the same command again after Ctrl-C or a lost connection) and verify the sha256."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..mqtt.client import ApiError
from ..mqtt.downloader import DownloadCorrupt, download
from ..mqtt.uploader import UPLOAD_LEAVES, UploadFailed, upload
from .ctl_base import CLIENT, call, cli, client_of, print_json

F = TypeVar("F", bound=Callable[..., Any])


@cli.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="Name in the box's media library (default: the file's name).")
@click.option("--start", is_flag=True, help="Start a session on it once it is on the box.")
@click.option("--section", help="The section of the session (with --start).")
@click.option("--export", is_flag=True, help="Write the annotated export video (with --start).")
@click.pass_context
def upload_file(ctx: click.Context, file: Path, name: str | None, start: bool, section: str | None,
                export: bool) -> None:
    """Upload a video into the box's media library (resumes an interrupted upload of the same file)."""
    if start and not section:
        raise click.UsageError("--start needs --section")
    ctx.obj["leaves"] = UPLOAD_LEAVES  # never `#`: the chunks would come back to us
    client = client_of(ctx)
    size = file.stat().st_size
    with click.progressbar(length=size, label=f"upload {file.name}", show_eta=True, show_percent=True,
                           file=sys.stderr) as bar:
        def progress(sent: int, total: int) -> None:
            bar.update(sent - bar.pos)

        try:
            media = upload(client, file, name=name, on_progress=progress)
        except UploadFailed as exc:
            raise click.ClickException(f"the box refused the file: {exc.status.get('error')}") from exc
        except ApiError as exc:
            raise click.ClickException(f"{exc.response.get('code')}: {exc.response.get('error')}") from exc
        except TimeoutError as exc:
            raise click.ClickException(f"{exc}; run the same command again to resume") from exc
    print_json(media)
    if start:
        print_json(call(ctx, "start_mp4", {"media": media["name"], "section": section, "export": export or None,
                                           "client": CLIENT}))


@cli.group("download")
def download_group() -> None:
    """Fetch a file from the box in pieces (resumable, sha256 checked): export, report, unknown, photo, media,
    record."""


def _fetch(ctx: click.Context, request: dict[str, Any], out: Path) -> None:
    got = fetch(ctx, request, out)
    click.echo(f"{out}: {got['bytes']} bytes, {got['content_type']}, sha256 {got['sha256']} verified")


def fetch(ctx: click.Context, request: dict[str, Any], out: Path) -> dict[str, Any]:
    """Downloads what `request` names to `out` with a progress bar (on stderr); the last answer without its
    content (name, bytes, sha256 of the assembled file, verified, content_type)."""
    client = client_of(ctx)
    with click.progressbar(length=1, label=f"download {out.name}", show_eta=True, show_percent=True,
                           file=sys.stderr) as bar:
        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        try:
            got = download(client, {k: v for k, v in request.items() if v is not None}, out, on_progress=progress)
        except ApiError as exc:
            raise click.ClickException(f"{exc.response.get('code')}: {exc.response.get('error')}") from exc
        except (TimeoutError, DownloadCorrupt) as exc:
            raise click.ClickException(f"{exc}; run the same command again to resume") from exc
    return got


def _out_option(default_help: str) -> Callable[[F], F]:
    return click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
                        help=default_help)


@download_group.command("export")
@click.argument("session_id")
@_out_option("Local file for the annotated export video (H.264 MP4).")
@click.pass_context
def download_export(ctx: click.Context, session_id: str, out: Path) -> None:
    """A session's annotated export video."""
    _fetch(ctx, {"kind": "export", "session_id": session_id}, out)


@download_group.command("report")
@click.argument("session_id")
@click.option("--format", "fmt", type=click.Choice(["csv", "pdf"]), default="csv", show_default=True)
@_out_option("Local file for the report.")
@click.pass_context
def download_report(ctx: click.Context, session_id: str, fmt: str, out: Path) -> None:
    """A session's report, as the record is now."""
    _fetch(ctx, {"kind": "report", "session_id": session_id, "format": fmt}, out)


@download_group.command("unknown")
@click.argument("face_id", type=int)
@_out_option("Local file for the face crop (JPEG).")
@click.pass_context
def download_unknown(ctx: click.Context, face_id: int, out: Path) -> None:
    """An unknown face's crop (face ids: `attendancectl unknown-faces SESSION`)."""
    _fetch(ctx, {"kind": "unknown_face", "face_id": face_id}, out)


@download_group.command("photo")
@click.argument("photo_id", type=int)
@click.option("--section", required=True)
@click.option("--student", "student_id", required=True)
@_out_option("Local file for the photo.")
@click.pass_context
def download_photo(ctx: click.Context, photo_id: int, section: str, student_id: str, out: Path) -> None:
    """A student's stored enrollment photo."""
    _fetch(ctx, {"kind": "photo", "photo_id": photo_id, "section": section, "student_id": student_id}, out)


@download_group.command("media")
@click.argument("name")
@_out_option("Local file for the video.")
@click.pass_context
def download_media(ctx: click.Context, name: str, out: Path) -> None:
    """A video of the box's media library."""
    _fetch(ctx, {"kind": "media", "name": name}, out)


@cli.command("media")
@click.pass_context
def media(ctx: click.Context) -> None:
    """The box's media library: uploaded videos with size, duration, frames and sha256."""
    print_json(call(ctx, "media"))


@cli.command("delete-media")
@click.argument("name")
@click.pass_context
def delete_media(ctx: click.Context, name: str) -> None:
    """Delete a video from the media library (refused while a session uses it)."""
    print_json(call(ctx, "delete_media", {"name": name}))


@download_group.command("record")
@click.argument("name")
@_out_option("Local file for the record export.")
@click.pass_context
def download_record(ctx: click.Context, name: str, out: Path) -> None:
    """A record export the box wrote (its name as `attendancectl export` or `request/export` answered it)."""
    _fetch(ctx, {"kind": "record", "name": name}, out)
