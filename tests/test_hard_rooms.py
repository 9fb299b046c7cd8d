"""Issue 21: recognition in the rooms that are hard, on seeded scenario families (demo/families.py). Short 720p
clips of seeds used neither for tuning (0-9) nor for the report (100-109), rendered once into .cache/scenarios
and shared by the module; the real pipeline with the default config and its encoder child. The dim clips add a
very dark, very noisy room (203: 0.16x light, 3.9x gain, the kind the noisy-room fusion is for; the pipeline
before it found 3 of 8 there) to the two seeds of every family."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from attendance_daemon.config import RecognitionConfig
from attendance_daemon.demo.families import FAMILIES, HELD_OUT_SEEDS, TUNING_SEEDS, family_params, family_scenario
from attendance_daemon.recognition.encode import Crop, encode_crops
from attendance_daemon.recognition.match import Matcher
from attendance_daemon.recognition.quality import luma, noise, sharpness
from bench.accuracy import Outcome, run_scenario, scenario_video
from tests.conftest import make_config

SEEDS = (200, 201)
FAMILY_SEEDS = {"dim": (200, 201, 203)}
TARGETS = {"dim": 0.9, "occlusion": 0.75, "crf": 0.9}  # recall of present students over the family's clips


@pytest.fixture(scope="module")
def family_outcomes(people: list[Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Outcome]]:
    from attendance_daemon.sessions.runtime import Runtime
    from attendance_daemon.store import Store
    from bench.accuracy import enrollment_vectors

    cfg = make_config(tmp_path_factory.mktemp("families"), encoder_process=True)  # as the daemon runs
    rt = Runtime(cfg, Store(cfg.paths.database))
    try:
        vectors = enrollment_vectors(people, rt)
        key = ",".join(p.key for p in people)
        out: dict[str, list[Outcome]] = {}
        for kind in TARGETS:
            for seed in FAMILY_SEEDS.get(kind, SEEDS):
                sc = family_scenario(people, kind, seed, res="720p", duration_s=6.0)
                out.setdefault(kind, []).append(run_scenario(rt, sc, scenario_video(sc, key), vectors))
    finally:
        rt.close()
    return out


@pytest.mark.parametrize("kind", sorted(TARGETS))
def test_family_recall_meets_the_target(family_outcomes: dict[str, list[Outcome]], kind: str) -> None:
    outs = family_outcomes[kind]
    found, expected = sum(o.found for o in outs), sum(o.expected for o in outs)
    assert found / expected >= TARGETS[kind], outs


def test_no_false_presents_in_the_hard_rooms(family_outcomes: dict[str, list[Outcome]]) -> None:
    for outs in family_outcomes.values():
        for o in outs:
            assert o.false_present == [], o


def test_families_are_drawn_from_the_seed() -> None:
    used = set(SEEDS).union(*FAMILY_SEEDS.values())
    assert not set(TUNING_SEEDS) & set(HELD_OUT_SEEDS) and not used & (set(TUNING_SEEDS) | set(HELD_OUT_SEEDS))
    for kind in FAMILIES:
        assert family_params(kind, 3) == family_params(kind, 3) != family_params(kind, 4)
    dim = [family_params("dim", s) for s in range(20)]
    assert all(0.15 <= p.exposure <= 0.5 and p.read_noise and p.shot_noise and p.chroma_noise for p in dim)
    assert all(38 <= family_params("crf", s).crf <= 42 for s in range(20))


def test_sharpness_and_luma_rank_views() -> None:
    rng = np.random.default_rng(0)
    face = cv2.resize(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), (80, 80), interpolation=cv2.INTER_CUBIC)
    sharp = Crop(face, (0, 80, 80, 0))
    blurred = Crop(cv2.blur(face, (9, 1)), (0, 80, 80, 0))
    assert sharpness(blurred) < 0.6 * sharpness(sharp)
    assert luma(Crop((face * 0.3).astype(np.uint8), (0, 80, 80, 0))) < 0.4 * luma(sharp)


def test_matches_report_the_runner_up() -> None:
    enc = np.eye(3, 128, dtype=np.float32)
    m = Matcher(enc, np.arange(3), 3, 0.5).match_many(enc[:1] * 0.9)[0]
    assert m.student == 0 and m.distance == pytest.approx(0.1) and m.runner_up == pytest.approx(np.hypot(0.9, 1))


def test_noise_tells_a_gained_up_room_from_a_lit_one() -> None:
    rng = np.random.default_rng(1)
    lit = cv2.GaussianBlur(rng.integers(0, 255, (90, 160, 3), dtype=np.uint8), (0, 0), 3)
    lit = cv2.resize(lit, (1280, 720), interpolation=cv2.INTER_CUBIC)  # shading and edges, no pixel noise
    noisy = np.clip(lit + rng.normal(0, 12, lit.shape), 0, 255).astype(np.uint8)
    fuse_noise = RecognitionConfig().fuse_noise
    assert noise(lit) < 2 < fuse_noise < 8 < noise(noisy)


def test_fused_views_of_a_noisy_face_encode_closer_to_it(people: list[Any]) -> None:
    """Six noisy views of one face, fused (aligned chips averaged), land nearer its clean encoding than one view."""
    bgr = cv2.imread(str(people[0].enroll))
    assert bgr is not None
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    scale = 200 / rgb.shape[1]
    rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    import dlib

    found = dlib.get_frontal_face_detector()(rgb, 1)[0]
    face = (found.top(), found.right(), found.bottom(), found.left())
    clean = encode_crops([Crop(rgb, face)])[0]
    rng = np.random.default_rng(2)
    views = [Crop(np.clip(rgb + rng.normal(0, 40, rgb.shape), 0, 255).astype(np.uint8), face) for _ in range(6)]
    single = [float(np.linalg.norm(e - clean)) for e in encode_crops(views[:3])]
    fused = float(np.linalg.norm(encode_crops([Crop(views[-1].rgb, face, tuple(views[:-1]))])[0] - clean))
    assert fused < min(single), (fused, single)
