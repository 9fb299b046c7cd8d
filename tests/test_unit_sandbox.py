"""The unit's sandbox and stop behaviour as written (tests/system/deploy_container.py checks them live), and
install.sh's config helper, which keeps the configured MQTT identity across re-installs."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "attendance-daemon.service"


def _service() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def _size(value: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(value[:-1]) * units[value[-1]]) if value[-1] in units else int(value)


def test_stop_goes_to_the_main_process_and_memory_is_capped_for_a_2gb_pi() -> None:
    svc = _service()
    assert svc["KillMode"] == ["mixed"] and svc["KillSignal"] == ["SIGTERM"]
    assert 512 << 20 <= _size(svc["MemoryMax"][0]) <= 1280 << 20
    assert _size(svc["MemoryHigh"][0]) < _size(svc["MemoryMax"][0])


def test_sandbox_settings() -> None:
    svc = _service()
    assert svc["CapabilityBoundingSet"] == [""] and svc["SystemCallArchitectures"] == ["native"]
    assert "@system-service" in svc["SystemCallFilter"]
    for key in ["ProtectClock", "ProtectKernelLogs", "ProtectHostname", "RestrictSUIDSGID", "RestrictRealtime",
                "NoNewPrivileges", "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups"]:
        assert svc[key] == ["yes"], key
    assert svc["UMask"] == ["0027"] and svc["ProtectProc"] == ["invisible"]
    assert "ProcSubset" not in svc  # ProcSubset=pid hides /proc/cpuinfo from TFLite
    assert "PrivateDevices" not in svc  # it would hide /dev/video*
    if svc.get("DevicePolicy", ["auto"]) != ["auto"]:
        assert any("video4linux" in v for v in svc.get("DeviceAllow", []))


def _helper() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mqtt_config", REPO / "deploy" / "mqtt_config.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_install_config_helper_sets_and_reads_mqtt_keys(tmp_path: Path) -> None:
    conf = tmp_path / "config.toml"
    template = (REPO / "config" / "attendance-daemon.toml").read_text()
    conf.write_text(template)
    helper = _helper()
    assert helper.get(conf, "password") == ""
    helper.set_key(conf, "device_id", "room-7")
    helper.set_key(conf, "password", 'p"w\\x')
    helper.set_key(conf, "password", "second")  # replaces, never duplicates
    data = tomllib.loads(conf.read_text())
    assert data["mqtt"]["device_id"] == "room-7" and data["mqtt"]["password"] == "second"
    assert conf.read_text().count("password =") == 1 and "host = " in conf.read_text()
    out = subprocess.run([sys.executable, str(REPO / "deploy" / "mqtt_config.py"), "get", str(conf), "password"],
                         check=True, capture_output=True, text=True).stdout
    assert out.strip() == "second"
    bare = tmp_path / "bare.toml"
    bare.write_text('[paths]\ndata_dir = "/x"\n')
    helper.set_key(bare, "username", "u1")
    assert tomllib.loads(bare.read_text()) == {"paths": {"data_dir": "/x"}, "mqtt": {"username": "u1"}}
