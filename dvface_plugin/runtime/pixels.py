"""Conversion between host crops (uint8, uint16, float32 RGB) and the model's [-1, 1] floats.

Output conversion rounds half to even (np.rint) so a frame's bytes depend only on its value.
Float crops are display-referred RGB in [0, 1], as VapourSynth RGBS or Nuke after its sRGB step.
"""

from __future__ import annotations

import numpy as np

SUPPORTED_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
_INT_MAX = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def to_model(crops: np.ndarray) -> np.ndarray:
    """(..., 3) host crops -> float32 in [-1, 1]."""
    scale = _INT_MAX.get(crops.dtype)
    if scale is None:
        return crops.astype(np.float32) * np.float32(2.0) - np.float32(1.0)
    return crops.astype(np.float32) * np.float32(2.0 / scale) - np.float32(1.0)


def from_model(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Model floats in [-1, 1] (any float dtype) -> host dtype, clipped to its range."""
    unit = np.clip((values.astype(np.float64) + 1.0) * 0.5, 0.0, 1.0)
    scale = _INT_MAX.get(np.dtype(dtype))
    if scale is None:
        return unit.astype(dtype)
    return np.rint(unit * scale).astype(dtype)
