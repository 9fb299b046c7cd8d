"""Erasure at the store and sweep level, on real SQLite files and real directories: a crop stays tied to its
student through a roster that replaces their encodings, schema 8 ties the crops a schema 7 box assigned, the
files an erasure dooms are recorded with its rows (and only when they commit), the sweep stays inside its
directories, and stored photos nothing names are found at start-up."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from attendance_daemon.contract.roster_message import seal
from attendance_daemon.privacy import erasure
from attendance_daemon.privacy.sweep import sweep
from attendance_daemon.roster.photos import clear_orphans
from attendance_daemon.roster.sync import RosterSync
from attendance_daemon.store import SessionRow, Store
from attendance_daemon.store.schema import MIGRATIONS
from tests.conftest import make_config


def _roster(version: int, students: list[str]) -> bytes:
    body = {"section": "5a", "version": version, "published_at": "2026-11-26T09:00:00Z",
            "students": [{"student_id": s, "name": s.upper(), "encodings": [[0.5] * 128]} for s in students]}
    return json.dumps(seal(body, None)).encode()


def _visitor(store: Store, unknowns: Path, session: str = "sess1") -> tuple[int, Path]:
    """A session of 5a with one unknown visitor whose crop is on disk; returns (face id, crop)."""
    store.create_session(SessionRow(id=session, name=session, section="5a", mode="webcam", source="camera:0",
                                    export=False, status="completed", started_at="2026-09-07T08:00:00Z",
                                    roster_total=1))
    crop = unknowns / session / "track-00001.jpg"
    crop.parent.mkdir(parents=True)
    crop.write_bytes(b"\xff\xd8 the visitor's face")
    return store.add_unknown(session, 1, str(crop), 1.0, np.zeros(128)), crop


def test_a_crop_stays_tied_to_its_student_when_a_roster_replaces_their_encodings(tmp_path: Path) -> None:
    """assign_unknown tied the crop to the encoding it became (ON DELETE SET NULL): a hub roster replacing the
    student's encodings detached it, and a later forget left the face on the box."""
    cfg = make_config(tmp_path)
    store = Store(cfg.paths.database, allow_init=True)
    enc = store.add_encoding(store.upsert_student("5a", "s1", "Ada"), np.zeros(128), "upload")
    face, crop = _visitor(store, cfg.paths.unknowns)
    store.mark_assigned(face, enc)
    sync = RosterSync(store, ["5a"], None)
    assert sync.offer("5a", _roster(1, ["s1", "s2"])) is None and sync.apply_staged() == ["5a v1"]
    assert [p.source for p in store.photos("5a", "s1")] == ["hub v1"]  # the encoding it became is gone
    assert store.unknown_face(face).assigned_to == "s1"
    done = erasure.forget_student(cfg, store, "s1", None, remove_rows=False)
    assert done.crops == 1 and not crop.exists() and not crop.parent.exists()
    with pytest.raises(Exception, match="no unknown face"):
        store.unknown_face(face)
    store.close()


def test_schema_8_ties_the_crops_a_schema_7_box_assigned(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    for i, script in enumerate(MIGRATIONS[:7]):
        db.executescript(f"BEGIN; {script}; PRAGMA user_version={i + 1}; COMMIT;")
    db.executescript("""
        INSERT INTO sections VALUES ('5a', '2026-09-01T08:00:00Z');
        INSERT INTO students VALUES (1, '5a', 's1', 'Ada', '2026-09-01T08:00:00Z');
        INSERT INTO encodings (id, student, vector, source, created_at) VALUES (7, 1, zeroblob(512), 'x',
            '2026-09-01T08:00:00Z');
        INSERT INTO sessions (id, name, section, mode, source, status, started_at)
            VALUES ('x1', 'monday', '5a', 'webcam', 'camera:0', 'completed', '2026-09-07T08:00:00Z');
        INSERT INTO unknown_faces (id, session_id, track_id, crop_path, at_s, created_at, assigned_to)
            VALUES (1, 'x1', 1, '/data/unknowns/monday/t.jpg', 1.0, '2026-09-07T08:00:00Z', 7),
                   (2, 'x1', 2, '/data/unknowns/monday/u.jpg', 2.0, '2026-09-07T08:00:00Z', NULL);
    """)
    db.close()
    store = Store(path)
    assert store.schema_version() == len(MIGRATIONS)
    assert [(f.id, f.assigned_to) for f in store.unknown_faces("x1")] == [(1, "s1"), (2, None)]
    store._db.execute("DELETE FROM encodings")  # what a roster would do: the tie holds without the encoding
    erased = store.forget_student("s1", "5a", False, "forgotten-x")
    assert erased.crops == ["/data/unknowns/monday/t.jpg"]
    assert [(d.root, d.path) for d in store.doomed(erased.doomed) if d.root == "unknowns"] == [
        ("unknowns", "/data/unknowns/monday/t.jpg")]
    store.close()


def test_doomed_files_are_recorded_with_the_rows_and_only_when_they_commit(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    store = Store(cfg.paths.database, allow_init=True)
    enc = store.add_encoding(store.upsert_student("5a", "s1", "Ada"), np.zeros(128), "upload")
    store.set_encoding_photo(enc, f"{enc}.jpg")
    photo = cfg.paths.photos / f"{enc}.jpg"
    photo.write_bytes(b"\xff\xd8 Ada")
    with pytest.raises(Exception, match="no student"):  # refused half way: nothing recorded, nothing deleted
        store.remove_student("5a", "nobody")
    assert store.doomed() == []
    doomed = store.remove_student("5a", "s1")
    assert photo.exists() and [(d.root, d.path) for d in store.doomed()] == [("photos", f"{enc}.jpg")]
    store.close()  # "the daemon died" between the commit and the deletion
    store = Store(cfg.paths.database)
    assert [s.deleted for s in sweep(cfg, store)] == [1]  # what the start-up sweep does
    assert not photo.exists() and store.doomed() == [] and store.doomed(doomed) == []
    assert sweep(cfg, store, doomed) == []  # a second sweep finds nothing to do
    store.close()


def test_the_sweep_deletes_nothing_outside_its_directories(tmp_path: Path) -> None:
    """The records come from our own database, and are checked anyway: a path outside its root (a crafted
    crop path, a link out of the directory) deletes nothing, and its record is dropped."""
    cfg = make_config(tmp_path)
    store = Store(cfg.paths.database, allow_init=True)
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    (cfg.paths.photos / "3.jpg").symlink_to(victim)
    _visitor(store, cfg.paths.unknowns)
    store._db.execute("UPDATE unknown_faces SET crop_path=?", (str(victim),))
    store.upsert_student("5a", "s1", "Ada")
    store._db.execute("INSERT INTO encodings (student, vector, source, created_at, photo) "
                      "SELECT id, zeroblob(512), 'x', '', '3.jpg' FROM students")
    store._db.execute("INSERT INTO encodings (student, vector, source, created_at, photo) "
                      "SELECT id, zeroblob(512), 'x', '', '../../precious.txt' FROM students")
    store._db.execute("UPDATE unknown_faces SET assigned_student='s1', assigned_section='5a'")
    done = erasure.forget_student(cfg, store, "s1", None, remove_rows=True)
    assert (done.photos, done.crops) == (0, 0)
    assert victim.read_text() == "keep me" and store.doomed() == []
    store.close()


def test_stored_photos_no_encoding_names_are_deleted_at_start_up(tmp_path: Path) -> None:
    """The daemon died between keeping an uploaded photo and recording it: nothing lists or erases it."""
    cfg = make_config(tmp_path)
    store = Store(cfg.paths.database, allow_init=True)
    enc = store.add_encoding(store.upsert_student("5a", "s1", "Ada"), np.zeros(128), "upload")
    store.set_encoding_photo(enc, f"{enc}.jpg")
    for name in (f"{enc}.jpg", f"{enc + 1}.png", "notes.txt"):
        (cfg.paths.photos / name).write_bytes(b"x")
    assert clear_orphans(cfg.paths.photos, store.photo_names()) == 1
    assert sorted(p.name for p in cfg.paths.photos.iterdir()) == [f"{enc}.jpg", "notes.txt"]
    store.close()
