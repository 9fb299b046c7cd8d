from itertools import pairwise

import numpy as np
import pytest

from attendance_daemon.attendance.presence import UNKNOWN, AttendanceBook, Presence, Votes
from attendance_daemon.recognition.boxes import Box, iou_matrix, nms
from attendance_daemon.recognition.detect import ScanPlan
from attendance_daemon.recognition.match import Match, Matcher
from attendance_daemon.recognition.track import IouTracker
from attendance_daemon.store import StudentRow


def test_iou_and_nms() -> None:
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], float)
    m = iou_matrix(a, b)
    assert m[0, 0] == pytest.approx(1.0)
    assert m[0, 1] == pytest.approx(50 / 150)
    assert m[1].tolist() == [0.0, 0.0]
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    assert nms(boxes, np.array([0.9, 0.8, 0.7]), 0.3) == [0, 2]


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (1280, 720), (854, 480), (640, 480), (480, 1000)])
def test_scan_plan_sizes_tiles_from_the_frame(width: int, height: int) -> None:
    plan = ScanPlan.for_frame(width, height, smallest_face_px=28)
    # the smallest target face lands at >= 18 px of the 192 px model input, whatever the resolution
    assert plan.scales[0] * 28 >= 18 - 1e-6 or plan.scales[0] == 1.0
    # each level is covered by its tiles, neighbours overlapping by >= 48 px (a face up to 48 px fits one tile)
    for level, (w, h) in enumerate(plan.sizes):
        tiles = [t for t in plan.tiles if t.level == level]
        xs, ys = sorted({t.x for t in tiles}), sorted({t.y for t in tiles})
        assert xs[0] == 0 and ys[0] == 0
        assert xs[-1] + 192 >= w and ys[-1] + 192 >= h
        assert all(b - a <= 192 - 48 for a, b in pairwise(xs))
        assert all(b - a <= 192 - 48 for a, b in pairwise(ys))
    # the levels' face ranges join up: each is at most 48/18 times smaller than the one before
    assert all(a / b <= 48 / 18 + 1e-6 for a, b in pairwise(plan.scales))
    assert max(plan.sizes[-1]) <= 192  # the last level sees the whole frame at once


def test_tracker_keeps_ids_and_expires() -> None:
    tr = IouTracker(0.3, max_age_s=0.5)
    seen, _ = tr.update([Box(0, 0, 10, 10), Box(100, 0, 110, 10)], 0.0)
    ids = {t.id for t in seen}
    seen, _ = tr.update([Box(102, 1, 112, 11), Box(1, 0, 11, 10)], 0.2)
    assert {t.id for t in seen} == ids
    seen, expired = tr.update([Box(1, 0, 11, 10)], 1.0)
    assert len(seen) == 1 and len(expired) == 1
    assert expired[0].observed == [0.0, 0.2]


def test_tracker_continues_a_face_that_moved_within_its_width() -> None:
    tr = IouTracker(0.3, max_age_s=3.0)
    (first,), _ = tr.update([Box(100, 100, 140, 140)], 0.0)
    (moved,), _ = tr.update([Box(125, 105, 165, 145)], 1.0)  # IoU 0.27: no overlap match, but the same seat
    assert moved.id == first.id and moved.observed == [0.0, 1.0]
    (other,), _ = tr.update([Box(400, 100, 440, 140)], 1.2)  # somewhere else: a new face
    assert other.id != first.id
    (big,), _ = tr.update([Box(120, 100, 220, 200)], 1.4)  # same place, 2.5x the size: not the same face
    assert big.id not in (first.id, other.id)


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
    v.add(1, needed=2, ratio=0.7, unknown_needed=3)
    assert v.identity is None  # one vote is not enough
    v.add(2, needed=2, ratio=0.7, unknown_needed=3)
    v.add(1, needed=2, ratio=0.7, unknown_needed=3)
    assert v.identity is None  # 2 of 3 = 0.67 < 0.7
    v.add(None, needed=2, ratio=0.7, unknown_needed=3)  # an abstention changes nothing
    v.add(1, needed=2, ratio=0.7, unknown_needed=3)
    assert v.identity == 1  # 3 of 4 = 0.75
    u = Votes()
    u.add(UNKNOWN, 2, 0.6, 3)
    u.add(UNKNOWN, 2, 0.6, 3)
    assert not u.unknown  # a visitor needs three unmatched views
    u.add(UNKNOWN, 2, 0.6, 3)
    assert u.unknown and u.identity is None


def _book(**kw: float) -> AttendanceBook:
    roster = [StudentRow(1, "s", "A", "Ada", 1), StudentRow(2, "s", "B", "Bob", 1)]
    return AttendanceBook(roster, 0.2, 2.0, 2, 0.6, 3.0, **kw)  # type: ignore[arg-type]


def test_unknown_needs_clear_far_views_and_a_student_is_never_a_visitor_by_near_misses() -> None:
    book = _book(unknown_votes=3, unknown_distance=0.6)
    for _ in range(5):  # small or blurred faces that match nobody: no vote either way
        book.vote(1, Match(None, 0.9), [0.0], clear_view=False)
    assert not book.is_unknown(1) and book.identity(1) is None
    for _ in range(5):  # clear views just outside the tolerance: a student on a bad day, not a visitor
        book.vote(2, Match(None, 0.55), [0.0], clear_view=True)
    assert not book.is_unknown(2)
    for _ in range(3):
        book.vote(3, Match(None, 0.8), [0.0], clear_view=True)
    assert book.is_unknown(3)
    for _ in range(5):  # ... and a later majority for a student overturns it
        book.vote(3, Match(1, 0.3), [1.0], clear_view=True)
    assert book.identity(3) == 1 and not book.is_unknown(3)


def test_a_student_seen_again_is_confirmed_by_one_encoding() -> None:
    book = _book()
    book.vote(1, Match(0, 0.3), [0.0])
    assert book.identity(1) is None
    book.vote(1, Match(0, 0.3), [0.2])
    assert book.identity(1) == 0
    book.forget(1)
    assert book.vote(7, Match(0, 0.35), [5.0]) == 0  # the tracker lost Ada; her new track needs one vote
    assert book.vote(8, Match(1, 0.35), [5.0]) is None  # Bob was never confirmed: two votes as usual


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


def test_track_mean_confirms_unless_its_votes_favour_someone_else() -> None:
    book = _book()
    book.vote(1, Match(None, 0.55), [0.0])  # compressed views, each just outside the tolerance
    book.vote(1, Match(None, 0.56), [0.2])
    assert book.confirm_by_mean(1, Match(0, 0.45), [0.0, 0.2]) == 0
    assert book.presence[0].seen_s > 0
    book.vote(2, Match(1, 0.45), [0.0])
    assert book.confirm_by_mean(2, Match(0, 0.48), [0.0]) is None  # its own vote says Bob: the mean does not win
