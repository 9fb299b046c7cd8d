"""`attendancectl export`: a session's or a section's record, written on the box in Moodle's mark-sessions format, a
flat CSV or JSON, then fetched in pieces and checked against the sha256 the export answered."""

from __future__ import annotations

from pathlib import Path

import click

from .ctl_base import call, cli, print_json
from .ctl_files import fetch


@cli.command("export")
@click.option("--format", "fmt", type=click.Choice(["moodle", "csv", "json"]), required=True,
              help="moodle: Moodle attendance's \"Upload attendance by CSV\" (a ZIP of one CSV per session for a "
                   "range); csv, json: one row per student per session.")
@click.option("--session-id", help="One session's record.")
@click.option("--section", help="A section's records from --since to --until.")
@click.option("--since", help="First day (YYYY-MM-DD, a whole day in the box's zone) or ISO 8601 time.")
@click.option("--until", help="Last day (included) or ISO 8601 time.")
@click.option("--include-drafts", is_flag=True, help="Also records not finalised yet (default: final only).")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Local file for the export.")
@click.pass_context
def export(ctx: click.Context, fmt: str, session_id: str | None, section: str | None, since: str | None,
           until: str | None, include_drafts: bool, out: Path) -> None:
    """Export the record (final records only unless --include-drafts) and download it; prints the export's
    answer (name, bytes, sha256, sessions, rows)."""
    answer = call(ctx, "export", {"format": fmt, "session_id": session_id, "section": section, "since": since,
                                  "until": until, "include_drafts": include_drafts or None})
    got = fetch(ctx, {"kind": "record", "name": answer["name"]}, out)  # the assembled file is checked against
    if got["sha256"] != answer["sha256"]:  # the box's sha256 of it, which must be the export's
        raise click.ClickException(f"{out}: not the file exported (another export of the same records replaced "
                                   "it on the box meanwhile?); run the same command again")
    print_json(answer)
    click.echo(f"{out}: {answer['bytes']} bytes, {answer['sessions']} sessions, {answer['rows']} rows, sha256 "
               f"{answer['sha256']} verified", err=True)
