"""dlib 128-d face encodings through face_recognition (models from face_recognition_models)."""

from __future__ import annotations

import numpy as np

from .boxes import Box


class Encoder:
    """Encodes faces at given boxes; the expensive step (~80 ms a face), so callers ration it."""

    def __init__(self, num_jitters: int = 1) -> None:
        import face_recognition

        self._encode = face_recognition.face_encodings
        self._num_jitters = num_jitters

    def encode(self, rgb: np.ndarray, boxes: list[Box]) -> list[np.ndarray]:
        if not boxes:
            return []
        encs = self._encode(rgb, known_face_locations=[b.css() for b in boxes], num_jitters=self._num_jitters)
        return [np.asarray(e, dtype=np.float32) for e in encs]
