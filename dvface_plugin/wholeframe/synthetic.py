"""A synthetic shot for benchmarks and tests: astronaut faces drifting over a textured background.

Deterministic and generated frame by frame, so a long clip costs no memory; the faces are large
enough for the detector, move (so tracking and per-frame alignment are exercised) and never overlap.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import cv2
import numpy as np


@lru_cache(maxsize=1)
def _head() -> np.ndarray:
    from skimage.data import astronaut

    return np.ascontiguousarray(astronaut()[30:310, 120:360])  # head and shoulders, 280x240


def face_positions(n: int, width: int, height: int, faces: int, face_px: int) -> list[tuple[int, int]]:
    """Top-left corners of each face in frame n: face k drifts sideways in its own column band."""
    h, w = face_px, face_px * 240 // 280
    band = width // max(faces, 1)
    out = []
    for k in range(faces):
        span = max(band - w - 8, 0)
        x = k * band + 4 + int(round(span * (0.5 + 0.4 * np.sin(0.07 * n + k))))
        y = int(round((height - h) * (0.4 + 0.2 * np.cos(0.05 * n + 2 * k))))
        out.append((x, y))
    return out


def synthetic_frames(n_frames: int, width: int, height: int, *, faces: int = 2, face_px: int | None = None,
                     seed: int = 0) -> Iterator[np.ndarray]:
    """n_frames HxWx3 uint8 RGB frames; `face_px` is the pasted head height (default: 40% of the height)."""
    face_px = face_px or max(64, int(height * 0.4))
    face_px = min(face_px, height - 2, (width // max(faces, 1) - 8) * 280 // 240)
    head = cv2.resize(_head(), (face_px * 240 // 280, face_px), interpolation=cv2.INTER_AREA)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    texture = np.random.default_rng(seed).integers(0, 24, (height, width, 1)).astype(np.float32)
    for n in range(n_frames):
        base = 70 + 50 * np.sin(xx / 97.0 + 0.03 * n)[..., None] * np.array([0.6, 0.8, 1.0], np.float32)
        frame = np.clip(base + 0.1 * yy[..., None] + texture, 0, 255).astype(np.uint8)
        for x, y in face_positions(n, width, height, faces, face_px):
            frame[y:y + head.shape[0], x:x + head.shape[1]] = head
        yield frame
