"""Plates in their own colour space to the model's display sRGB and back, keeping what the model cannot see.

Compositing hosts hand over scene-linear (often ACEScg), often premultiplied float with values
above 1; the model was trained on display sRGB (sRGB-encoded Rec.709) in [0, 1]. The plate is
unpremultiplied and encoded into that space, then squeezed into [0, 1] (hard clip or a soft knee)
for the model. On the way back only the *change* the restorer made is carried into the plate, in
the unsqueezed encoded space: highlights the model never saw keep their values, and every pixel
outside the face matte is returned bit-identical (the original array's values, not a round trip).

The encoding is OpenColorIO's, from any colour space of a studio's config (`colorspace`, `ocio`);
the two shorthands of `transfer` (linear Rec.709, or already sRGB) use OCIO's built-in studio
config, and the hand-written sRGB curves below only where OpenColorIO is not installed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .errors import InputError

TRANSFERS = ("linear", "srgb")  # shorthands without a config: scene-linear Rec.709, or already sRGB-encoded
HIGHLIGHTS = ("clip", "soft")
_SOFT_LIMIT = 1.0 - 1e-6  # atanh(1) is infinite; restored values at 1 expand to this
BUILTIN_CONFIG = "ocio://studio-config-latest"  # ships inside OpenColorIO >= 2.2: nothing to download
LINEAR_REC709 = "Linear Rec.709 (sRGB)"  # `transfer="linear"` in the built-in config
# The model's space under the names configs give it: the ACES studio/CG configs (and their
# aliases), then nuke-default's "sRGB".
MODEL_SPACES = ("sRGB Encoded Rec.709 (sRGB)", "srgb_tx", "sRGB - Texture", "Utility - sRGB - Texture", "sRGB")


@dataclass(frozen=True)
class ColourSettings:
    transfer: str = "linear"
    colorspace: str = ""  # the plate's colour space in `ocio`'s config (e.g. "ACEScg"); "" = `transfer`
    ocio: str = ""  # config file or built-in URI; "" = $OCIO, else the built-in studio config
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
        if self.ocio and not self.colorspace:
            raise InputError("an OCIO config was given without the plate's colour space; name it (--colorspace)")
        encoding(self)  # an unknown colour space or config fails here, before any frame is read

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


class Encoding:
    """Plate values to the model's display encoding (unclipped) and back."""

    def __init__(self, encode: Callable[[np.ndarray], np.ndarray], decode: Callable[[np.ndarray], np.ndarray],
                 description: str) -> None:
        self.encode, self.decode, self.description = encode, decode, description


def encoding(settings: ColourSettings) -> Encoding:
    """The conversion `settings` name: OpenColorIO's, or the curves where it is not installed."""
    return _encoding(settings.transfer, settings.colorspace, settings.ocio or os.environ.get("OCIO", ""))


@lru_cache(maxsize=16)
def _encoding(transfer: str, colorspace: str, config: str) -> Encoding:
    if not colorspace and transfer == "srgb":
        return Encoding(lambda x: np.asarray(x, np.float32), lambda x: np.asarray(x, np.float32), "display sRGB")
    try:
        import PyOpenColorIO as ocio
    except ImportError:
        if colorspace:
            raise InputError(f"colour space {colorspace!r} needs OpenColorIO: pip install opencolorio") from None
        return Encoding(srgb_encode, srgb_decode, "linear Rec.709 (sRGB curves; OpenColorIO not installed)")
    config = (config or BUILTIN_CONFIG) if colorspace else BUILTIN_CONFIG
    colorspace = colorspace or LINEAR_REC709
    try:
        cfg = ocio.Config.CreateFromFile(config)
    except Exception as exc:  # OCIO raises its own Exception subclass for unreadable configs
        raise InputError(f"cannot load the OCIO config {config!r} ({exc}); give a config file or a built-in URI "
                         f"such as {BUILTIN_CONFIG}") from None
    names = list(cfg.getColorSpaceNames())
    if cfg.getColorSpace(colorspace) is None:
        raise InputError(f"colour space {colorspace!r} is not in the OCIO config {config}; "
                         f"valid names: {', '.join(names)}")
    model = next((n for n in MODEL_SPACES if cfg.getColorSpace(n) is not None), None)
    if model is None:
        raise InputError(f"the OCIO config {config} has no sRGB-encoded Rec.709 colour space (one of "
                         f"{', '.join(MODEL_SPACES)}), which the model works in; use a config that has one")

    def apply(source: str, target: str) -> Callable[[np.ndarray], np.ndarray]:
        cpu = cfg.getProcessor(source, target).getOptimizedCPUProcessor(ocio.OPTIMIZATION_LOSSLESS)

        def convert(x: np.ndarray) -> np.ndarray:
            out = np.array(x, dtype=np.float32, order="C")  # applyRGB works in place
            cpu.applyRGB(out)
            return out

        return convert

    return Encoding(apply(colorspace, model), apply(model, colorspace), f"{colorspace} (OCIO {config})")


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
    return encoding(s).encode(straight)


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
    straight = encoding(settings).decode(changed)
    result = premultiply(straight, alpha) if (alpha is not None and settings.unpremultiply) else straight
    return np.where((matte > 0)[..., None], result, rgb).astype(np.float32)
