"""Flow-guided temporal stabilisation of one restored window [ours], on the low band only, with each
frame's brightness steadied, and the whole-frame input prefilter built on it.

Each frame is split with a Gaussian blur (sigma `BAND_SIGMA` pixels) into a low band (shading,
brightness, the broad shape of features) and a high band (its fine detail). The low band is
averaged with the low bands of its neighbours up to `radius` frames away, each warped onto it by
OpenCV DIS optical flow (no downloadable weights) computed on the whole restored frames; the frame
keeps its own high band. A warped pixel counts only where the forward and backward flows agree and
where its low band lands within a few levels of the frame's own (measured on the low band, so
sharp or noisy detail does not turn the averaging off), so occlusions, blinks and mouth movement
keep the frame's own pixels instead of ghosting. What it removes is what pumps from frame to frame
at the same point of the face: brightness and shading flicker and blotchy codec shimmer.

Last, each frame's overall brightness is steadied: the window's brightness path (the median change
of 8 x 8 cell means from frame to frame, what `metrics.flicker` measures) is fitted with a straight
line over the same `radius` frames each side, and each frame is shifted, as a whole, by at most
`DEFLICKER_LEVELS` towards that line. The flow average leaves a global pumping of a fraction of a
level (its weights change from frame to frame, and so does the model's tone), which put the
flicker measure above the input's on five real-world clips (docs/benchmarks.md, "Steadying the
brightness"). A fade or a camera gain ramp is a line and passes; a sudden real lighting change
moves by at most the cap; detail is unchanged (one offset per frame).

Why the low band only: averaging whole frames (what this module did before) also averages fine
detail, and wherever the flow is off by a fraction of a pixel, or bilinear warping softens a
neighbour, that smears it: on the paired benchmark clips the detail measure (Laplacian variance,
`metrics.detail`) fell to 0.44-0.88 of the unstabilised output (models H and J). Per-pixel
variation cannot be told apart from detail the flow fails to align, so it is left alone. Averaging
the low band alone keeps the detail measure at 0.99-1.00 and the flicker measure where whole-frame
averaging put it, and removes a fifth to two fifths of the warping error (whole frames: about
half); a sigma of 1.5 pixels or less starts to cost detail (docs/benchmarks.md,
`benchmarks/stabilise_detail.py`).

`prefilter` is the same average over whole frames, run on a window's input before the model
(`DVFaceConfig.prefilter`): a temporal denoise. A model trained behind it sees steady input and
adds detail that holds still, which no averaging of its output could give without losing that
detail (docs/benchmarks.md, "Our default model": P).

It works inside a window only, so a window's output still depends on nothing but its own input
frames (the engine's cache and any-order guarantee); frames near a window's edge have fewer
neighbours, and the engine's cross-fade of overlapping windows evens that out.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..metrics import consistency_mask, warp
from .monochrome import LUMA

SIGMA_LEVELS = 16.0  # photometric tolerance in 8-bit levels: a neighbour this far off weighs 1/e
BAND_SIGMA = 2.0  # pixels: Gaussian splitting the low band that is averaged from the detail each frame keeps
DEFLICKER_LEVELS = 0.5  # 8-bit levels: the most a frame's brightness is shifted towards its neighbours'
FLICKER_CELLS = 8  # grid of cells whose median change is a frame's brightness step (as `metrics.flicker`)


def _window(frames: np.ndarray, radius: int) -> np.ndarray:
    """A window as float32 (T, H, W, 3), once its radius is checked: what every filter here starts from."""
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    return np.asarray(frames, dtype=np.float32)


def _luma(frames: np.ndarray) -> np.ndarray:
    """Full-range BT.601 luma in 8-bit levels (float32, (T, H, W)) of a window in model units
    ([-1, 1], (T, H, W, 3)); `metrics.luma_u8` is the studio-range luma of one display frame that
    PSNR is defined on."""
    return (frames + 1.0) * 127.5 @ LUMA


def _luma_u8(frames: np.ndarray) -> np.ndarray:
    """`_luma` as uint8, what DIS expects."""
    return np.clip(np.rint(_luma(frames)), 0, 255).astype(np.uint8)


def stabilise(frames: np.ndarray, radius: int, sigma_levels: float = SIGMA_LEVELS) -> np.ndarray:
    """Flow-aligned, occlusion-aware average of each frame's low band with its `radius` neighbours'
    each side; each frame keeps its own high band (detail finer than `BAND_SIGMA` pixels). Then each
    frame's brightness is steadied (`steady_brightness`).

    frames: float32 (T, H, W, 3) in [-1, 1] (a restored window); returns a new array of the same
    shape and dtype. radius 0, or a single frame, returns the frames unchanged (as a copy), and so
    does every pixel that no neighbour is usable for.
    """
    return steady_brightness(_flow_average(frames, radius, sigma_levels, whole=False), radius)


def steady_brightness(frames: np.ndarray, radius: int, cap_levels: float = DEFLICKER_LEVELS) -> np.ndarray:
    """Each frame shifted as a whole, by at most `cap_levels` 8-bit levels, onto a straight line
    fitted to the window's brightness path over `radius` frames each side (see the module
    docstring). Same shapes and units as `stabilise`; radius 0, or fewer than 3 frames, returns a
    copy (a line through two points leaves nothing to remove)."""
    frames = _window(frames, radius)
    n = len(frames)
    if radius == 0 or n < 3:
        return frames.copy()
    size = (FLICKER_CELLS, FLICKER_CELLS)
    cells = np.stack([cv2.resize(y, size, interpolation=cv2.INTER_AREA) for y in _luma(frames)])
    steps = np.median((cells[1:] - cells[:-1]).reshape(n - 1, -1), axis=1)
    path = np.concatenate([[0.0], np.cumsum(steps, dtype=np.float64)])
    shift = np.empty(n, dtype=np.float32)
    for t in range(n):
        lo, hi = max(0, t - radius), min(n, t + radius + 1)
        x = np.arange(lo, hi, dtype=np.float64) - t
        y = path[lo:hi]
        slope = np.dot(x - x.mean(), y - y.mean()) / np.dot(x - x.mean(), x - x.mean())
        shift[t] = np.clip(y.mean() - slope * x.mean() - path[t], -cap_levels, cap_levels)
    return frames + (shift / 127.5)[:, None, None, None]


def prefilter(frames: np.ndarray, radius: int, sigma_levels: float = SIGMA_LEVELS) -> np.ndarray:
    """The same flow-aligned average over whole frames, fine detail included: a temporal denoise of
    a model's input window (`DVFaceConfig.prefilter`). Noise and codec shimmer differ from frame to
    frame and average out; what holds still along the flow stays. A model trained on such inputs
    synthesises its detail from a steady picture, so the detail it adds holds still too (no
    post-filter could make it so without averaging that detail away, as `stabilise` explains).
    Same arguments and guarantees as `stabilise`."""
    return _flow_average(frames, radius, sigma_levels, whole=True)


def _flow_average(frames: np.ndarray, radius: int, sigma_levels: float, whole: bool) -> np.ndarray:
    frames = _window(frames, radius)
    n = len(frames)
    if radius == 0 or n < 2:
        return frames.copy()
    luma = _luma_u8(frames)  # the flow follows the whole frame: its detail is what DIS locks onto
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)  # smoother than MEDIUM, half the time
    low = np.stack([cv2.GaussianBlur(frame, (0, 0), BAND_SIGMA) for frame in frames])
    band = frames if whole else low  # what is averaged; the weights always compare low bands
    acc = band.copy()
    total = np.ones(frames.shape[:3], dtype=np.float32)
    scale = 127.5 / float(sigma_levels)  # model units -> multiples of sigma
    for t in range(n):
        for s in range(t + 1, min(n, t + radius + 1)):
            to_s = dis.calc(luma[t], luma[s], None)  # frame t's pixels -> where they are in s
            to_t = dis.calc(luma[s], luma[t], None)
            for dst, src, flow, back in ((t, s, to_s, to_t), (s, t, to_t, to_s)):
                moved_low = warp(low[src], flow)
                diff = np.abs(moved_low - low[dst])
                diff = (diff[..., 0] + diff[..., 1] + diff[..., 2]) * (scale / 3.0)
                weight = consistency_mask(flow, back) * np.exp(-(diff**2))
                moved = warp(frames[src], flow) if whole else moved_low
                acc[dst] += moved * weight[..., None]
                total[dst] += weight
    # The frame plus the change of its band: exactly the frame where no neighbour counted.
    return frames + (acc / total[..., None] - band)
