"""`attendance-hub`: the fleet's hub. `serve` runs the service; the other commands work on its PostgreSQL
database directly (enrollment and roster publication connect to the central broker for the one publish)."""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
from pathlib import Path

import click
from pydantic import ValidationError

from .. import __version__
from ..common.errors import AttendanceError, format_validation_error
from ..common.names import check_display_name, check_id
from ..roster.enrollment import EnrollOutcome, bulk_folders
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
                                       cfg.hub.duplicate_warn_distance, cfg.enrollment.max_image_pixels,
                                       cfg.hub.roster_signer(), cfg.hub.legacy_roster_topics)

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
        _echo_outcome(f"{section}/{student_id} ({name})", outcome)
        for w in outcome.warnings:
            click.echo(f"  warning: {w}", err=True)
        if outcome.encodings_added == 0 and not outcome.skipped:
            raise AttendanceError(f"no image of {student_id} could be enrolled")
        if outcome.encodings_added and not no_publish:
            click.echo(f"roster {section}: {json.dumps(p.rosters.publish(section))}")
    finally:
        p.close()


@cli.command("enroll-bulk")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--no-publish", is_flag=True, help="Only store; publish later with `publish`.")
@click.pass_context
def enroll_bulk(ctx: click.Context, root: Path, no_publish: bool) -> None:
    """Enroll ROOT/<section>/<student_id>__<name>/*.jpg (the box's layout), then publish each section that
    changed. Idempotent: a photo a student already has is skipped, so running it again adds nothing."""
    p = _Publishing(_cfg(ctx))
    sections = set()
    try:
        for section, sid, name, images in bulk_folders(root):
            outcome = p.rosters.enroll(section, sid, name, images)
            _echo_outcome(f"{section}/{sid} ({name})", outcome)
            if outcome.encodings_added:
                sections.add(section)
        for section in sorted(sections) if not no_publish else []:
            click.echo(f"roster {section}: {json.dumps(p.rosters.publish(section))}")
    finally:
        p.close()


def _echo_outcome(who: str, outcome: EnrollOutcome) -> None:
    skipped = f", {len(outcome.skipped)} already enrolled" if outcome.skipped else ""
    click.echo(f"{who}: {outcome.encodings_added} encoding(s){skipped}")
    for r in outcome.rejected:
        click.echo(f"  rejected {Path(r['image']).name}: {r['reason']}", err=True)


@cli.command()
@click.argument("section", required=False)
@click.option("--all", "every", is_flag=True, help="Every section (e.g. signed anew after a key rotation).")
@click.pass_context
def publish(ctx: click.Context, section: str | None, every: bool) -> None:
    """Publish SECTION's roster (or --all) as a new version, to each box assigned it."""
    if (section is None) == (not every):
        raise click.UsageError("give SECTION or --all")
    p = _Publishing(_cfg(ctx))
    try:
        for name in p.store.roster_sections() if every else [str(section)]:
            click.echo(f"roster {name}: {json.dumps(p.rosters.publish(name))}")
    finally:
        p.close()


@cli.command()
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the private key (created 0600; an existing file is never overwritten).")
def keygen(out: Path) -> None:
    """Make the hub's Ed25519 roster signing key; prints the public key for the boxes' roster.trusted_keys."""
    from ..contract.roster_signing import RosterSigner

    signer = RosterSigner.generate()
    try:  # exclusive: a rotation makes a new file, it never replaces the key in use; 0600 from the start
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AttendanceError(f"{out} exists: choose a new file (the key in use must stay until rotated)") from None
    with os.fdopen(fd, "wb") as f:
        f.write(signer.pem())
    click.echo(f"key_id {signer.key_id}\n{signer.public_text()}")


@cli.command("public-key")
@click.pass_context
def public_key(ctx: click.Context) -> None:
    """Print the configured signing key's id and public key (for the boxes' roster.trusted_keys)."""
    signer = _cfg(ctx).hub.roster_signer()
    if signer is None:
        raise AttendanceError("hub.roster_signing_key_file is not set (attendance-hub keygen makes one)")
    click.echo(f"key_id {signer.key_id}\n{signer.public_text()}")


@cli.command()
@click.argument("device_id")
@click.argument("section")
@click.option("--remove", is_flag=True, help="Unassign: the box no longer teaches SECTION.")
@click.pass_context
def assign(ctx: click.Context, device_id: str, section: str, remove: bool) -> None:
    """DEVICE_ID teaches SECTION: it gets the section's roster, and its results for it count in reports."""
    from .fleet_requests import AssignRequest

    try:
        AssignRequest(device_id=device_id, section=section)
    except ValidationError as exc:
        raise AttendanceError(format_validation_error(exc)) from exc
    p = _Publishing(_cfg(ctx))
    try:
        if remove:
            if not p.store.unassign(device_id, section):
                raise AttendanceError(f"'{section}' is not assigned to '{device_id}'")
            p.rosters.withdraw(device_id, section)
            click.echo(f"{device_id}: {section} unassigned")
        else:
            p.store.assign(device_id, section)
            click.echo(f"{device_id}: {section} assigned; roster {json.dumps(p.rosters.send_to(device_id, section))}")
    finally:
        p.close()


@cli.command()
@click.pass_context
def assignments(ctx: click.Context) -> None:
    """Each box and the sections it teaches."""
    from .store import HubStore

    store = HubStore(_cfg(ctx).hub.database)
    for device, sections in store.assignments().items():
        click.echo(f"{device}: {' '.join(sections)}")
    store.close()


@cli.command()
@click.option("--section", required=True)
@click.option("--student-id", required=True)
@click.pass_context
def photos(ctx: click.Context, section: str, student_id: str) -> None:
    """A student's encodings at the hub (one per photo): id, photo file, its SHA-256, when."""
    from .store import HubStore

    store = HubStore(_cfg(ctx).hub.database)
    try:
        for e in store.student_encodings(section, student_id):
            click.echo(f"{e['photo_id']}\t{e['source']}\t{e['sha256'] or '-'}\t{e['created_at']:%Y-%m-%d %H:%M}")
    finally:
        store.close()


@cli.command("remove-photo")
@click.option("--section", required=True)
@click.option("--student-id", required=True)
@click.option("--no-publish", is_flag=True, help="Only remove; publish later with `publish`.")
@click.argument("photo_ids", nargs=-1, required=True, type=int)
@click.pass_context
def remove_photo(ctx: click.Context, section: str, student_id: str, no_publish: bool,
                 photo_ids: tuple[int, ...]) -> None:
    """Remove a student's encodings by id (from `photos`), then publish the section."""
    p = _Publishing(_cfg(ctx))
    try:
        for photo_id in photo_ids:
            p.store.remove_encoding(section, student_id, photo_id)
            click.echo(f"{section}/{student_id}: photo {photo_id} removed")
        if not no_publish:
            click.echo(f"roster {section}: {json.dumps(p.rosters.publish(section))}")
    finally:
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
