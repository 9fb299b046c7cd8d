"""Recognition goals on a small, fast subset of bench.accuracy's scenarios (real faces, H.264 from ffmpeg, the
real pipeline with the default config and its encoder child). The whole table is a benchmark, not a test."""

from __future__ import annotations

from typing import Any

import pytest

from attendance_daemon.demo.scenarios import Scenario, scenario_set
from bench.accuracy import Outcome, run_scenario, scenario_video
from tests.conftest import make_config


@pytest.fixture(scope="module")
def outcomes(people: list[Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Scenario, Outcome]]:
    from attendance_daemon.sessions.runtime import Runtime
    from attendance_daemon.store import Store
    from bench.accuracy import enrollment_vectors

    cfg = make_config(tmp_path_factory.mktemp("scenarios"), encoder_process=True)  # as the daemon runs
    rt = Runtime(cfg, Store(cfg.paths.database))
    try:
        vectors = enrollment_vectors(people, rt)
        key = ",".join(p.key for p in people)
        out = {}
        for sc in scenario_set(people, full=False):
            out[sc.name] = (sc, run_scenario(rt, sc, scenario_video(sc, key), vectors))
    finally:
        rt.close()
    return out


def test_quick_set_is_the_documented_subset(outcomes: dict[str, tuple[Scenario, Outcome]]) -> None:
    assert set(outcomes) == {"1080p 40px", "480p 30px", "1080p 80px dim 0.45x + noise", "720p glimpse of 1.5 s",
                             "720p look-alike"}


def test_no_false_presents_anywhere(outcomes: dict[str, tuple[Scenario, Outcome]]) -> None:
    for _, out in outcomes.values():
        assert out.false_present == [], out


def test_small_faces_in_1080p_are_found(outcomes: dict[str, tuple[Scenario, Outcome]]) -> None:
    out = outcomes["1080p 40px"][1]
    assert out.recall >= 0.95, out  # 40 px faces in a 1920x1080 frame: 8/8
    assert abs(out.unknowns_counted - out.unknowns_expected) <= 1, out


def test_30px_faces_in_480p(outcomes: dict[str, tuple[Scenario, Outcome]]) -> None:
    out = outcomes["480p 30px"][1]
    assert out.recall >= 0.8, out


def test_dim_noisy_room(outcomes: dict[str, tuple[Scenario, Outcome]]) -> None:
    out = outcomes["1080p 80px dim 0.45x + noise"][1]
    assert out.recall >= 0.9, out


def test_a_glimpse_is_not_presence(outcomes: dict[str, tuple[Scenario, Outcome]]) -> None:
    sc, out = outcomes["720p glimpse of 1.5 s"]
    passer_by = sc.seats[3].person
    assert passer_by in sc.enrolled and out.expected == 7
    assert out.found == out.expected, out  # everyone else is found, the passer-by is not a false present


def test_a_look_alike_is_not_the_student(outcomes: dict[str, tuple[Scenario, Outcome]]) -> None:
    sc, out = outcomes["720p look-alike"]
    assert "Edsger Dijkstra" in {p.name for p in sc.enrolled} and out.false_present == []
    assert out.found == out.expected, out
    assert abs(out.unknowns_counted - out.unknowns_expected) <= 1, out
