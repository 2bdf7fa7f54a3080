"""Flow-guided temporal stabilisation of one restored window [ours].

Each frame is averaged with its neighbours up to `radius` frames away, each neighbour warped onto
it by OpenCV DIS optical flow (no downloadable weights) computed on the restored frames. A warped
pixel counts only where the forward and backward flows agree and where it lands within a few
levels of the frame's own value, so occlusions, blinks and mouth movement keep the frame's own
pixels instead of ghosting. What it removes is what differs from frame to frame at the same point
of the face: residual noise and codec shimmer the model left behind, which viewers see as flicker.

It works inside a window only, so a window's output still depends on nothing but its own input
frames (the engine's cache and any-order guarantee); frames near a window's edge have fewer
neighbours, and the engine's cross-fade of overlapping windows evens that out.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..metrics import consistency_mask, warp

SIGMA_LEVELS = 16.0  # photometric tolerance in 8-bit levels: a neighbour this far off weighs 1/e


def _luma_u8(frames: np.ndarray) -> np.ndarray:
    """Full-range BT.601 luma of a window in model units ([-1, 1], (T, H, W, 3)) as uint8, what DIS
    expects; `metrics.luma_u8` is the studio-range luma of one display frame that PSNR is defined on."""
    rgb = (frames + 1.0) * 127.5
    y = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def stabilise(frames: np.ndarray, radius: int, sigma_levels: float = SIGMA_LEVELS) -> np.ndarray:
    """Flow-aligned, occlusion-aware average of each frame with its `radius` neighbours each side.

    frames: float32 (T, H, W, 3) in [-1, 1] (a restored window); returns a new array of the same
    shape and dtype. radius 0, or a single frame, returns the frames unchanged (as a copy).
    """
    if radius < 0:
        raise ValueError(f"stabilise radius must be >= 0, got {radius}")
    frames = np.asarray(frames, dtype=np.float32)
    n = len(frames)
    if radius == 0 or n < 2:
        return frames.copy()
    luma = _luma_u8(frames)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)  # smoother than MEDIUM, half the time
    acc = frames.copy()
    total = np.ones(frames.shape[:3], dtype=np.float32)
    scale = 127.5 / float(sigma_levels)  # model units -> multiples of sigma
    for t in range(n):
        for s in range(t + 1, min(n, t + radius + 1)):
            to_s = dis.calc(luma[t], luma[s], None)  # frame t's pixels -> where they are in s
            to_t = dis.calc(luma[s], luma[t], None)
            for dst, src, flow, back in ((t, s, to_s, to_t), (s, t, to_t, to_s)):
                moved = warp(frames[src], flow)
                diff = np.abs(moved - frames[dst])
                diff = (diff[..., 0] + diff[..., 1] + diff[..., 2]) * (scale / 3.0)
                weight = consistency_mask(flow, back) * np.exp(-(diff**2))
                acc[dst] += moved * weight[..., None]
                total[dst] += weight
    return acc / total[..., None]
