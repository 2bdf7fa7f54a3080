"""Put restored face crops back into the plate without seams, colour shifts or collateral damage.

Only pixels under a face matte are written; every other pixel of the frame is returned
bit-identical, whatever the dtype (uint8, uint16 or float32), so a shot with a missed or rejected
face is never altered outside the faces that were restored. Under the matte it is the restorer's
change to its crop that goes back, not the crop itself: a face a fifth of the crop's size would
otherwise lose a third of its own fine detail on the way into the crop and back, whatever the
restorer did (a restorer that changes nothing leaves the plate exactly as it was).

`strength` is the artist's control over how much of the restoration is used: it scales the
matte, so 0 gives back the plate untouched and values between mix restored and original faces.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np

from ..errors import InputError
from .align import crop_scale, invert_affine, transform_points, warp_to_crop
from .imageops import check_frame, from_float, to_float

# Soft ellipse in crop units (FFHQ layout: it covers brows to chin and cheek to cheek at full
# strength, then fades to exactly zero well inside the crop so the crop border never shows).
_MASK_CENTRE = (0.5, 0.52)
_MASK_RADII = (0.42, 0.44)
_MASK_INNER = 0.55  # normalised radius where the fade starts


@lru_cache(maxsize=4)
def face_mask(size: int) -> np.ndarray:
    """size x size float32 matte in crop space: 1 on the face, a C2-smooth fade, 0 at the edges.

    A quintic (smootherstep) fade has no kink at either end of the ramp, so neither the start nor
    the end of the blend shows as a line. Cached and read-only: it is the same for every face.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    r = np.sqrt(
        ((xx / size - _MASK_CENTRE[0]) / _MASK_RADII[0]) ** 2 + ((yy / size - _MASK_CENTRE[1]) / _MASK_RADII[1]) ** 2
    )
    t = np.clip((1.0 - r) / (1.0 - _MASK_INNER), 0.0, 1.0)
    mask = (t * t * t * (t * (6.0 * t - 15.0) + 10.0)).astype(np.float32)
    mask.flags.writeable = False
    return mask


def _weighted_stats(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    total = float(w.sum())
    mean = (x * w[..., None]).sum((0, 1)) / total
    var = (((x - mean) ** 2) * w[..., None]).sum((0, 1)) / total
    return mean, np.sqrt(np.maximum(var, 1e-12))


def match_colour(restored: np.ndarray, reference: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Restored crop with the plate's per-channel mean and contrast in a low-frequency band.

    Only the band below ~1/64 of the crop is matched: that band holds the skin tone, grade and
    lighting the plate must keep, while the detail the restorer added lives above it and is kept.
    Matching full-band contrast instead would pull the restored detail back to the blurry input.
    The band is computed at a quarter of the crop size (it holds nothing finer) and the correction
    upsampled, which makes this several times cheaper than full-size blurs.
    """
    size = restored.shape[0]
    small = max(16, size // 4)

    def low(img: np.ndarray) -> np.ndarray:
        img = cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(img, (0, 0), small / 64.0)

    low_r, low_p = low(restored), low(reference)
    w = cv2.resize(weight, (small, small), interpolation=cv2.INTER_AREA)
    mean_r, std_r = _weighted_stats(low_r, w)
    mean_p, std_p = _weighted_stats(low_p, w)
    gain = np.clip(std_p / std_r, 0.5, 2.0)
    correction = ((low_r - mean_r) * (gain - 1.0) + (mean_p - mean_r)).astype(np.float32)
    return restored + cv2.resize(correction, (size, size), interpolation=cv2.INTER_LINEAR)


def _footprint(matrix: np.ndarray, size: int, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Frame rectangle (x0, y0, x1, y1) covering the crop mask's support, clipped to the frame."""
    lo = np.array(_MASK_CENTRE) - np.array(_MASK_RADII)
    hi = np.array(_MASK_CENTRE) + np.array(_MASK_RADII)
    corners = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [lo[0], hi[1]], [hi[0], hi[1]]]) * size
    pts = transform_points(invert_affine(matrix), corners)
    x0, y0 = np.maximum(np.floor(pts.min(0)).astype(int) - 1, 0)
    x1 = min(int(np.ceil(pts[:, 0].max())) + 2, shape[1])
    y1 = min(int(np.ceil(pts[:, 1].max())) + 2, shape[0])
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _to_frame(crop: np.ndarray, matrix: np.ndarray, roi: tuple[int, int, int, int], is_matte: bool) -> np.ndarray:
    """Crop-space image resampled onto the frame ROI.

    When the face is smaller in the frame than in the crop, the crop is low-passed first: bicubic
    sampling alone would alias the restored detail into noise. A Gaussian of 0.35*sqrt(s^2 - 1)
    crop pixels removes about as much aliasing as an area resize but, being one resampling instead
    of two, keeps more of the detail. Mattes use bilinear sampling (no overshoot outside 0..1).
    """
    m = np.asarray(matrix, dtype=np.float64).copy()
    scale = crop_scale(m)
    if scale > 1.0 and not is_matte:
        crop = cv2.GaussianBlur(crop, (0, 0), 0.35 * np.sqrt(scale**2 - 1.0))
    x0, y0, x1, y1 = roi
    m[:, 2] += m[:, :2] @ np.array([x0, y0], dtype=np.float64)
    flags = (cv2.INTER_LINEAR if is_matte else cv2.INTER_CUBIC) | cv2.WARP_INVERSE_MAP
    border = cv2.BORDER_CONSTANT if is_matte else cv2.BORDER_REPLICATE
    return cv2.warpAffine(crop, m, (x1 - x0, y1 - y0), flags=flags, borderMode=border)


def check_strength(strength: float, name: str = "strength") -> float:
    """The strength as a float, refused (naming it as the caller's option `name`) unless in [0, 1]."""
    value = float(strength)
    if not 0.0 <= value <= 1.0:
        raise InputError(f"{name} must be in [0, 1] (0 = the input unchanged, 1 = the full restoration), "
                         f"got {strength}")
    return value


def apply_strength(original: np.ndarray, restored: np.ndarray, strength: float) -> np.ndarray:
    """An aligned crop at `strength`: the restored crop mixed with the crop it was made from, as
    `paste_faces` adds a face's change to its plate (0 returns `original`, 1 `restored`, unchanged)."""
    strength = check_strength(strength)
    if strength == 1.0:
        return restored
    if strength == 0.0:
        return original
    plate = to_float(original)
    return from_float(plate + strength * (to_float(restored) - plate), original.dtype)


def paste_faces(
    frame: np.ndarray,
    faces: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    colour_match: bool = True,
    mask: np.ndarray | None = None,
    strength: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Composite restored crops into a copy of `frame`; returns (frame, matte). Each crop's change
    from the crop of `frame` it was made from is resampled onto the plate, which keeps its own detail.

    faces: (restored crop, frame->crop 2x3 matrix) pairs; a crop is square, float32 in [0, 1] or
        any supported integer dtype, and is aligned with the matrix that cut it (align.py).
    colour_match: match the plate's low-frequency colour (see `match_colour`).
    mask: crop-space matte to use instead of `face_mask` (e.g. from a face parser), values in [0, 1].
    strength: how much of each restored face replaces the plate (scales its matte), in [0, 1].
    The returned matte (float32 HxW, 0..1) is the union of the face mattes at that strength;
    pixels where it is 0 are bit-identical to the input.
    """
    check_frame(frame)
    strength = check_strength(strength)
    out = frame.copy()
    matte = np.zeros(frame.shape[:2], dtype=np.float32)
    if strength == 0.0:
        return out, matte
    for restored, matrix in faces:
        if restored.ndim != 3 or restored.shape[2] != 3 or restored.shape[0] != restored.shape[1]:
            raise InputError(f"restored face crops must be square SxSx3 images, got {restored.shape}")
        size = restored.shape[0]
        crop_mask = face_mask(size) if mask is None else np.asarray(mask, dtype=np.float32)
        if crop_mask.shape != (size, size):
            raise InputError(f"mask must be {size}x{size} like the crop, got {crop_mask.shape}")
        roi = _footprint(matrix, size, frame.shape[:2])
        if roi is None:
            continue
        face, source = to_float(restored), to_float(warp_to_crop(frame, matrix, size))
        if colour_match:
            face = match_colour(face, source, crop_mask)
        alpha = _to_frame(crop_mask, matrix, roi, is_matte=True)
        np.clip(alpha, 0.0, 1.0, out=alpha)
        alpha *= strength
        # Below one step of a 16-bit matte (and any visible change): "matte == 0" means untouched,
        # in the matte a host reads as much as in the pixels.
        alpha[alpha < 1 / 65535] = 0.0
        # Only the restoration's change goes back: the plate's own detail, which a crop and its way
        # back would soften (a small face is enlarged several times into the crop), stays as it is.
        change = _to_frame(face - source, matrix, roi, is_matte=False)
        x0, y0, x1, y1 = roi
        blended = from_float(to_float(out[y0:y1, x0:x1]) + alpha[..., None] * change, frame.dtype)
        touched = alpha > 0
        out[y0:y1, x0:x1][touched] = blended[touched]
        region = matte[y0:y1, x0:x1]
        region += alpha - region * alpha  # union; exact where region is 0
    return out, matte
