from pathlib import Path
from typing import Any

import cv2
import numpy as np

from attendance_daemon.roster.enrollment import Enroller, bulk_folders, parse_student_folder
from attendance_daemon.store import Store


def test_enroll_accepts_one_face_and_rejects_with_reasons(tmp_path: Path, people: list[Any]) -> None:
    store = Store(tmp_path / "a.sqlite3")
    enroller = Enroller(store)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image")
    group = people[3].enroll.parent.parent / "group.jpg"  # the six-person photo
    by = {p.key: p for p in people}
    out = enroller.enroll("cs", "S1", "Barack Obama", [by["obama"].enroll, blank, junk, group,
                                                       tmp_path / "missing.jpg"])
    assert out.encodings_added == 1
    reasons = {Path(r["image"]).name: r["reason"] for r in out.rejected}
    assert reasons == {
        "blank.png": "no face found",
        "junk.jpg": "not a readable image",
        "group.jpg": "6 faces found; an enrollment image must show exactly one",
        "missing.jpg": "file not found",
    }
    assert store.students("cs")[0].encodings == 1


def test_near_duplicate_student_warns(tmp_path: Path, people: list[Any]) -> None:
    store = Store(tmp_path / "a.sqlite3")
    enroller = Enroller(store)
    by = {p.key: p for p in people}
    assert enroller.enroll("cs", "S1", "Obama", [by["obama"].enroll]).warnings == []
    twin = enroller.enroll("cs", "S9", "Obama again", [by["obama"].appear])
    assert twin.encodings_added == 1
    assert len(twin.warnings) == 1 and "S1" in twin.warnings[0]
    other = enroller.enroll("cs", "S2", "Biden", [by["biden"].enroll])
    assert other.warnings == []


def test_bulk_folder_layout(tmp_path: Path) -> None:
    (tmp_path / "cs101" / "S001__Ada_Lovelace").mkdir(parents=True)
    (tmp_path / "cs101" / "S001__Ada_Lovelace" / "a.JPG").write_bytes(b"")
    (tmp_path / "cs101" / "badname").mkdir()
    jobs = bulk_folders(tmp_path)
    assert [(s, i, n, [p.name for p in imgs]) for s, i, n, imgs in jobs] == [
        ("cs101", "S001", "Ada Lovelace", ["a.JPG"])
    ]
    assert parse_student_folder(Path("S_1__A")) == ("S_1", "A")
    assert parse_student_folder(Path("__A")) is None
