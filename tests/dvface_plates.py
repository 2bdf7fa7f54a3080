"""Synthetic host plates for the worker and Nuke tests: a scene-linear RGBA EXR sequence.

The astronaut's face moves one pixel a frame through a 128 px plate; the plate is premultiplied
by an alpha with soft and empty regions and holds highlights far above 1 away from the face.
The tiny model is the untrained `tiny` preset at a 64 px crop, so a window costs about a second.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import OpenEXR
from skimage import data

from tiny_models import save_tiny

from dvface_plugin.colour import srgb_decode

SIZE = 128
FIRST = 1001
COUNT = 5


def plate(f: int) -> tuple[np.ndarray, np.ndarray]:
    """(premultiplied linear rgb, alpha) of frame index f."""
    img = cv2.resize(data.astronaut(), (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    img = cv2.warpAffine(img, np.float32([[1, 0, f], [0, 1, 0]]), (SIZE, SIZE), borderMode=cv2.BORDER_REFLECT)
    linear = srgb_decode(img)
    linear[100:, 100:] *= 6.0  # a highlight corner, values up to ~6
    alpha = np.ones((SIZE, SIZE), np.float32)
    alpha[:, :12] = 0.5
    alpha[:4, :] = 0.0
    return linear * alpha[..., None], alpha


def write_sequence(folder: Path, first: int = FIRST, count: int = COUNT) -> str:
    """Writes name.####.exr frames first..first+count-1; returns the #### pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        rgb, alpha = plate(i)
        channels = {c: np.ascontiguousarray(rgb[..., k]) for k, c in enumerate("RGB")}
        channels["A"] = alpha
        with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, channels) as f:
            f.write(str(folder / f"plate.{first + i:04d}.exr"))
    return str(folder / "plate.####.exr")


def tiny_model(folder: Path) -> str:
    return str(save_tiny(folder, 64))


def read_channels(path: Path) -> dict[str, np.ndarray]:
    with OpenEXR.File(str(path), separate_channels=True) as f:
        return {k: np.array(v.pixels) for k, v in f.channels().items()}
