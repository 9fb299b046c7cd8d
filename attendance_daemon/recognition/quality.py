"""How good a view of a face is, and what can be done for a poor one before it is encoded.

- `sharpness`: variance of the Laplacian over the face box, in grey: motion blur and defocus lower it. Compared
  within one track (same person, same size), so no absolute scale is needed;
- `luma`: mean brightness of the face box (0-255): a dim face is enhanced before encoding;
- `noise`: sensor noise of a frame: a noisy room's faces are fused over frames (sessions/recognizer.py);
- `enhance`: non-local-means denoising and CLAHE on the lightness of a dim crop (dlib's ResNet was trained on
  well-exposed photos: a dark, noisy face drifts away from its enrollment)."""

from __future__ import annotations

import cv2
import numpy as np

from .encode import Crop


def _face_grey(crop: Crop) -> np.ndarray:
    top, right, bottom, left = crop.face
    face = crop.rgb[max(0, top):max(top + 1, bottom), max(0, left):max(left + 1, right)]
    grey: np.ndarray = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
    return grey


def sharpness(crop: Crop) -> float:
    """Variance of the Laplacian of the face, its size normalised to 64 px wide (comparable within a track)."""
    grey = _face_grey(crop)
    if grey.shape[1] != 64:
        grey = cv2.resize(grey, (64, max(1, round(64 * grey.shape[0] / max(1, grey.shape[1])))),
                          interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def luma(crop: Crop) -> float:
    return float(_face_grey(crop).mean())


_clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4))


def enhance(crop: Crop, denoise: float = 7.0) -> Crop:
    """The crop denoised (non-local means, strength `denoise`) and its lightness equalised (CLAHE)."""
    rgb = crop.rgb
    if denoise > 0:
        rgb = cv2.fastNlMeansDenoisingColored(rgb, None, denoise, denoise, 5, 15)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    lab[:, :, 0] = _clahe.apply(lab[:, :, 0])
    return Crop(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB), crop.face)



_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def noise(bgr: np.ndarray) -> float:
    """Sensor noise of a frame, sigma in 8-bit units (Immerkaer's fast estimate: the Laplacian-difference mask
    cancels smooth shading and keeps pixel-to-pixel noise; texture adds a little). ~12 ms at 1080p. A lit room
    through H.264 gives 0.1-2.1 in the benchmarks, the dim family's gained-up rooms 5-17."""
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    response = np.abs(cv2.filter2D(grey, cv2.CV_16S, _IMMERKAER)[1:-1, 1:-1])
    return float(np.sqrt(np.pi / 2) * response.mean() / 6)
