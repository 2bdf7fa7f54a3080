"""Scene-linear plates to the model's display sRGB and back, keeping what the model cannot see.

Compositing hosts (Nuke) hand over scene-linear, often premultiplied float with values above 1;
the model was trained on display sRGB in [0, 1]. The plate is unpremultiplied and encoded, then
squeezed into [0, 1] (hard clip or a soft knee) for the model. On the way back only the *change*
the restorer made is carried into the plate, in the unsqueezed encoded space: highlights the
model never saw keep their values, and every pixel outside the face matte is returned
bit-identical (the original array's values, not a round trip through the curves).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError

TRANSFERS = ("linear", "srgb")  # what the host's pixels are: scene-linear, or already sRGB-encoded
HIGHLIGHTS = ("clip", "soft")
_SOFT_LIMIT = 1.0 - 1e-6  # atanh(1) is infinite; restored values at 1 expand to this


@dataclass(frozen=True)
class ColourSettings:
    transfer: str = "linear"
    highlights: str = "clip"  # how encoded values above 1 are squeezed for the model
    knee: float = 0.8  # soft: encoded values above this are compressed towards 1
    unpremultiply: bool = True  # divide by alpha before encoding (premultiplied plates)

    def __post_init__(self) -> None:
        if self.transfer not in TRANSFERS:
            raise InputError(f"colourspace {self.transfer!r} unknown; choose one of {', '.join(TRANSFERS)}")
        if self.highlights not in HIGHLIGHTS:
            raise InputError(f"highlights {self.highlights!r} unknown; choose one of {', '.join(HIGHLIGHTS)}")
        if not 0.0 < float(self.knee) < 1.0:
            raise InputError(f"highlight knee must be in (0, 1), got {self.knee}")

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """sRGB OETF, extended sign-symmetrically so values above 1 and below 0 stay invertible."""
    x = np.asarray(linear, dtype=np.float32)
    a = np.abs(x)
    with np.errstate(invalid="ignore"):
        curve = np.where(a <= 0.0031308, a * 12.92, 1.055 * np.power(a, 1.0 / 2.4) - 0.055)
    return (np.sign(x) * curve).astype(np.float32)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """Inverse of `srgb_encode`."""
    v = np.asarray(encoded, dtype=np.float32)
    a = np.abs(v)
    with np.errstate(invalid="ignore"):
        curve = np.where(a <= 0.04045, a / 12.92, np.power((a + 0.055) / 1.055, 2.4))
    return (np.sign(v) * curve).astype(np.float32)


def unpremultiply(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """rgb / alpha where alpha > 0; pixels with alpha <= 0 are left as they are (as Nuke does)."""
    a = np.asarray(alpha, dtype=np.float32)[..., None]
    safe = np.where(a > 0, a, np.float32(1))
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(a > 0, rgb / safe, rgb).astype(np.float32)


def premultiply(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Inverse of `unpremultiply`."""
    a = np.asarray(alpha, dtype=np.float32)[..., None]
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(a > 0, rgb * a, rgb).astype(np.float32)


def _squeeze(work: np.ndarray, s: ColourSettings) -> np.ndarray:
    if s.highlights == "clip":
        return np.clip(work, 0.0, 1.0).astype(np.float32)
    k = np.float32(s.knee)
    over = (work - k) / (1 - k)
    soft = k + (1 - k) * np.tanh(np.maximum(over, 0))
    return np.clip(np.where(work > k, soft, work), 0.0, 1.0).astype(np.float32)


def _expand(display: np.ndarray, s: ColourSettings) -> np.ndarray:
    if s.highlights == "clip":
        return display.astype(np.float32)
    k = np.float32(s.knee)
    t = np.clip((display - k) / (1 - k), 0.0, _SOFT_LIMIT)
    return np.where(display > k, k + (1 - k) * np.arctanh(t), display).astype(np.float32)


def _working(rgb: np.ndarray, alpha: np.ndarray | None, s: ColourSettings) -> np.ndarray:
    straight = unpremultiply(rgb, alpha) if (alpha is not None and s.unpremultiply) else rgb
    return srgb_encode(straight) if s.transfer == "linear" else np.asarray(straight, np.float32)


def _check(rgb: np.ndarray, alpha: np.ndarray | None) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InputError(f"expected an HxWx3 RGB plate, got shape {rgb.shape}")
    if alpha is not None and alpha.shape != rgb.shape[:2]:
        raise InputError(f"alpha is {alpha.shape}, the plate is {rgb.shape[:2]}; they must match")


def to_display(rgb: np.ndarray, alpha: np.ndarray | None, settings: ColourSettings) -> np.ndarray:
    """The plate as the model sees it: straight-alpha display sRGB, float32 in [0, 1].

    NaN/Inf become 0 here (the model must not see them); the plate itself keeps them outside faces.
    """
    _check(rgb, alpha)
    work = np.nan_to_num(_working(rgb, alpha, settings), nan=0.0, posinf=1.0, neginf=0.0)
    return _squeeze(work, settings)


def from_display(
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    display_in: np.ndarray,
    display_out: np.ndarray,
    matte: np.ndarray,
    settings: ColourSettings,
) -> np.ndarray:
    """The plate with the restorer's change (display_in -> display_out) applied under `matte`.

    Where matte == 0 the result holds exactly the values of `rgb`.
    """
    _check(rgb, alpha)
    work = _working(rgb, alpha, settings)
    changed = work + (_expand(display_out, settings) - _expand(display_in, settings))
    straight = srgb_decode(changed) if settings.transfer == "linear" else changed
    result = premultiply(straight, alpha) if (alpha is not None and settings.unpremultiply) else straight
    return np.where((matte > 0)[..., None], result, rgb).astype(np.float32)
