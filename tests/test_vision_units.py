import numpy as np
import pytest

from attendance_daemon.attendance import AttendanceBook, Presence, Votes
from attendance_daemon.store import StudentRow
from attendance_daemon.vision.boxes import Box, iou_matrix, nms
from attendance_daemon.vision.detect import square_tiles
from attendance_daemon.vision.match import Match, Matcher
from attendance_daemon.vision.track import IouTracker


def test_iou_and_nms() -> None:
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], float)
    m = iou_matrix(a, b)
    assert m[0, 0] == pytest.approx(1.0)
    assert m[0, 1] == pytest.approx(50 / 150)
    assert m[1].tolist() == [0.0, 0.0]
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    assert nms(boxes, np.array([0.9, 0.8, 0.7]), 0.3) == [0, 2]


def test_square_tiles_cover_frame_with_overlap() -> None:
    tiles = square_tiles(1280, 720)
    assert tiles == [(0, 0, 720), (560, 0, 720)]
    assert square_tiles(720, 720) == [(0, 0, 720)]
    portrait = square_tiles(480, 1000)
    assert portrait[0] == (0, 0, 480) and portrait[-1][1] + 480 == 1000


def test_tracker_keeps_ids_and_expires() -> None:
    tr = IouTracker(0.3, max_age_s=0.5)
    seen, _ = tr.update([Box(0, 0, 10, 10), Box(100, 0, 110, 10)], 0.0)
    ids = {t.id for t in seen}
    seen, _ = tr.update([Box(102, 1, 112, 11), Box(1, 0, 11, 10)], 0.2)
    assert {t.id for t in seen} == ids
    seen, expired = tr.update([Box(1, 0, 11, 10)], 1.0)
    assert len(seen) == 1 and len(expired) == 1
    assert expired[0].observed == [0.0, 0.2]


def test_matcher_agrees_with_brute_force() -> None:
    rng = np.random.default_rng(1)
    enc = rng.normal(size=(7, 128)).astype(np.float32)
    owners = np.array([0, 0, 1, 2, 2, 2, 3])
    queries = np.concatenate([enc[[1, 4]] + 0.01, rng.normal(size=(1, 128))]).astype(np.float32)
    result = Matcher(enc, owners, 4, tolerance=0.5).match_many(queries)
    assert [m.student for m in result] == [0, 2, None]
    for q, m in zip(queries, result, strict=True):
        brute = min(np.linalg.norm(q - e) for e in enc)
        assert m.distance == pytest.approx(brute, rel=1e-5)
    assert Matcher(enc[:0], owners[:0], 0, 0.5).match_many(queries)[0].student is None


def test_votes_need_a_majority() -> None:
    v = Votes()
    v.add(Match(1, 0.3), needed=2, ratio=0.7)
    assert v.identity is None  # one vote is not enough
    v.add(Match(2, 0.3), needed=2, ratio=0.7)
    v.add(Match(1, 0.3), needed=2, ratio=0.7)
    assert v.identity is None  # 2 of 3 = 0.67 < 0.7
    v.add(Match(1, 0.3), needed=2, ratio=0.7)
    assert v.identity == 1  # 3 of 4 = 0.75
    u = Votes()
    u.add(Match(None, 0.9), 2, 0.6)
    u.add(Match(None, 0.8), 2, 0.6)
    assert u.unknown and u.identity is None


def test_presence_merges_gaps() -> None:
    p = Presence(step_s=0.2, gap_s=1.0)
    for t in (0.0, 0.2, 0.4, 1.2, 5.0, 5.2):
        p.add(t)
    assert p.intervals == [[0.0, 1.4], [5.0, pytest.approx(5.4)]]
    assert p.seen_s == pytest.approx(1.8)
    assert p.first_s == 0.0 and p.last_s == pytest.approx(5.2)
    late = Presence(step_s=0.2, gap_s=1.0)  # a track confirmed late adds its earlier frames out of order
    for t in (5.0, 0.0, 0.2, 4.5):
        late.add(t)
    assert late.intervals == [[0.0, pytest.approx(0.4)], [4.5, pytest.approx(5.2)]]


def test_book_counts_track_history_once_confirmed() -> None:
    roster = [StudentRow(1, "cs", "S1", "Ada", 1)]
    book = AttendanceBook(roster, step_s=1.0, gap_s=0.0, votes_to_confirm=2, vote_ratio=0.6, min_presence_s=3.0)
    book.vote(7, Match(0, 0.2), [0.0])
    assert book.present_indices() == []
    book.vote(7, Match(0, 0.2), [0.0, 1.0, 2.0])
    assert book.present_indices() == [0]
    assert book.newly_present() == [0] and book.newly_present() == []
    row = book.rows()[0]
    assert (row.student_id, row.seen_s, row.first_seen_s, row.last_seen_s) == ("S1", 3.0, 0.0, 2.0)
