"""`attendance-daemon check`: what an installer runs to see that the box is ready, one line per part."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..config import Config
from ..store import Store


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str


def _data_dir(cfg: Config) -> str:
    cfg.ensure_dirs()
    with tempfile.NamedTemporaryFile(dir=cfg.paths.data_dir):
        pass
    return f"{cfg.paths.data_dir} writable"


def _database(cfg: Config) -> str:
    store = Store(cfg.paths.database)
    try:
        sections = store.sections()
        summary = ", ".join(f"{s} ({n})" for s, n in sections) or "no sections enrolled yet"
        return f"schema v{store.schema_version()}; {summary}"
    finally:
        store.close()


def _detector(cfg: Config) -> str:
    from ..sessions.runtime import configured_detector

    det = configured_detector(cfg)
    det.detect(np.zeros((480, 640, 3), np.uint8))
    fallback = " (fallback: the TFLite runtime is missing)" if det.name != cfg.recognition.detector else ""
    return f"{det.name}{fallback}"


def _encoder(cfg: Config) -> str:
    from ..recognition.encode import Encoder

    Encoder()
    return "dlib face encoder loaded"


def _camera(cfg: Config) -> str:
    from ..sessions.cameras import default_camera
    from ..sessions.sources import CameraSource

    choice = default_camera(cfg)
    cam = CameraSource(choice, cfg.recognition.analysis_fps, retry_s=0)
    try:
        frame = next(cam.frames())
        return f"camera '{choice.label}' delivers {frame.bgr.shape[1]}x{frame.bgr.shape[0]}"
    finally:
        cam.close()


def _broker(cfg: Config) -> str:
    from ..mqtt.link import make_client

    m = cfg.mqtt
    done = threading.Event()
    outcome: list[str] = []
    client = make_client(m, f"attendance-check-{m.device_id}")

    def on_connect(c: object, u: object, flags: object, reason: object, props: object = None) -> None:
        outcome.append("" if not getattr(reason, "is_failure", False) else f"refused: {reason}")
        done.set()

    client.on_connect = on_connect
    client.connect(m.host, m.port, keepalive=10)
    client.loop_start()
    try:
        if not done.wait(5):
            raise TimeoutError(f"no answer from {m.host}:{m.port} within 5 s")
        if outcome[0]:
            raise ConnectionRefusedError(outcome[0])
        return f"{m.host}:{m.port} accepted (MQTT {m.protocol}{', TLS' if m.tls else ''})"
    finally:
        client.disconnect()
        client.loop_stop()


def run_checks(cfg: Config, camera: bool, broker: bool) -> list[CheckResult]:
    checks: list[tuple[str, Callable[[Config], str]]] = [
        ("data", _data_dir), ("database", _database), ("detector", _detector), ("encoder", _encoder),
    ]
    if camera:
        checks.append(("camera", _camera))
    if broker:
        checks.append(("broker", _broker))
    results = []
    for name, fn in checks:
        try:
            results.append(CheckResult(name, True, fn(cfg)))
        except Exception as exc:  # noqa: BLE001 -- every failure is reported as that check's line
            results.append(CheckResult(name, False, f"{type(exc).__name__}: {exc}"))
    return results
