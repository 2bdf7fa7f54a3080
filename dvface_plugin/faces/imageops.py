"""Bit-depth conversions shared by detection, alignment and compositing.

Frames arrive as uint8, uint16 or float32 in [0, 1]; only the detector sees an 8-bit copy, so
these helpers convert copies and never the caller's array.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

SUPPORTED_DTYPES = (np.uint8, np.uint16, np.float32)


def check_frame(frame: np.ndarray) -> None:
    """Reject anything that is not an HxWx3 uint8/uint16/float32 array, naming what was given."""
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
        shape = getattr(frame, "shape", type(frame).__name__)
        raise InputError(f"frames must be HxWx3 RGB numpy arrays, got {shape}")
    if frame.dtype.type not in SUPPORTED_DTYPES:
        raise InputError(f"frames must be uint8, uint16 or float32 (0..1), got {frame.dtype}")


def dtype_max(dtype: np.dtype) -> float:
    """Value that stands for full white in this dtype."""
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def to_uint8(frame: np.ndarray) -> np.ndarray:
    """8-bit copy (rounded) for the detector; uint8 input is returned as is."""
    check_frame(frame)
    if frame.dtype == np.uint8:
        return frame
    if frame.dtype == np.uint16:
        return ((frame.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return (np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def to_float(image: np.ndarray) -> np.ndarray:
    """float32 in [0, 1] from any supported dtype."""
    if image.dtype == np.float32:
        return image
    return image.astype(np.float32) / np.float32(dtype_max(image.dtype))


def from_float(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Back to `dtype`, rounding and clipping integer types; float32 is left unclipped."""
    if np.dtype(dtype) == np.float32:
        return image.astype(np.float32, copy=False)
    top = dtype_max(dtype)
    return np.clip(image * top + 0.5, 0, top).astype(dtype)
