"""`attendance-hub`: the fleet's hub. `serve` runs the service; the other commands work on its PostgreSQL
database directly (enrollment and roster publication connect to the central broker for the one publish)."""

from __future__ import annotations

import base64
import json
import logging
import sys
from pathlib import Path

import click

from .. import __version__
from ..common.errors import AttendanceError
from ..common.names import check_display_name, check_id
from ..roster.enrollment import bulk_folders
from .config import HubConfig, load_hub_config

CONFIG_ENV = "ATTENDANCE_HUB_CONFIG"


def _cfg(ctx: click.Context) -> HubConfig:
    cfg: HubConfig = ctx.obj["cfg"]
    return cfg


@click.group()
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path), envvar=CONFIG_ENV,
              help=f"TOML config file (or ${CONFIG_ENV}).")
@click.option("-v", "--verbose", is_flag=True)
@click.version_option(__version__)
@click.pass_context
def cli(ctx: click.Context, config: Path | None, verbose: bool) -> None:
    """The hub of many rooms: every box's results in PostgreSQL, fleet status, one roster."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.ensure_object(dict)
    ctx.obj["cfg"] = load_hub_config(config)


@cli.command()
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Run the hub (systemd: attendance-hub.service)."""
    from .service import Hub

    sys.exit(Hub(_cfg(ctx)).run())


@cli.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Create or upgrade the database schema (serve does it too)."""
    from .store import HubStore

    store = HubStore(_cfg(ctx).hub.database)
    click.echo(f"schema version {store.schema_version()}")
    store.close()


class _Publishing:
    """The store and a RosterPublisher that publishes through a short-lived connection to the central broker."""

    def __init__(self, cfg: HubConfig) -> None:
        from ..mqtt.link import make_client
        from .roster import RosterPublisher
        from .store import HubStore

        self.store = HubStore(cfg.hub.database)
        self.client = make_client(cfg.mqtt, f"{cfg.hub.client_id}-cli")
        self.client.connect(cfg.mqtt.host, cfg.mqtt.port)
        self.client.loop_start()
        self.rosters = RosterPublisher(self.store, cfg.mqtt.base_topic, cfg.hub.roster_key(), self._publish,
                                       cfg.hub.duplicate_warn_distance, cfg.enrollment.max_image_pixels)

    def _publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1, retain=True).wait_for_publish(30)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.store.close()


@cli.command()
@click.option("--section", required=True)
@click.option("--student-id", required=True)
@click.option("--name", required=True)
@click.option("--no-publish", is_flag=True, help="Only store; publish later with `publish`.")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_context
def enroll(ctx: click.Context, section: str, student_id: str, name: str, no_publish: bool,
           images: tuple[Path, ...]) -> None:
    """Enroll one student (photos with exactly one face each, the box's rules), then publish the section."""
    check_id(section, "section")
    check_id(student_id, "student_id")
    check_display_name(name)
    limits = _cfg(ctx).enrollment
    if len(images) > limits.max_images:
        raise AttendanceError(f"images: at most {limits.max_images} (enrollment.max_images)")
    p = _Publishing(_cfg(ctx))
    try:
        outcome = p.rosters.enroll(section, student_id, name, list(images))
        click.echo(f"{section}/{student_id} ({name}): {outcome.encodings_added} encoding(s)")
        for r in outcome.rejected:
            click.echo(f"  rejected {r['image']}: {r['reason']}", err=True)
        for w in outcome.warnings:
            click.echo(f"  warning: {w}", err=True)
        if outcome.encodings_added == 0:
            raise AttendanceError(f"no image of {student_id} could be enrolled")
        if not no_publish:
            click.echo(f"roster {section}: {json.dumps(p.rosters.publish(section))}")
    finally:
        p.close()


@cli.command("enroll-bulk")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--no-publish", is_flag=True, help="Only store; publish later with `publish`.")
@click.pass_context
def enroll_bulk(ctx: click.Context, root: Path, no_publish: bool) -> None:
    """Enroll ROOT/<section>/<student_id>__<name>/*.jpg (the box's layout), then publish each section."""
    p = _Publishing(_cfg(ctx))
    sections = set()
    for section, sid, name, images in bulk_folders(root):
        outcome = p.rosters.enroll(section, sid, name, images)
        click.echo(f"{section}/{sid} ({name}): {outcome.encodings_added} encoding(s)")
        for r in outcome.rejected:
            click.echo(f"  rejected {Path(r['image']).name}: {r['reason']}", err=True)
        if outcome.encodings_added:
            sections.add(section)
    for section in sorted(sections) if not no_publish else []:
        click.echo(f"roster {section}: {json.dumps(p.rosters.publish(section))}")
    p.close()


@cli.command()
@click.argument("section")
@click.pass_context
def publish(ctx: click.Context, section: str) -> None:
    """Publish SECTION's roster as a new version."""
    p = _Publishing(_cfg(ctx))
    click.echo(json.dumps(p.rosters.publish(section)))
    p.close()


@cli.command()
@click.option("--student", help="One student over all rooms and sessions.")
@click.option("--section", help="A section over all rooms and sessions.")
@click.option("--since")
@click.option("--until")
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "pdf"]), default="csv")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here (a PDF needs it).")
@click.pass_context
def report(ctx: click.Context, student: str | None, section: str | None, since: str | None, until: str | None,
           fmt: str, output: Path | None) -> None:
    """Cross-room report (the same as the hub's student_report / section_report requests)."""
    from . import requests as hr
    from .store import HubStore

    if (student is None) == (section is None):
        raise click.UsageError("give exactly one of --student or --section")
    store = HubStore(_cfg(ctx).hub.database)
    rows = (store.student_report(student, since, until, hr.MAX_REPORT_ROWS) if student is not None
            else store.section_report(str(section), since, until, hr.MAX_REPORT_ROWS))
    store.close()
    if fmt == "pdf" and output is None:
        raise click.UsageError("--format pdf needs --output FILE")
    title = f"Attendance of student {student}" if student is not None else f"Attendance of section {section}"
    out = hr.report_data(rows, fmt, title)
    if fmt == "pdf":
        assert output is not None
        output.write_bytes(base64.b64decode(out["pdf"]))
        return
    text = out["csv"] if fmt == "csv" else json.dumps(hr.plain(out), indent=1)
    if output is not None:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except AttendanceError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
