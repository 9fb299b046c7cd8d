"""deploy/install.sh --central without a container: the script's own lines (its header and option parsing, then
its bridge step) run in bash as root in a private mount namespace, where a temporary directory is bind-mounted
over /etc/mosquitto/conf.d. The full install runs in tests/system/deploy_container.py, which has no --central
(too slow to add a central broker there)."""

from __future__ import annotations

import grp
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mqtt_fixtures import Broker

REPO = Path(__file__).resolve().parent.parent
INSTALL = REPO / "deploy" / "install.sh"
CONF_D = Path("/etc/mosquitto/conf.d")


def _parts() -> tuple[str, str]:
    """install.sh's header up to the end of its option loop, and its bridge step, as written in the file."""
    text = INSTALL.read_text()
    header = re.search(r"\A.*?\nwhile \[ \$# -gt 0 \]; do\n.*?\ndone\n", text, re.S)
    bridge = re.search(r"\nif \[ \$\{#BRIDGE\[@\]\} -gt 0 \]; then\n.*?\nfi\n", text, re.S)
    assert header and bridge, "install.sh changed shape: update this test's markers"
    assert "BRIDGE+=(--central" in header.group(0) and "attendance-bridge.conf" in bridge.group(0)
    return header.group(0), bridge.group(0)


PASSWORD = "s3cr\"e$t'!`x`"  # quotes, $ and backticks: the script passes it on without a shell re-reading it


def _dir(path: Path) -> Path:
    path.mkdir()
    return path


def _run(conf_d: Path, rel: Path, *args: str) -> subprocess.CompletedProcess[str]:
    header, bridge = _parts()
    script = f'{header}\nV={Path(sys.executable).parent}\nREL={rel}\n{bridge}'
    inner = 'mount --bind "$1" /etc/mosquitto/conf.d && shift && exec bash -c "$0" "$@"'
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c", inner, script,
                           str(conf_d), str(INSTALL), *args],
                          capture_output=True, text=True, timeout=60, check=False, cwd="/")


@pytest.fixture
def can_mount() -> None:
    if os.geteuid() != 0 or not CONF_D.is_dir() or shutil.which("unshare") is None:
        pytest.skip("SKIPPED LOUDLY: needs root, unshare and mosquitto's /etc/mosquitto/conf.d (CI runs as root)")


def test_install_central_renders_and_installs_the_bridge(tmp_path: Path, can_mount: None) -> None:
    central = Broker(_dir(tmp_path / "central"))
    conf_d, rel = tmp_path / "conf.d", tmp_path / "release"
    conf_d.mkdir()
    rel.mkdir()
    ca = tmp_path / "ca.crt"
    ca.write_text("not checked by the renderer\n")
    args = ["--device-id", "room-9", "--central", f"127.0.0.1:{central.port}", "--central-user", "room-9",
            "--central-password", PASSWORD, "--no-try-private"]
    try:
        # a relative --central-cafile becomes absolute (the script runs from the checkout, mosquitto does not)
        proc = _run(conf_d, rel, *args, "--central-cafile", os.path.relpath(ca, REPO))
        assert proc.returncode == 0, proc.stderr
        installed = conf_d / "attendance-bridge.conf"
        st = installed.stat()
        assert (st.st_mode & 0o777, st.st_gid) == (0o640, grp.getgrnam("mosquitto").gr_gid)
        assert not (rel / "attendance-bridge.conf").exists()
        expected = subprocess.run([sys.executable, "-m", "attendance_daemon.mqtt.bridge", "--device-id", "room-9",
                                   "--central", f"127.0.0.1:{central.port}", "--username", "room-9", "--password",
                                   PASSWORD, "--no-try-private", "--cafile", str(ca)],
                                  capture_output=True, text=True, check=True).stdout
        assert installed.read_text() == expected
        assert f"bridge_cafile {ca}" in expected and f"remote_password {PASSWORD}\n" in expected

        # without a CA file (a plain central broker here) the installed file is a working mosquitto bridge
        installed.unlink()
        assert _run(conf_d, rel, *args).returncode == 0
        box = Broker(_dir(tmp_path / "box"), extra=installed.read_text())
        try:
            with central.client("room-9") as seen:  # mosquitto's notification of the connected bridge
                seen.wait_for("bridge", lambda v: v == 1, timeout=30)
        finally:
            box.stop()

        # no --central: nothing written; a mistyped option and a value that would inject config lines fail
        installed.unlink()
        assert _run(conf_d, rel, "--device-id", "room-9").returncode == 0 and not installed.exists()
        typo = _run(conf_d, rel, "--device-id", "room-9", "--central-pasword", "x")
        assert typo.returncode == 2 and "unknown option: --central-pasword" in typo.stderr
        bad = _run(conf_d, rel, "--device-id", "room-9", "--central", f"127.0.0.1:{central.port}",
                   "--central-password", "x\naddress evil:1883")
        assert bad.returncode != 0 and "password" in bad.stderr and not installed.exists()
    finally:
        central.stop()
