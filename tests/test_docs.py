from pathlib import Path

from attendance_daemon.asyncapi import build, render

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_committed_asyncapi_is_current() -> None:
    regenerate = "run: python -m attendance_daemon.asyncapi > docs/asyncapi.json"
    assert (DOCS / "asyncapi.json").read_text() == render(), regenerate


def test_asyncapi_covers_the_contract() -> None:
    channels = build()["channels"]
    for leaf in ("availability", "info", "state", "progress", "results", "snapshot", "events"):
        assert f"{{base}}/{{device}}/{leaf}" in channels
    for command in ("start_webcam", "start_mp4", "pause", "resume", "stop", "status", "sections", "students",
                    "enroll", "remove_student", "sessions", "session", "report"):
        assert f"{{base}}/{{device}}/request/{command}" in channels
