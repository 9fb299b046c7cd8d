"""Opens what a process needs once: config, store, detector and encoder (the models load here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config, load_config
from ..recognition.detect import Detector, make_detector
from ..recognition.encode import Encoder, FaceEncoder, ProcessEncoder
from ..store import Store


def configured_detector(cfg: Config) -> Detector:
    """The detector the config asks for (tflite falls back to HOG when no TFLite runtime is installed)."""
    rc = cfg.recognition
    return make_detector(rc.detector, rc.detector_min_score, rc.min_face_px, rc.smallest_face_px,
                         sweep_frames=max(1, round(rc.full_scan_s * rc.analysis_fps)),
                         verify_score=rc.detector_verify_score)


@dataclass
class Runtime:
    cfg: Config
    store: Store
    _detector: Detector | None = field(default=None, repr=False)
    _encoder: FaceEncoder | None = field(default=None, repr=False)

    @classmethod
    def open(cls, config_path: Path | None) -> Runtime:
        cfg = load_config(config_path)
        cfg.ensure_dirs()
        return cls(cfg, Store(cfg.paths.database, allow_init=cfg.daemon.allow_init))

    @property
    def detector(self) -> Detector:
        if self._detector is None:
            self._detector = configured_detector(self.cfg)
        return self._detector

    @property
    def encoder(self) -> FaceEncoder:
        """In a child process by default (the frame loop goes on while faces are encoded), as in the daemon."""
        if self._encoder is None:
            self._encoder = ProcessEncoder() if self.cfg.recognition.encoder_process else Encoder()
        return self._encoder

    def close(self) -> None:
        if self._encoder is not None:
            self._encoder.close()
        self.store.close()
