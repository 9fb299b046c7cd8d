"""Install where the boxes are: every runtime package, at the version this checkout installed, exists as a wheel
for Linux aarch64 (Raspberry Pi OS 64-bit, Jetson) on each supported Python, so a box never compiles (no dlib
build: `dlib-bin` ships it). Asked of PyPI with `pip download --only-binary=:all: --platform ... --python-version`;
needs the network, and fails (does not skip) without it. pip's cache makes a second run quick.

What is not a wheel is named exactly (SDIST_ONLY): pure Python, installed from its sdist with no compiler."""

from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

REPO = Path(__file__).resolve().parent.parent
# setup.py's python_requires is >= 3.11: Raspberry Pi OS bookworm has 3.11, trixie 3.13, Ubuntu 24.04 3.12.
PYTHONS = ("3.11", "3.12", "3.13")
# Ubuntu 22.04 (JetPack 6) has glibc 2.35, Raspberry Pi OS bookworm 2.36: wheels up to manylinux_2_35 install on both.
GLIBC_MAX = 35
PLATFORMS = ["manylinux2014_aarch64", *(f"manylinux_2_{minor}_aarch64" for minor in range(17, GLIBC_MAX + 1))]
SDIST_ONLY = {"sdnotify"}  # systemd notify protocol in ~100 lines of Python; docs/install.md's board notes name it


def _requirement_names(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line).name for line in lines if line]


def runtime_pins() -> dict[str, str]:
    """name -> installed version of requirements.txt and its dependencies (markers as on this Python) and of
    requirements-nodeps.txt (installed without dependencies, so without theirs)."""
    pins: dict[str, str] = {}

    def visit(name: str, deps: bool) -> None:
        key = canonicalize_name(name)
        if key in pins:
            return
        dist = md.distribution(name)
        pins[key] = dist.version
        for text in (dist.requires or []) if deps else []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                visit(req.name, True)

    for name in _requirement_names(REPO / "requirements.txt"):
        visit(name, True)
    for name in _requirement_names(REPO / "requirements-nodeps.txt"):
        visit(name, False)
    return pins


def pip_download(dest: Path, specs: list[str], *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                           "-d", str(dest), *options, *specs], capture_output=True, text=True, timeout=900,
                          check=False)


def aarch64_options(python: str) -> list[str]:
    opts = ["--only-binary=:all:", "--implementation", "cp", "--python-version", python]
    for platform in PLATFORMS:
        opts += ["--platform", platform]
    return opts


def test_runtime_pins_are_what_the_requirements_name() -> None:
    pins = runtime_pins()
    assert {"dlib-bin", "ai-edge-litert", "opencv-python-headless", "numpy", "face-recognition", "cryptography",
            "cffi"} <= set(pins)
    assert "dlib" not in pins  # face_recognition's dlib comes from the dlib-bin wheel (installed --no-deps)
    assert set(pins) >= SDIST_ONLY


@pytest.mark.parametrize("python", PYTHONS)
def test_every_runtime_wheel_exists_for_aarch64(python: str, tmp_path: Path) -> None:
    pins = runtime_pins()
    specs = [f"{name}=={version}" for name, version in sorted(pins.items()) if name not in SDIST_ONLY]
    proc = pip_download(tmp_path, specs, *aarch64_options(python))
    assert proc.returncode == 0, f"a pinned package has no aarch64 wheel for Python {python}:\n{proc.stderr[-3000:]}"
    got: dict[str, str] = {}
    for wheel in tmp_path.glob("*.whl"):
        dist, version, _, tags = parse_wheel_filename(wheel.name)
        assert all(t.platform == "any" or t.platform.endswith("_aarch64") for t in tags), wheel.name
        got[canonicalize_name(dist)] = str(version)
    assert got == {n: v for n, v in pins.items() if n not in SDIST_ONLY}
    for name in SDIST_ONLY:  # the exception list is exact: a wheel appearing upstream fails here, to shorten it
        none = pip_download(tmp_path / "sdist-only", [f"{name}=={pins[name]}"], *aarch64_options(python))
        assert none.returncode != 0, f"{name} now has an aarch64 wheel: remove it from SDIST_ONLY and docs/install.md"


def test_sdist_only_packages_are_pure_python_and_named_in_the_install_doc(tmp_path: Path) -> None:
    pins = runtime_pins()
    install = (REPO / "docs" / "install.md").read_text(encoding="utf-8")
    board_notes = install.split("## Install on a Raspberry Pi or Jetson", 1)[1].split("\n## ", 1)[0]
    for name in SDIST_ONLY:
        proc = pip_download(tmp_path, [f"{name}=={pins[name]}"], "--no-binary=:all:")
        assert proc.returncode == 0, proc.stderr[-2000:]
        [sdist] = tmp_path.glob(f"{name}-*.tar.gz")
        with tarfile.open(sdist) as tar:
            sources = [m.name for m in tar.getmembers() if re.search(r"\.(c|cc|cpp|pyx|rs|f90)$", m.name)]
        assert sources == [], f"{name} compiles native code: the board notes must name its build dependencies"
        assert f"`{name}`" in board_notes
