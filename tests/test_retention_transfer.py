"""Retention's plan and its I/O edge on a real data directory and SQLite file; the transfer rules."""

from __future__ import annotations

import base64
import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from attendance_daemon.cli.remote_files import content_bytes
from attendance_daemon.common.errors import InvalidRequest, NotFound, PayloadTooLarge
from attendance_daemon.media.transfer import MAX_INLINE_BYTES, decode_image, outgoing
from attendance_daemon.privacy.retention import DAY_S, Found, RetentionTimer, clean, expired
from attendance_daemon.store import SessionRow, Store
from tests.conftest import make_config


def test_expired_is_a_pure_plan() -> None:
    now = 1_000_000_000.0
    files = [Found("reports", Path("old"), now - 8 * DAY_S), Found("frames", Path("new"), now - 6 * DAY_S)]
    assert [f.path.name for f in expired(files, now, 7)] == ["old"]
    assert expired(files, now, 0) == []  # 0 keeps forever
    assert [f.path.name for f in expired(files, now, 5)] == ["old", "new"]


def test_timer_is_due_at_start_then_daily() -> None:
    timer = RetentionTimer()
    assert timer.due(100.0) and not timer.due(100.0 + DAY_S - 1) and timer.due(100.0 + DAY_S)


def _old(path: Path, days: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    t = time.time() - days * DAY_S
    os.utime(path, (t, t))
    return path


def test_clean_deletes_expired_evidence_and_its_rows(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    cfg.retention.days = 30
    store = Store(cfg.paths.database, allow_init=True)
    store.create_session(SessionRow(id="s1", name="old", section="demo", mode="mp4", source="a.mp4", export=True,
                                    status="completed", started_at="2026-01-01T00:00:00Z"))
    crop = _old(cfg.paths.unknowns / "old" / "track-1.jpg", 40)
    fresh_crop = _old(cfg.paths.unknowns / "old" / "track-2.jpg", 1)
    store.add_unknown("s1", 1, str(crop), 1.0, np.ones(128, np.float32))
    store.add_unknown("s1", 2, str(fresh_crop), 2.0, np.ones(128, np.float32))
    export = _old(cfg.paths.exports / "old.mp4", 31)
    store.update_session("s1", export_path=str(export))
    report, frame = _old(cfg.paths.reports / "old.csv", 100), _old(cfg.paths.frames / "s1.jpg", 45)
    keep = _old(cfg.paths.reports / "new.csv", 29)
    photo = _old(cfg.paths.photos / "1.jpg", 400)  # enrollment photos are the roster: never expire

    counts = clean(cfg, store)
    assert dict(counts) == {"unknowns": 1, "exports": 1, "reports": 1, "frames": 1}
    assert not any(p.exists() for p in (crop, export, report, frame))
    assert keep.exists() and fresh_crop.exists() and photo.exists()
    kept = {u.track_id: u.vector for u in store.unknown_faces("s1")}
    assert kept[1] is None and kept[2] is not None  # the row stays (counts hold), the encoding goes
    assert store.get_session("s1").export_path is None
    cfg.retention.days = 0
    _old(cfg.paths.reports / "ancient.csv", 10_000)
    assert clean(cfg, store) == {}


def _png(width: int, height: int, fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    Image.new("RGB", (width, height)).save(buf, fmt)
    return base64.b64encode(buf.getvalue()).decode()


def test_decode_image_checks_before_decoding() -> None:
    raw, suffix = decode_image(_png(20, 10), "f", 1000)
    assert suffix == ".png" and raw[:4] == b"\x89PNG"
    assert decode_image(_png(20, 10, "JPEG"), "f", 1000)[1] == ".jpg"
    for data, error in ((_png(40, 30), "f: image is 40x30"), (_png(4, 4, "BMP"), "f: a BMP image"),
                        ("!!", "f: not valid base64"), ("A" * 7_000_000, "f: more than 5242880 bytes")):
        with pytest.raises(InvalidRequest, match=error):
            decode_image(data, "f", 1000)


def test_outgoing_files(tmp_path: Path) -> None:
    csv = tmp_path / "r.csv"
    csv.write_bytes("\ufeffstudent_id,name\nS1,Zoë\n".encode())
    answer = outgoing(csv, "report")
    assert answer.encoding == "utf-8" and answer.content.endswith("Zoë\n")
    fields = {"content": answer.content, "encoding": answer.encoding, "bytes": answer.bytes, "sha256": answer.sha256}
    assert content_bytes(fields) == csv.read_bytes()
    with pytest.raises(ValueError, match="sha256"):
        content_bytes({**fields, "content": answer.content + "x"})
    big = tmp_path / "big.pdf"
    with big.open("wb") as f:
        f.truncate(MAX_INLINE_BYTES + 1)
    with pytest.raises(PayloadTooLarge):
        outgoing(big, "report")
    with pytest.raises(NotFound):
        outgoing(tmp_path / "gone.jpg", "face_id")
