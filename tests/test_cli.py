"""The command line as a user runs it: one-line errors and non-zero exits, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def run(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp / "cfg.toml"
    if not cfg.exists():
        cfg.write_text('[paths]\ndata_dir = "data"\n')
    return subprocess.run([sys.executable, "-m", "attendance_daemon", "--config", str(cfg), *args],
                          capture_output=True, text=True, timeout=300, check=False)


def _one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and needle in errors[0], proc.stderr


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory: pytest.TempPathFactory, sample: dict[str, Any]) -> Path:
    home = tmp_path_factory.mktemp("cli")
    proc = run(home, "enroll-bulk", sample["enrollment"])
    assert proc.returncode == 0, proc.stderr
    assert "demo/S008 (Barbara Liskov): 1 encoding(s) added" in proc.stdout
    return home


def test_process_json_and_history(cli_home: Path, sample: dict[str, Any], ground_truth: dict[str, Any]) -> None:
    proc = run(cli_home, "process", sample["video"], "--section", "demo", "--name", "cli-run", "--json")
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert sorted(p["student_id"] for p in results["present"]) == ground_truth["present"]
    assert results["status"] == "completed" and results["name"] == "cli-run"
    listing = run(cli_home, "sessions")
    assert "cli-run\tcompleted" in listing.stdout
    shown = json.loads(run(cli_home, "show", results["session_id"]).stdout)
    assert shown == results
    for fmt in ("csv", "pdf"):
        out = run(cli_home, "report", results["session_id"], "--format", fmt)
        path = Path(out.stdout.strip())
        assert out.returncode == 0 and path.is_file() and path.stat().st_size > 200
    csv_text = (path.parent / "cli-run.csv").read_text()
    assert "S001,Barack Obama,present" in csv_text and "S007,Edsger Dijkstra,absent" in csv_text
    assert path.read_bytes().startswith(b"%PDF")


def test_errors_are_one_line(cli_home: Path, tmp_path: Path) -> None:
    _one_line_error(run(cli_home, "process", str(tmp_path / "missing.mp4"), "--section", "demo"), "no such video")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"garbage" * 50)
    _one_line_error(run(cli_home, "process", str(corrupt), "--section", "demo"), "corrupt")
    _one_line_error(run(cli_home, "process", str(corrupt), "--section", "nope"), "unknown section 'nope'")
    blank = tmp_path / "blank.png"
    import cv2
    import numpy as np

    cv2.imwrite(str(blank), np.zeros((64, 64, 3), np.uint8))
    proc = run(cli_home, "enroll", "--section", "empty", "--student-id", "X", "--name", "X", str(blank))
    _one_line_error(proc, "no image of X could be enrolled")
    assert "no face found" in proc.stderr
    _one_line_error(run(cli_home, "students", "--section", "empty"), "unknown section")
    _one_line_error(run(cli_home, "show", "nope"), "unknown session")
    bad_cfg = tmp_path / "bad.toml"
    bad_cfg.write_text("[recognition]\nthreshold = 1\n")
    proc = subprocess.run([sys.executable, "-m", "attendance_daemon", "--config", str(bad_cfg), "sections"],
                          capture_output=True, text=True, check=False)
    _one_line_error(proc, "recognition.threshold")


def test_empty_section_refused(cli_home: Path, sample: dict[str, Any]) -> None:
    import sqlite3

    db = sqlite3.connect(cli_home / "data" / "attendance.sqlite3")
    db.execute("INSERT INTO sections(name, created_at) VALUES ('ghosts', '2026-11-25T00:00:00Z')")
    db.commit()
    _one_line_error(run(cli_home, "process", sample["video"], "--section", "ghosts"), "no enrolled faces")


def test_ctrl_c_stops_cleanly_keeping_what_was_seen(cli_home: Path, daemon_media: Path) -> None:
    import signal
    import sqlite3
    import time

    cfg = cli_home / "cfg.toml"
    proc = subprocess.Popen([sys.executable, "-m", "attendance_daemon", "--config", str(cfg), "process",
                             str(daemon_media / "long.mp4"), "--section", "demo", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = cli_home / "data" / "attendance.sqlite3"
    deadline = time.monotonic() + 60
    query = ("SELECT 1 FROM attendance a JOIN sessions s ON s.id = a.session_id "
             "WHERE s.status = 'running' AND a.seen_s >= 3")
    while time.monotonic() < deadline:  # a first student is present in the periodic flush
        with sqlite3.connect(db) as conn:
            if conn.execute(query).fetchone():
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    results = json.loads(out)
    assert results["status"] == "stopped"
    assert 0 < results["frames_processed"] < 900
    assert results["present_count"] >= 1
