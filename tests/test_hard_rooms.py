"""Issue 21: recognition in the rooms that are hard, on seeded scenario families (demo/families.py). Short 720p
clips of seeds used neither for tuning (0-9) nor for the report (100-109), rendered once into .cache/scenarios
and shared by the module; the real pipeline with the default config and its encoder child."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from attendance_daemon.demo.families import FAMILIES, HELD_OUT_SEEDS, TUNING_SEEDS, family_params, family_scenario
from attendance_daemon.recognition.encode import Crop
from attendance_daemon.recognition.match import Matcher
from attendance_daemon.recognition.quality import luma, sharpness
from bench.accuracy import Outcome, run_scenario, scenario_video
from tests.conftest import make_config

SEEDS = (200, 201)
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
            for seed in SEEDS:
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
    assert not set(TUNING_SEEDS) & set(HELD_OUT_SEEDS) and not set(SEEDS) & (set(TUNING_SEEDS) | set(HELD_OUT_SEEDS))
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
