"""The record at the store, on real SQLite files: when a draft becomes final by itself (and when not), the absence
notice owed across a reopening, and forgetting a student a teacher only corrected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from attendance_daemon.common.errors import NotFound
from attendance_daemon.common.timeutil import iso
from attendance_daemon.privacy import erasure
from attendance_daemon.store import SessionRow, Store
from tests.conftest import make_config

NOW = datetime.now(UTC)


def _ended(store: Store, name: str, days_ago: float, status: str = "completed", lesson: str | None = None) -> str:
    start = NOW - timedelta(days=days_ago)
    row = SessionRow(id=f"id-{name}", name=name, section="5a", mode="webcam", source="camera:0", export=False,
                     status="running", started_at=iso(start), lesson=lesson,
                     lesson_start=iso(start) if lesson else None)
    store.create_session(row)
    store.update_session(row.id, status=status, ended_at=iso(start + timedelta(minutes=45)))
    return row.id


def test_what_becomes_final_by_itself(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.sqlite3", allow_init=True)
    old, recent, failed = _ended(store, "old", 5), _ended(store, "recent", 0.5), _ended(store, "failed", 5, "failed")
    cut, resumed = _ended(store, "cut", 5, "interrupted", "maths@x"), _ended(store, "resumed", 4.99, lesson="maths@x")
    alone = _ended(store, "alone", 5, "interrupted", "bio@x")  # an interrupted lesson nobody resumed
    reopened = _ended(store, "reopened", 5)
    store.finalize(reopened, "", "teacher", None)
    store.reopen(reopened, "a parent called", "teacher", None)  # reopened just now: 48 h from now, not from its end
    before = iso(NOW - timedelta(hours=48))
    assert set(store.due_for_finalize(before)) == {old, resumed, alone}
    assert recent not in store.due_for_finalize(before) and failed not in store.due_for_finalize(before)
    assert cut not in store.due_for_finalize(before)  # its lesson's notice comes from the session that resumed it
    assert reopened in store.due_for_finalize(iso(NOW + timedelta(hours=1)))  # once its time has passed again
    store.close()


def test_the_notice_of_a_second_finalisation_is_owed_until_sent(tmp_path: Path) -> None:
    """The outbox sent the first finalisation's notice; meanwhile the record was reopened, corrected and finalised
    again: marking the first notice sent must leave the second one owed."""
    store = Store(tmp_path / "a.sqlite3", allow_init=True)
    sid = _ended(store, "s", 1)
    store.finalize(sid, "", "t", None)
    [(_, revision, first)] = store.outbox()
    assert (revision, first) == (1, 1)
    store.reopen(sid, "", "t", None)
    store.finalize(sid, "", "t", None)
    store.mark_published(sid, revision)
    store.mark_noticed(sid, first)  # the outbox took the first notice only now
    assert store.outbox() == [(sid, 3, 3)]
    store.mark_published(sid, 3)
    store.mark_noticed(sid, 3)
    assert store.outbox() == []
    store.close()


def test_forgetting_a_student_a_teacher_only_corrected(tmp_path: Path) -> None:
    """Never seen, corrected to excused with a note, removed from the roster, then forgotten: the trail's rows go
    and the reports of that session are doomed and swept."""
    cfg = make_config(tmp_path)
    cfg.ensure_dirs()
    store = Store(cfg.paths.database, allow_init=True)
    sid = _ended(store, "s", 1)
    with store._tx() as db:  # on the roster when corrected (the correction checks), removed from it since
        db.execute("INSERT INTO sections(name, created_at) VALUES ('5a', '2026-01-01T00:00:00Z')")
        db.execute("INSERT INTO students(section, student_id, name, created_at) VALUES ('5a', 'k1', 'Kim', "
                   "'2026-01-01T00:00:00Z')")
    store.correct(sid, "k1", "excused", "in hospital", "teacher", None)
    with store._tx() as db:
        db.execute("DELETE FROM students WHERE student_id = 'k1'")
    report = cfg.paths.reports / "s.csv"
    report.write_text("student_id,name,status\nk1,Kim,excused\n")
    done = erasure.forget_student(cfg, store, "k1", None, remove_rows=True)
    assert done.sessions == [sid] and not report.exists()
    assert store.record_log(sid)[1] == [] and store.corrections_in([sid]) == {}
    store.close()


def test_exports_of_hostile_payloads_hold_no_formula(tmp_path: Path) -> None:
    """At the hub every cell of an export comes from a box's payload: none may reach a spreadsheet as a formula,
    and Moodle's file keeps only ids Moodle can match (escaping one would break the match)."""
    import csv
    import io

    from attendance_daemon.attendance.exports import RecordRow, flat_csv, moodle_csv
    from attendance_daemon.contract.record_api import MOODLE_ACRONYMS

    def row(student_id: str) -> RecordRow:
        return RecordRow(section="5a", session="=cmd|' /C calc'!A0", session_id="=HYPERLINK(\"x\")",
                         date="2026-12-07", started_at="@SUM(1)", student_id=student_id, name="+Kim",
                         status="present", recognised_status="present", corrected=False, first_seen="=1+2",
                         minutes_present=1.0, record="final", device_id="-room")

    rows = [row("s1"), row("@SUM(1)")]
    table = list(csv.reader(io.StringIO(flat_csv(rows).decode("utf-8-sig"))))
    for cells in table[1:]:
        assert not any(c[:1] in ("=", "+", "-", "@") for c in cells), cells
    assert list(csv.reader(io.StringIO(moodle_csv(rows, MOODLE_ACRONYMS).decode()))) == [
        ["idnumber", "status"], ["s1", "P"]]


def test_an_export_made_while_a_student_is_erased_is_not_kept(tmp_path: Path, monkeypatch: Any) -> None:
    """The export reads the record, a forget commits and sweeps, then the export would write the forgotten
    student's name: it is refused (409, export again) and its file removed."""
    from attendance_daemon.attendance import record_export
    from attendance_daemon.common.errors import Conflict
    from attendance_daemon.contract.record_api import ExportRequest

    cfg = make_config(tmp_path)
    cfg.ensure_dirs()
    store = Store(cfg.paths.database, allow_init=True)
    sid, other = _ended(store, "kept", 1), _ended(store, "erased", 2)
    store.finalize(sid, "", "t", None)
    real = record_export.build_results  # type: ignore[attr-defined]  # the module's import, replaced below

    def erasing_meanwhile(*args: Any) -> Any:
        results = real(*args)
        store.delete_session(other)
        return results

    monkeypatch.setattr(record_export, "build_results", erasing_meanwhile)
    with pytest.raises(Conflict, match=r"session_id: .* erased while this export was made"):
        record_export.export_record(store, cfg, ExportRequest(format="csv", session_id=sid))
    assert not list(cfg.paths.reports.glob("record-*"))
    monkeypatch.setattr(record_export, "build_results", real)
    assert record_export.export_record(store, cfg, ExportRequest(format="csv", session_id=sid)).rows == 0
    store.close()


def test_a_final_record_keeps_its_roster(tmp_path: Path) -> None:
    """Removing a student from the section later takes them out of drafts, never out of a final record (their
    absence and name stay, through a reopening and a correction too); forgetting them takes them out of both."""
    from attendance_daemon.attendance.results import build_results

    cfg = make_config(tmp_path)
    store = Store(cfg.paths.database, allow_init=True)
    with store._tx() as db:
        db.execute("INSERT INTO sections(name, created_at) VALUES ('5a', '2026-01-01T00:00:00Z')")
        for sid_, name in (("k1", "Kim"), ("k2", "Lee"), ("k3", "Max")):
            db.execute("INSERT INTO students(section, student_id, name, created_at) VALUES ('5a', ?, ?, "
                       "'2026-01-01T00:00:00Z')", (sid_, name))
    final, draft = _ended(store, "final", 2), _ended(store, "draft", 1)
    store.finalize(final, "", "t", None)

    def absent(session_id: str) -> list[tuple[str, str]]:
        results = build_results(store, store.get_session(session_id), cfg)
        assert results.total == len(results.absent)
        return [(a.student_id, a.name) for a in results.absent]

    store.remove_student("5a", "k2")
    assert absent(final) == [("k1", "Kim"), ("k2", "Lee"), ("k3", "Max")]
    assert absent(draft) == [("k1", "Kim"), ("k3", "Max")]
    store.reopen(final, "", "t", None)
    store.correct(final, "k2", "excused", "moved school", "t", None)  # still on this record's roster
    store.finalize(final, "", "t", None)
    results = build_results(store, store.get_session(final), cfg)
    assert [(a.student_id, a.status) for a in results.absent] == [("k1", "absent"), ("k2", "excused"),
                                                                   ("k3", "absent")]
    store.reopen(final, "", "t", None)  # the record's roster, not the section's: a newcomer is not on it
    with store._tx() as db:
        db.execute("INSERT INTO students(section, student_id, name, created_at) VALUES ('5a', 'k4', 'Noa', "
                   "'2026-01-02T00:00:00Z')")
    with pytest.raises(NotFound, match="student_id"):
        store.correct(final, "k4", "present", "", "t", None)
    assert ("k4", "Noa") in absent(draft)
    store.finalize(final, "", "t", None)
    erasure.forget_student(cfg, store, "k3", None, remove_rows=True)
    assert absent(final) == [("k1", "Kim"), ("k2", "Lee")] and ("k3", "Max") not in absent(draft)
    erasure.forget_student(cfg, store, "k1", None, remove_rows=False)  # anonymised: a placeholder in the record
    [(stand_in, name)] = [a for a in absent(final) if a[0] != "k2"]
    assert stand_in == name and stand_in.startswith("forgotten-")
    store.close()


def test_a_removed_sections_record_keeps_its_size_when_finalised(tmp_path: Path) -> None:
    """Its roster is gone: the record keeps the size the section had at the start (no empty roster frozen)."""
    from attendance_daemon.attendance.results import build_results

    cfg = make_config(tmp_path)
    store = Store(cfg.paths.database, allow_init=True)
    sid = _ended(store, "gone", 1)
    with store._tx() as db:  # as create_session records it for a section of three
        db.execute("UPDATE sessions SET roster_total = 3 WHERE id=?", (sid,))
    assert build_results(store, store.get_session(sid), cfg).total == 3
    store.finalize(sid, "", "t", None)
    row = store.get_session(sid)
    assert store.frozen_roster(row) is None and build_results(store, row, cfg).total == 3
    store.close()


def test_records_final_before_the_upgrade_keep_the_roster_of_then(tmp_path: Path) -> None:
    """Schema 9 -> 10: a final record gets the section's roster at the upgrade; a draft keeps following it."""
    import sqlite3

    from attendance_daemon.store.schema import MIGRATIONS

    path = tmp_path / "a.sqlite3"
    store = Store(path, allow_init=True)
    with store._tx() as db:
        db.execute("INSERT INTO sections(name, created_at) VALUES ('5a', '2026-01-01T00:00:00Z')")
        db.execute("INSERT INTO students(section, student_id, name, created_at) VALUES ('5a', 'k1', 'Kim', "
                   "'2026-01-01T00:00:00Z')")
    final, draft = _ended(store, "final", 2), _ended(store, "draft", 1)
    store.close()
    db = sqlite3.connect(path)  # back to schema 9, the final record as schema 9 kept it
    db.executescript("DROP TABLE session_roster; ALTER TABLE sessions DROP COLUMN roster_frozen; "
                     f"UPDATE sessions SET record='final' WHERE id='{final}'; PRAGMA user_version=9;")
    db.close()
    store = Store(path)
    assert store.schema_version() == len(MIGRATIONS) == 10
    assert store.frozen_roster(store.get_session(final)) == {"k1": "Kim"}
    assert store.frozen_roster(store.get_session(draft)) is None
    store.close()
