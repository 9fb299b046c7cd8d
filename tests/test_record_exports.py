"""Record exports (docs/mqtt-api.md "Exports"): the pure Moodle ZIP and the export's date bounds, then one real
daemon over a real broker: one real session corrected and finalised, two earlier sessions written into its SQLite
file (one final, one a draft), exported in every format over MQTT, read back the way Moodle's import reads its CSV,
fetched with `download` of kind `record`, and through `attendancectl export`."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import subprocess
import time
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from attendance_daemon.attendance.exports import RecordRow, moodle_zip
from attendance_daemon.attendance.record_export import bound, select
from attendance_daemon.common.errors import InvalidRequest
from attendance_daemon.common.timeutil import iso, parse_iso
from attendance_daemon.contract.api import AttendanceStatus, Results
from attendance_daemon.contract.record_api import MOODLE_ACRONYMS, ExportRequest
from attendance_daemon.mqtt.downloader import download
from attendance_daemon.store import AttendanceRow, SessionRow, Store
from tests.mqtt_fixtures import Broker
from tests.test_ctl_and_auth import ctl

ZONE = "Europe/Warsaw"
FORMULA = "=HYPERLINK(1)"  # a name a spreadsheet would run


def moodle_import(data: bytes, idnumbers: list[str], acronyms: set[str]) -> dict[str, str]:
    """What Moodle's "Upload attendance by CSV" marks (mod/attendance/classes/import/marksessions.php): a header
    row naming the columns (the mapping form preselects `idnumber` and `status` by name), the user cell lowercased
    and looked up among the users' lowercased ID numbers, the status cell looked up exactly among the session's
    acronyms; an unknown user or acronym, or a user seen before, is skipped."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    header = rows[0]
    user_col, status_col = header.index("idnumber"), header.index("status")
    users = {i.lower(): i for i in idnumbers}
    marks: dict[str, str] = {}
    for row in rows[1:]:
        user = users.get(row[user_col].lower())
        if user is None or user in marks or row[status_col] not in acronyms:
            continue
        marks[user] = row[status_col]
    return marks


def _id(session: str) -> str:
    return hashlib.sha256(session.encode()).hexdigest()[:32]


def _row(session: str, started_at: str, student_id: str, status: Any) -> RecordRow:
    return RecordRow(section="cs101", session=session, session_id=_id(session), date=started_at[:10],
                     started_at=started_at, student_id=student_id, name=student_id.upper(), status=status,
                     recognised_status=status, corrected=False, first_seen=None, minutes_present=0.0,
                     record="final", device_id=None)


def test_moodle_zip_names_and_contents() -> None:
    """One CSV per session, `<date>_<session>.csv` oldest first (a name unfit for a file made safe), each with the
    header and the session's own students; acronyms as configured."""
    rows = [_row("tue lesson", "2026-12-08T09:00:00+01:00", "s1", "late"),
            _row("mon", "2026-12-07T09:00:00+01:00", "s1", "present"),
            _row("mon", "2026-12-07T09:00:00+01:00", "s2", "excused"),
            _row("tue lesson", "2026-12-08T09:00:00+01:00", "s2", "left_early")]
    acronyms = {**MOODLE_ACRONYMS, "left_early": "LE"}
    with zipfile.ZipFile(io.BytesIO(moodle_zip(rows, acronyms))) as z:
        names = z.namelist()
        assert names == ["2026-12-07_mon.csv", f"2026-12-08_tue-lesson-{_id('tue lesson')[:12]}.csv"]
        first, second = (z.read(n) for n in names)
    assert first == b"idnumber,status\ns1,P\ns2,E\n"
    known = set(acronyms.values())
    assert moodle_import(second, ["S1", "S2"], known) == {"S1": "L", "S2": "LE"}
    assert moodle_import(second, ["S1", "S2"], known - {"LE"}) == {"S1": "L"}  # a status Moodle lacks: skipped


def test_export_bounds_and_selection() -> None:
    """A date is a whole day in the box's zone (an `until` date includes it); a time is UTC without an offset;
    the selection is checked in one place, each refusal naming its field."""
    warsaw = ZoneInfo(ZONE)
    assert bound("2026-12-01", "since", warsaw, end=False).utc == "2026-11-30T23:00:00Z"
    assert bound("2026-12-31", "until", warsaw, end=True).utc == "2026-12-31T22:59:59Z"
    assert bound("2026-07-01", "until", warsaw, end=True).label == "20260701"
    at = bound("2026-12-01T08:30:00+01:00", "since", warsaw, end=False)
    assert (at.utc, at.label) == ("2026-12-01T07:30:00Z", "20261201T073000Z")
    assert bound("2026-12-01T08:30", "since", warsaw, end=False).utc == "2026-12-01T08:30:00Z"
    for request, field in (({"session_id": "x", "section": "a"}, "section"), ({}, "session_id"),
                           ({"section": "a", "until": "2026-12-01"}, "since"),
                           ({"section": "a", "since": "2026-12-01"}, "until"),
                           ({"section": "a", "since": "2026-13-01", "until": "2026-12-01"}, "since"),
                           ({"section": "a", "since": "2026-12-02", "until": "2026-12-01"}, "until"),
                           ({"section": "a", "since": "2026-12-01", "until": "9999-12-31"}, "until")):
        with pytest.raises(InvalidRequest) as exc:
            select(ExportRequest.model_validate({"format": "csv", **request}), warsaw)
        assert exc.value.message.startswith(f"{field}: "), exc.value.message


# ---- the daemon ---------------------------------------------------------------------------------------------


def _seed(database: Path, roster: list[str]) -> tuple[SessionRow, SessionRow]:
    """Two earlier sessions of `demo` in which everyone was present: the first final, the second a draft. In the
    first, one student's name as recognition stored it is a formula."""
    store = Store(database)
    now = datetime.now(UTC).replace(microsecond=0)
    made = []
    for i, hours in enumerate((3, 2)):
        started = now - timedelta(hours=hours)
        row = SessionRow(id=uuid.uuid4().hex, name=f"earlier-{i}", section="demo", mode="webcam",
                         source="camera:0", export=False, status="completed", started_at=iso(started),
                         ended_at=iso(started + timedelta(minutes=45)), roster_total=len(roster))
        store.create_session(row)
        names = {s: FORMULA if (i, s) == (0, roster[0]) else s for s in roster}
        store.save_attendance(row.id, [AttendanceRow(s, names[s], 1.0, 40.0, 39.0, [(1.0, 40.0)]) for s in roster],
                              100)
        made.append(row)
    store.finalize(made[0].id, "", "seed", None)
    store.close()
    return made[0], made[1]


def _error(c: Any, command: str, payload: dict[str, Any]) -> tuple[int, str]:
    r = c.request(command, payload, check=False)
    assert r["status"] == "error", r
    return r["code"], r["error"]


def _fetch(c: Any, name: str, out: Path, answer: dict[str, Any]) -> bytes:
    got = download(c, {"kind": "record", "name": name}, out)
    data = out.read_bytes()
    assert got["sha256"] == answer["sha256"] == hashlib.sha256(data).hexdigest()
    assert got["bytes"] == answer["bytes"] == len(data) and got["name"] == name
    return data


def _statuses(results: Results) -> dict[str, AttendanceStatus]:
    return {**{s.student_id: s.status for s in results.present}, **{s.student_id: s.status for s in results.absent}}


def test_record_exports_on_the_box(broker: Broker, daemon_factory: Any, ground_truth: dict[str, Any],
                                   tmp_path: Path) -> None:
    d = daemon_factory(extra=f'[attendance]\ntimezone = "{ZONE}"\n')
    roster = sorted(ground_truth["present"] + ground_truth["absent"])
    final, draft = _seed(d.data / "attendance.sqlite3", roster)
    d.start()
    reports = d.data / "reports"
    with broker.client(d.device) as c:
        state = c.request("start_mp4", {"path": "classroom.mp4", "section": "demo", "session_name": "exp"})["data"]
        sid = state["session"]["id"]
        code, error = _error(c, "export", {"format": "csv", "session_id": sid})
        assert code == 409 and error.startswith("session_id: ") and "live" in error  # still running
        c.wait_for("results", lambda r: r["session_id"] == sid, timeout=120)

        # the teacher corrects: an absent student was excused, a present one came late
        excused, late = ground_truth["absent"][0], ground_truth["present"][0]
        c.request("correct", {"session_id": sid, "student_id": excused, "status": "excused", "client": "t"})
        c.request("correct", {"session_id": sid, "student_id": late, "status": "late", "client": "t"})

        # a draft: refused by default, exported with include_drafts
        code, error = _error(c, "export", {"format": "moodle", "session_id": sid})
        assert code == 409 and error.startswith("session_id: ") and "draft" in error and "include_drafts" in error
        answer = c.request("export", {"format": "json", "session_id": sid, "include_drafts": True})["data"]
        assert answer["name"] == "record-exp.json" and answer["sessions"] == 1 and answer["rows"] == len(roster)
        rows = json.loads(_fetch(c, answer["name"], tmp_path / "draft.json", answer))
        assert {r["record"] for r in rows} == {"draft"}

        c.request("finalize", {"session_id": sid, "client": "t"})
        results = Results.model_validate(c.request("session", {"session_id": sid})["data"])
        assert results.record == "final"
        effective = _statuses(results)
        assert effective[excused] == "excused" and effective[late] == "late"

        # Moodle: read back as its import reads it, it marks every student with the record's effective status
        answer = c.request("export", {"format": "moodle", "session_id": sid})["data"]
        assert {k: answer[k] for k in ("name", "format", "sessions", "rows", "drafts_skipped")} == {
            "name": "record-exp-moodle.csv", "format": "moodle", "sessions": 1, "rows": len(roster),
            "drafts_skipped": 0}
        assert str(d.data) not in json.dumps(answer)  # no box paths in answers
        marks = _fetch(c, answer["name"], tmp_path / "marks.csv", answer)
        assert not marks.startswith(codecs.BOM_UTF8) and marks.startswith(b"idnumber,status\n")
        assert moodle_import(marks, [s.upper() for s in roster], set(MOODLE_ACRONYMS.values())) == {
            s.upper(): MOODLE_ACRONYMS[status] for s, status in effective.items()}

        # the flat CSV and JSON are the record
        answer = c.request("export", {"format": "json", "session_id": sid})["data"]
        rows = json.loads(_fetch(c, answer["name"], tmp_path / "exp.json", answer))
        by_id = {r["student_id"]: r for r in rows}
        present = {p.student_id: p for p in results.present}
        assert {s: r["status"] for s, r in by_id.items()} == effective
        assert {s for s, r in by_id.items() if r["corrected"]} == {excused, late}
        assert by_id[late]["recognised_status"] == "present" and by_id[excused]["recognised_status"] == "absent"
        assert all(r["record"] == "final" and r["session_id"] == sid and r["section"] == "demo" for r in rows)
        assert all(by_id[s]["first_seen"] == p.arrived_at and by_id[s]["minutes_present"] == round(p.seen_s / 60, 1)
                   for s, p in present.items())
        started = datetime.fromisoformat(rows[0]["started_at"])
        assert started == parse_iso(results.started_at) and started.utcoffset() == \
            started.astimezone(ZoneInfo(ZONE)).utcoffset() and rows[0]["date"] == rows[0]["started_at"][:10]

        # a section over a range: final records only (the draft left out and counted), as a ZIP for Moodle
        today = datetime.now(ZoneInfo(ZONE)).date()
        span = {"section": "demo", "since": (today - timedelta(days=1)).isoformat(), "until": today.isoformat()}
        answer = c.request("export", {"format": "moodle", **span})["data"]
        label = f"{span['since'].replace('-', '')}-{span['until'].replace('-', '')}"
        assert answer["name"] == f"records-demo-{label}-moodle.zip"
        assert (answer["sessions"], answer["rows"], answer["drafts_skipped"]) == (2, 2 * len(roster), 1)
        with zipfile.ZipFile(io.BytesIO(_fetch(c, answer["name"], tmp_path / "range.zip", answer))) as z:
            assert [n.split("_", 1)[1] for n in z.namelist()] == ["earlier-0.csv", "exp.csv"]  # oldest first
            assert moodle_import(z.read(z.namelist()[0]), roster, {"P"}) == dict.fromkeys(roster, "P")
            assert z.read(z.namelist()[1]) == marks

        # refusals name their field
        for payload, code, field in (({"format": "xlsx", "session_id": sid}, 400, "format"),
                                     ({"format": "csv", "session_id": sid, "section": "demo"}, 400, "section"),
                                     ({"format": "csv", "section": "demo", "until": "2026-12-31"}, 400, "since"),
                                     ({"format": "csv", "section": "demo", "since": "soon", "until": "x"}, 400,
                                      "since"),
                                     ({"format": "csv", "section": "nope", **{k: span[k] for k in ("since", "until")}},
                                      404, "section"),
                                     ({"format": "csv", "section": "demo", "since": "2020-01-01",
                                       "until": "2020-01-31"}, 404, "since")):
            got, error = _error(c, "export", payload)
            assert (got, error.split(":")[0]) == (code, field), error
        for payload, code in (({"kind": "record", "name": "../attendance.sqlite3"}, 400),
                              ({"kind": "record", "name": "record-nope.csv"}, 404), ({"kind": "record"}, 400)):
            got, error = _error(c, "download", payload)
            assert (got, error.split(":")[0]) == (code, "name"), error

        # attendancectl: export, download in pieces, sha256 checked
        out = tmp_path / "ctl-marks.csv"
        proc = ctl(broker, d.device, "export", "--session-id", sid, "--format", "moodle", "-o", str(out))
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["name"] == "record-exp-moodle.csv" and out.read_bytes() == marks
        assert "verified" in proc.stderr
        out = tmp_path / "ctl-range.csv"
        proc = ctl(broker, d.device, "export", "--section", "demo", "--since", span["since"], "--until",
                   span["until"], "--format", "csv", "--include-drafts", "-o", str(out))
        assert proc.returncode == 0, proc.stderr
        cli = json.loads(proc.stdout)
        assert cli["name"] == f"records-demo-{label}-drafts.csv" and (cli["sessions"], cli["drafts_skipped"]) == (3, 0)
        data = out.read_bytes()
        assert data.startswith(codecs.BOM_UTF8) and hashlib.sha256(data).hexdigest() == cli["sha256"]
        table = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
        assert [r["session_id"] for r in table[::len(roster)]] == [final.id, draft.id, sid]
        assert {r["record"] for r in table} == {"final", "draft"} and len(table) == 3 * len(roster)
        assert next(r["name"] for r in table if r["student_id"] == roster[0]) == "'" + FORMULA  # not a formula
        assert all(datetime.fromisoformat(r["started_at"]).tzinfo is not None for r in table)
        assert {r["status"] for r in table if r["session_id"] == sid and r["student_id"] == excused} == {"excused"}
        proc = ctl(broker, d.device, "export", "--session-id", draft.id, "--format", "csv", "-o", str(out))
        assert proc.returncode == 1 and "409: session_id: " in proc.stderr

        # the documented mosquitto example: the Moodle file of one session in one piece
        sub = subprocess.Popen(["mosquitto_sub", "-p", str(broker.port), "-t",
                                f"attendance/{d.device}/response/download", "-C", "1", "-W", "20"],
                               stdout=subprocess.PIPE)
        time.sleep(0.5)
        subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-t", f"attendance/{d.device}/request/download",
                        "-m", json.dumps({"kind": "record", "name": "record-exp-moodle.csv"})], check=True)
        piece = json.loads(sub.communicate(timeout=30)[0])["data"]
        assert piece["eof"] and codecs.decode(piece["content"].encode(), "base64") == marks

        # erasing a student deletes the exports that show them (all of demo's here)
        assert sorted(p.name for p in reports.glob("record*-*")) == sorted(
            ["record-exp.json", "record-exp-moodle.csv", f"records-demo-{label}-moodle.zip",
             f"records-demo-{label}-drafts.csv"])
        c.request("forget_student", {"student_id": roster[0], "section": "demo"})
        assert not list(reports.glob("record*-*"))
