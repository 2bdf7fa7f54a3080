"""FFHQ-style alignment: a similarity transform that puts five landmarks on a fixed template.

The model is trained on crops made with exactly this template, so every part of the plugin that
cuts or pastes faces must go through these functions.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import InputError

CROP_SIZE = 512

# The FFHQ crop rule (ffhq-dataset's recreate_aligned_images): the crop side is 4x the eye distance,
# and the crop centre sits 0.1 eye-to-mouth distances below the eye midpoint. With the average face
# proportions used below (eye-to-mouth = 1.024 eye distances, nose 57% of the way down, mouth width
# 0.87 eye distances) that puts the points at these fractions of the crop side.
_EYE_DIST = 0.25
_EYE_TO_MOUTH = 1.024 * _EYE_DIST
_EYE_Y = 0.5 - 0.1 * _EYE_TO_MOUTH
_MOUTH_Y = _EYE_Y + _EYE_TO_MOUTH
_NOSE_Y = _EYE_Y + 0.57 * _EYE_TO_MOUTH
_MOUTH_HALF = 0.435 * _EYE_DIST
_TEMPLATE_UNIT = np.array(
    [
        [0.5 - _EYE_DIST / 2, _EYE_Y],
        [0.5 + _EYE_DIST / 2, _EYE_Y],
        [0.5, _NOSE_Y],
        [0.5 - _MOUTH_HALF, _MOUTH_Y],
        [0.5 + _MOUTH_HALF, _MOUTH_Y],
    ]
)


def ffhq_template(size: int = CROP_SIZE) -> np.ndarray:
    """(5, 2) landmark positions in a size x size crop, in LANDMARK_NAMES order."""
    return _TEMPLATE_UNIT * size


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) src -> dst.

    Umeyama's closed form, so the result is the exact optimum rather than a RANSAC sample.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise InputError(f"similarity needs two matching (N>=2, 2) point sets, got {src.shape} and {dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise InputError("landmarks contain NaN or infinite values")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum() / len(src)
    if var_s <= 1e-12:
        raise InputError("landmarks are all at one point; cannot align the face")
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    fix = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rot = u @ fix @ vt
    scale = (sig * np.diag(fix)).sum() / var_s
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def check_pixel_aspect(value: object) -> float:
    """A pixel aspect ratio as a float, or an InputError naming the bad value."""
    try:
        aspect = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        aspect = float("nan")
    if not (np.isfinite(aspect) and 0.1 <= aspect <= 10):
        raise InputError(f"pixel aspect must be a number between 0.1 and 10 (pixel width over height), got {value!r}")
    return aspect


def alignment_matrix(landmarks: np.ndarray, size: int = CROP_SIZE, pixel_aspect: float = 1.0) -> np.ndarray:
    """2x3 affine taking frame pixels to crop pixels for a face with these (5, 2) landmarks.

    `pixel_aspect` (pixel width over height: 64/45 for anamorphic 16:9 PAL) fits the template to
    the face as it is displayed, so the model sees the proportions it was trained on, not the
    squeezed face the frame stores; pasting back with the inverse squeezes it again.
    """
    stretch = np.array([pixel_aspect, 1.0])
    matrix = estimate_similarity(np.asarray(landmarks, dtype=np.float64).reshape(5, 2) * stretch, ffhq_template(size))
    matrix[:, 0] *= pixel_aspect
    return matrix


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine (crop -> frame for an alignment matrix)."""
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to (N, 2) points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ np.asarray(matrix)[:, :2].T + np.asarray(matrix)[:, 2]


def crop_scale(matrix: np.ndarray) -> float:
    """Crop pixels per frame pixel (> 1: the face is enlarged into the crop)."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(matrix)[:, :2]))))


def warp_to_crop(frame: np.ndarray, matrix: np.ndarray, size: int = CROP_SIZE,
                 enlarge: int = cv2.INTER_CUBIC) -> np.ndarray:
    """The aligned size x size crop, same dtype as the frame.

    Faces larger than the crop are low-passed first (warpAffine alone would alias when shrinking),
    and only on the frame region the crop covers. Faces smaller than the crop are enlarged with
    `enlarge`: bicubic by default, as the model's degraded training inputs were upscaled
    (`degrade.downscale`); bilinear, softer at 4x-8x, gave small faces less detail. Outside the
    frame the image is mirrored, which keeps faces at the border plausible for the model;
    compositing never uses those pixels.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    scale = crop_scale(matrix)
    src = frame
    if scale < 0.8:
        h, w = frame.shape[:2]
        corners = transform_points(invert_affine(matrix), [[0, 0], [size, 0], [0, size], [size, size]])
        sigma = 0.5 * np.sqrt(1.0 / scale**2 - 1.0)
        pad = int(np.ceil(3 * sigma)) + 2
        x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int) - pad, 0)
        x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + pad, [w, h])
        if x1 > x0 and y1 > y0:
            src = cv2.GaussianBlur(frame[y0:y1, x0:x1], (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
            matrix = matrix.copy()
            matrix[:, 2] += matrix[:, :2] @ np.array([x0, y0], dtype=np.float64)
    flags = enlarge if scale > 1.0 else cv2.INTER_LINEAR
    return cv2.warpAffine(src, matrix, (size, size), flags=flags, borderMode=cv2.BORDER_REFLECT_101)
