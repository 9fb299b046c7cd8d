"""Results people use: late / left-early, wall-clock times in the box's zone, CSV that Excel opens, PDF names."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from attendance_daemon.attendance.pdffonts import FONT_ROOT, plan_fonts
from attendance_daemon.attendance.punctuality import PunctualityRule, WallClock, intervals
from attendance_daemon.attendance.reports import HEADER, write_report
from attendance_daemon.common.errors import InvalidRequest
from attendance_daemon.common.timeutil import system_zone, zone_named
from attendance_daemon.config import Config, load_config
from attendance_daemon.contract.api import AbsentStudent, PresenceInterval, PresentStudent, Results
from attendance_daemon.sessions.runtime import Runtime

# ---- the pure rule ----------------------------------------------------------------------------------------


def test_late_is_first_seen_after_the_threshold() -> None:
    rule = PunctualityRule(late_after_s=300, left_early_before_s=120)
    assert not rule.late(0.0) and not rule.late(300.0)
    assert rule.late(300.1) and rule.late(1800)


def test_left_early_is_last_seen_before_the_end_by_more_than_the_threshold() -> None:
    rule = PunctualityRule(late_after_s=300, left_early_before_s=120)
    assert rule.left_early(3000.0, 3600.0)
    assert not rule.left_early(3480.0, 3600.0)  # exactly 120 s before: not early
    assert not rule.left_early(3599.0, 3600.0)
    assert not rule.left_early(10.0, None)  # the end is not known (running, or recorded before ends were)


def test_wall_clock_is_session_start_plus_video_time_in_the_zone_with_its_offset() -> None:
    start = datetime(2026, 11, 26, 8, 0, 0, tzinfo=UTC)
    warsaw = WallClock(start, ZoneInfo("Europe/Warsaw"))
    assert warsaw.at(0) == "2026-11-26T09:00:00+01:00"
    assert warsaw.at(305.4) == "2026-11-26T09:05:05+01:00"
    summer = WallClock(datetime(2026, 7, 1, 8, 0, 0, tzinfo=UTC), ZoneInfo("Europe/Warsaw"))
    assert summer.at(0) == "2026-07-01T10:00:00+02:00"  # daylight saving time follows the date
    kolkata = WallClock(start, ZoneInfo("Asia/Kolkata"))
    assert kolkata.at(60) == "2026-11-26T13:31:00+05:30"
    spans = intervals([(400.0, 500.0), (0.0, 120.256)], warsaw)
    assert [(i.start_s, i.end_s) for i in spans] == [(0.0, 120.26), (400.0, 500.0)]
    assert spans[1].start == "2026-11-26T09:06:40+01:00" and spans[1].end == "2026-11-26T09:08:20+01:00"


# ---- config ------------------------------------------------------------------------------------------------


def test_timezone_key_is_validated_and_defaults_to_the_system_zone(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[attendance]\ntimezone = "Europe/Warsaw"\nlate_after_s = 60\nleft_early_before_s = 30\n')
    cfg = load_config(p)
    assert cfg.attendance.zone()[0] == "Europe/Warsaw"
    assert (cfg.attendance.late_after_s, cfg.attendance.left_early_before_s) == (60, 30)
    p.write_text('[attendance]\ntimezone = "Mars/Olympus_Mons"\n')
    with pytest.raises(InvalidRequest, match=r"attendance\.timezone: 'Mars/Olympus_Mons' is not an IANA"):
        load_config(p)
    p.write_text('[attendance]\nlate_after_s = -1\n')
    with pytest.raises(InvalidRequest, match=r"attendance\.late_after_s"):
        load_config(p)
    monkeypatch.setenv("TZ", "America/Sao_Paulo")
    assert Config().attendance.zone()[0] == "America/Sao_Paulo" == system_zone()[0]
    monkeypatch.setenv("TZ", "Not/AZone")
    assert zone_named("Not/AZone") is None and zone_named("../etc/passwd") is None
    assert system_zone()[0] != "Not/AZone"  # the next source of the system's zone is used instead


# ---- reports -----------------------------------------------------------------------------------------------

NAMES = {"S1": "अनीता शर्मा", "S2": "王小明", "S3": "Żaneta Łukasiewicz", "S4": "Begoña Muñoz"}


def _results(names: dict[str, str] = NAMES) -> Results:
    clock = WallClock(datetime(2026, 11, 26, 8, 0, tzinfo=UTC), ZoneInfo("Europe/Warsaw"))
    present = []
    for n, (sid, name) in enumerate(list(names.items())[:-1]):
        spans = [(n * 400.0, 1000.0 + n * 100), (1200.0, [3000.0, 2900.0, 1600.0][n])]
        present.append(PresentStudent(
            student_id=sid, name=name, first_seen_s=spans[0][0], last_seen_s=spans[1][1],
            seen_s=sum(b - a for a, b in spans), arrived_at=clock.at(spans[0][0]), left_at=clock.at(spans[1][1]),
            late=n * 400 > 300, left_early=3000 - spans[1][1] > 300,
            intervals=[PresenceInterval(start_s=i.start_s, end_s=i.end_s, start=i.start, end=i.end)
                       for i in intervals(spans, clock)]))
    sid, name = list(names.items())[-1]
    return Results(
        session_id="abc", name="cs101-morning", section="cs101", mode="webcam", source="camera:front",
        status="completed", started_at="2026-11-26T08:00:00Z", ended_at="2026-11-26T08:50:00Z",
        frames_processed=45000, present_count=len(present), device_id="room-101", total=len(names), unknowns=1,
        present=present, absent=[AbsentStudent(student_id=sid, name=name)], export_path=None, export_codec=None,
        error=None, timezone="Europe/Warsaw", end_s=3000.0, late_after_s=300, left_early_before_s=300)


def test_csv_has_a_bom_and_the_header_first_with_intervals_and_late_columns(tmp_path: Path) -> None:
    raw = write_report(_results(), tmp_path, "csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    assert text.splitlines()[0] == ",".join(HEADER)
    rows = list(csv.DictReader(io.StringIO(text)))
    by = {r["student_id"]: r for r in rows}
    assert [r["name"] for r in rows] == list(NAMES.values())  # Unicode intact
    assert by["S1"]["status"] == "present" and by["S1"]["late"] == "no" and by["S1"]["left_early"] == "no"
    assert by["S1"]["arrived_at"] == "2026-11-26T09:00:00+01:00"
    assert by["S1"]["intervals"] == ("2026-11-26T09:00:00+01:00/2026-11-26T09:16:40+01:00; "
                                     "2026-11-26T09:20:00+01:00/2026-11-26T09:50:00+01:00")
    assert by["S1"]["intervals_s"] == "0.0-1000.0; 1200.0-3000.0"
    assert by["S2"]["late"] == "yes" and by["S2"]["left_early"] == "no"
    assert by["S3"]["late"] == "yes" and by["S3"]["left_early"] == "yes"
    assert by["S3"]["left_at"] == "2026-11-26T09:26:40+01:00"
    assert by["S4"]["status"] == "absent" and by["S4"]["late"] == by["S4"]["arrived_at"] == ""
    assert {r["session"] for r in rows} == {"cs101-morning"}
    assert {r["session_started_at"] for r in rows} == {"2026-11-26T09:00:00+01:00"}


def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(str(path)).pages)


@pytest.mark.skipif(plan_fonts("अ王").main is None, reason="no fonts: run scripts/setup.sh as root")
def test_pdf_prints_devanagari_cjk_polish_and_spanish_names(tmp_path: Path) -> None:
    plan = plan_fonts("".join(NAMES.values()))
    assert plan.uncovered == "" and len(plan.fallbacks) == 2  # Devanagari and CJK faces, nothing missing
    text = _pdf_text(write_report(_results(), tmp_path, "pdf"))
    for name in NAMES.values():
        assert name in text, f"{name!r} not in the PDF's text"
    assert "present, late, left early" in text and "absent" in text
    assert "09:20:00-09:50:00" in text and "Europe/Warsaw" in text and "room-101" in text
    assert "?" not in text


def test_pdf_without_fonts_falls_back_to_latin1_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    import attendance_daemon.attendance.reports as reports

    monkeypatch.setattr(reports, "plan_fonts", lambda text: plan_fonts(text, tmp_path / "no-fonts"))
    text = _pdf_text(write_report(_results(), tmp_path, "pdf"))
    assert "No Unicode font was found" in text and "No Unicode font was found" in caplog.text
    assert "Begoña Muñoz" in text  # Latin-1 still prints
    assert "王小明" not in text and "???" in text


def test_fonts_come_from_the_installed_packages() -> None:
    if not FONT_ROOT.is_dir():
        pytest.skip("no system fonts")
    assert plan_fonts("Begoña").fallbacks == []  # the main face covers Latin: nothing else is loaded


# ---- end to end: the real pipeline on the demo classroom -------------------------------------------------


def test_late_and_left_early_on_the_demo_classroom(runtime: Runtime, sample: dict[str, Any]) -> None:
    """Tom Hanks (S003) arrives at 2.4 s of 12; S004 leaves at 7.8 s; S005 leaves at 10.8 s (1.2 s before)."""
    from attendance_daemon.attendance.results import build_results
    from attendance_daemon.common.timeutil import parse_iso
    from attendance_daemon.config import AttendanceConfig
    from attendance_daemon.sessions.planning import plan_mp4
    from attendance_daemon.sessions.runner import SessionRunner

    rt = runtime
    rt.cfg.attendance = AttendanceConfig(timezone="Asia/Kolkata", late_after_s=2.2, left_early_before_s=3.0)
    plan = plan_mp4(rt.cfg, rt.store, "classroom.mp4", "demo", "punctual", False)
    row = SessionRunner(rt.cfg, rt.store, rt.detector, rt.encoder, plan).run()
    results = build_results(rt.store, rt.store.get_session(row.id), rt.cfg)
    assert results.end_s is not None and 11.0 <= results.end_s <= 12.0
    assert {p.student_id for p in results.present if p.late} == {"S003"}
    assert {p.student_id for p in results.present if p.left_early} == {"S004"}
    assert results.timezone == "Asia/Kolkata" and results.device_id == rt.cfg.mqtt.device_id
    start = parse_iso(results.started_at)
    for p in results.present:
        assert p.arrived_at.endswith("+05:30") and p.left_at.endswith("+05:30")
        arrived = parse_iso(p.arrived_at)
        assert abs((arrived - start).total_seconds() - p.first_seen_s) < 1  # times are to the second
        assert p.intervals and p.intervals[0].start_s == round(p.first_seen_s, 2)
        # an interval covers its last analysed frame too (1 / analysis_fps = 0.2 s past the last sighting)
        assert 0 <= p.intervals[-1].end_s - p.last_seen_s <= 0.21
        assert p.intervals[0].start == p.arrived_at
        assert abs(sum(i.end_s - i.start_s for i in p.intervals) - p.seen_s) < 0.2


# ---- over MQTT: the real daemon --------------------------------------------------------------------------


def test_every_payload_carries_device_id_and_results_their_times(broker: Any, daemon_factory: Any) -> None:
    import json

    d = daemon_factory(extra='[attendance]\ntimezone = "Europe/Warsaw"\nlate_after_s = 2.2\n'
                             'left_early_before_s = 3.0\n').start()
    with broker.client(d.device) as c:
        sid = c.request("start_mp4", {"path": "classroom.mp4", "section": "demo",
                                      "session_name": "fleet"})["data"]["session"]["id"]
        busy = c.request("start_mp4", {"path": "classroom.mp4", "section": "demo"}, check=False)
        assert busy["code"] == 409 and busy["data"]["state"]["device_id"] == d.device
        results = c.wait_for("results", lambda r: r["session_id"] == sid)
        c.wait_for("state", lambda s: s["mode"] == "idle")
        replies = {cmd: c.request(cmd, body)["data"] for cmd, body in (
            ("status", {}), ("session", {"session_id": sid}), ("sessions", {}))}
        seen = {leaf: [json.loads(p) for lf, p, _ in c.messages if lf == leaf]
                for leaf in ("state", "progress", "results", "events", "info")}
    for leaf, payloads in seen.items():
        assert payloads, f"nothing on {leaf}"
        for payload in payloads:
            assert payload["device_id"] == d.device, (leaf, payload)
    assert {e["type"] for e in seen["events"]} >= {"session_started", "student_present", "session_finished"}
    assert replies["status"]["device_id"] == replies["session"]["device_id"] == d.device
    assert [s["device_id"] for s in replies["sessions"]] == [d.device]
    assert replies["sessions"][0]["present_count"] == results["present_count"] == 6
    assert results["timezone"] == "Europe/Warsaw" and results["end_s"] > 11
    by = {p["student_id"]: p for p in results["present"]}
    assert [s for s, p in by.items() if p["late"]] == ["S003"]
    assert [s for s, p in by.items() if p["left_early"]] == ["S004"]
    assert all(p["arrived_at"][-6:] in ("+01:00", "+02:00") and p["intervals"] for p in by.values())


def test_pdf_of_a_corrected_final_record(tmp_path: Path) -> None:
    """A corrected student's one status and what recognition saw, whole in its cell; the finalisation in the
    results' zone like every other time of the page."""
    from attendance_daemon.contract.api import Correction

    results = _results()
    fix = Correction(id=1, status="left_early", note="", client="teacher", mqtt_user=None, at="2026-11-26T09:00:00Z")
    results.present[1] = results.present[1].model_copy(update={
        "status": "left_early", "recognised_status": "late", "corrected": True, "correction": fix})
    results = results.model_copy(update={"record": "final", "finalized_at": "2026-11-26T09:15:00Z"})
    text = _pdf_text(write_report(results, tmp_path, "pdf"))
    assert "left early (corrected; seen: late)" in text
    assert "finalised 2026-11-26 10:15" in text and "UTC" not in text
