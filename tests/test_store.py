import sqlite3
from pathlib import Path

import numpy as np
import pytest

from attendance_daemon.common.errors import Conflict, NotFound
from attendance_daemon.store import AttendanceRow, SessionRow, Store
from attendance_daemon.store.schema import SCHEMA_VERSION


def _session(name: str = "s1", sid: str = "id1", status: str = "running") -> SessionRow:
    return SessionRow(id=sid, name=name, section="cs", mode="mp4", source="a.mp4", export=False, status=status,
                      started_at="2026-11-24T09:00:00Z", total_frames=100, roster_total=2)


def test_new_file_is_migrated_to_current_version(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.sqlite3")
    assert store.schema_version() == SCHEMA_VERSION
    mode = sqlite3.connect(tmp_path / "a.sqlite3").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    store.close()
    assert Store(tmp_path / "a.sqlite3").schema_version() == SCHEMA_VERSION  # reopening is a no-op


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "a.sqlite3")
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(RuntimeError, match="newer"):
        Store(tmp_path / "a.sqlite3")


def test_roster_and_float32_encodings(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.sqlite3")
    a = store.upsert_student("cs", "S1", "Ada")
    b = store.upsert_student("cs", "S2", "Alan")
    assert store.upsert_student("cs", "S1", "Ada L.") == a  # same id updates the name
    v = np.random.default_rng(0).normal(size=128)
    store.add_encoding(a, v, "a.jpg")
    store.add_encoding(a, v + 1, "b.jpg")
    store.add_encoding(b, v - 1, "c.jpg")
    roster, matrix, owners = store.section_encodings("cs")
    assert [s.name for s in roster] == ["Ada L.", "Alan"]
    assert matrix.dtype == np.float32 and matrix.shape == (3, 128)
    np.testing.assert_allclose(matrix[0], v.astype(np.float32))
    assert owners.tolist() == [0, 0, 1]
    assert store.sections() == [("cs", 2)]
    with pytest.raises(ValueError):
        store.add_encoding(a, np.zeros(3), "x")
    store.remove_student("cs", "S1")
    assert store.section_encodings("cs")[1].shape == (1, 128)  # encodings cascade
    with pytest.raises(NotFound, match="student_id"):
        store.remove_student("cs", "S1")
    with pytest.raises(NotFound, match="section"):
        store.students("nope")


def test_sessions_attendance_and_interruption(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.sqlite3")
    store.create_session(_session())
    with pytest.raises(Conflict, match="session_name"):
        store.create_session(_session(sid="id2"))
    rows = [AttendanceRow("S1", "Ada", 1.0, 9.0, 8.0, [(1.0, 9.0)])]
    store.save_attendance("id1", rows, frames_processed=42)
    store.save_attendance("id1", rows, frames_processed=43)  # replaces, never duplicates
    assert store.attendance("id1") == rows
    assert store.get_session("id1").frames_processed == 43
    store.create_session(_session("s2", "id2", status="completed"))
    assert store.mark_interrupted() == ["id1"]
    s = store.get_session("id1")
    assert s.status == "interrupted" and s.ended_at is not None
    assert store.mark_interrupted() == []
    assert [x.id for x in store.list_sessions(status="interrupted")] == ["id1"]
    assert len(store.list_sessions(section="cs", limit=1)) == 1
    with pytest.raises(NotFound, match="session_id"):
        store.get_session("nope")
