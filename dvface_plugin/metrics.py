"""Restoration metrics for face clips: fidelity (PSNR, SSIM), temporal stability (E_warp,
flicker), temporal alignment (offset search), detail (Laplacian variance), identity distance and
model-based landmark distance.

Conventions, chosen to match the face-restoration literature:

* Frames are RGB, uint8 or float in [0, 1], shape (H, W, 3).
* PSNR and SSIM are computed on the BT.601 luma Y = 16 + 65.481 R + 128.553 G + 24.966 B
  (R, G, B in [0, 1], Y in [16, 235], peak 255), per frame, then averaged over frames.
  SSIM uses the 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, and only
  the "valid" part of the filtered maps (a 5-pixel border is dropped), as in Wang et al. 2004.
* E_warp (flow-warping error, Lai et al. 2018): for each pair of consecutive frames, frame t-1
  is warped to frame t with the backward optical flow t -> t-1, and the squared error is
  averaged over non-occluded pixels and the three channels, with RGB in [0, 1]:
      E_t = sum_p M_t(p) * mean_c (V_t(p, c) - W(V_{t-1})(p, c))^2 / sum_p M_t(p)
  E_warp is the mean of E_t over all pairs. The flow comes from the ground truth (reference
  mode) or from the clip itself (no-reference mode), estimated with OpenCV's DIS (medium
  preset) on the luma, and M_t masks pixels that fail the forward-backward consistency test
  |w_b + w_f(p + w_b)|^2 <= 0.01 (|w_b|^2 + |w_f(p + w_b)|^2) + 0.5 or that warp from outside
  the frame. Tables report E_warp x 1e3 ("E*warp" in units of 10^-3), as the paper does.
* Flicker (no reference): the luma is averaged over an 8 x 8 grid of cells; for each pair of
  consecutive frames the 64 cell changes are reduced to their median, and flicker is the mean
  absolute value of that median over the clip, in 8-bit luma levels. Moving texture brightens
  some cells and darkens others (median near 0) while brightness pumping shifts most cells the
  same way, so it measures the pumping that E_warp's per-pixel error mixes with detail.
* Detail: variance of the 3x3 Laplacian (``cv2.Laplacian``, float64) of the Y above (unrounded,
  8-bit levels) over the centre half of the crop (rows and columns H/4..3H/4, the face; the
  crop's own border is reflected, so nothing outside it counts). Clips report the mean over
  frames as a ratio to the reference clip's mean over the same frames: below 1 is softer.
* Stripes: of the same face centre's high band (Hann-windowed power spectrum of the Y, radius
  above STRIPE_BAND cycles per pixel), the share within one frequency bin of the two axes,
  averaged over frames. Periodic horizontal and vertical stripes, the lattice a generator can
  paint where its input holds no detail, sit there and raise it towards 1; faces and their
  degraded inputs stay near 0.05 to 0.15. Detail counts the lattice as detail, so read a detail
  gain together with this.
* Identity: Euclidean distance between dlib face descriptors (``face_identity``); lower is
  closer, and dlib treats < 0.6 as the same person.

Everything works frame by frame (or pair by pair) so a caller can stream long clips.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError, WeightsError

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
FLICKER_GRID = 8
STRIPE_BAND = 0.15  # cycles per pixel: the high band the stripe share is taken of


def as_float01(frame: np.ndarray) -> np.ndarray:
    """uint8 or float [0,1] frame -> float32 [0,1]."""
    frame = np.asarray(frame)
    if frame.dtype == np.uint8:
        return frame.astype(np.float32) / 255.0
    return frame.astype(np.float32)


def rgb_to_y(frame: np.ndarray) -> np.ndarray:
    """BT.601 luma in [16, 235] (float64) of an RGB frame, as used for face-restoration PSNR."""
    x = as_float01(frame).astype(np.float64)
    if x.ndim != 3 or x.shape[-1] != 3:
        raise InputError(f"expected an RGB frame (H, W, 3), got shape {x.shape}")
    return 16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> None:
    if np.shape(pred) != np.shape(gt):
        raise InputError(f"frame sizes differ: prediction {np.shape(pred)} vs ground truth "
                         f"{np.shape(gt)}; resize the prediction to the ground-truth size")


def psnr_luma(pred_y: np.ndarray, gt_y: np.ndarray) -> float:
    """PSNR (dB, peak 255) of two luma planes from ``rgb_to_y``; ``inf`` when identical."""
    mse = float(np.mean((pred_y - gt_y) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(255.0**2 / mse)


def ssim_luma(pred_y: np.ndarray, gt_y: np.ndarray) -> float:
    """SSIM of two luma planes (0..255 scale) with the Gaussian window, valid region only."""
    a, b = np.asarray(pred_y, np.float64), np.asarray(gt_y, np.float64)
    if min(a.shape) < SSIM_WINDOW:
        raise InputError(f"frames of {a.shape} are smaller than the {SSIM_WINDOW}px SSIM window")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = cv2.getGaussianKernel(SSIM_WINDOW, SSIM_SIGMA)
    r = SSIM_WINDOW // 2

    def blur(x: np.ndarray) -> np.ndarray:  # separable Gaussian == the 2-D window, 'valid' crop
        return cv2.sepFilter2D(x, -1, g, g, borderType=cv2.BORDER_REFLECT)[r:-r, r:-r]

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def psnr_y(pred: np.ndarray, gt: np.ndarray) -> float:
    """PSNR (dB) of two RGB frames on the Y channel; ``inf`` for identical frames."""
    _check_pair(pred, gt)
    return psnr_luma(rgb_to_y(pred), rgb_to_y(gt))


def ssim_y(pred: np.ndarray, gt: np.ndarray) -> float:
    """SSIM of two RGB frames on the Y channel."""
    _check_pair(pred, gt)
    return ssim_luma(rgb_to_y(pred), rgb_to_y(gt))


PSNR_CAP = 60.0  # dB; libvmaf's 8-bit cap (6 * bits + 12), roughly the Y quantisation limit


def mean_psnr(values: Sequence[float]) -> float:
    """Clip PSNR = mean of per-frame PSNR with identical frames counted at ``PSNR_CAP``, so a
    few identical frames cannot make a clip infinite; ``inf`` only when every frame is."""
    if not values:
        return math.nan
    if all(math.isinf(v) for v in values):
        return math.inf
    return float(np.mean([min(v, PSNR_CAP) for v in values]))


# --------------------------------------------------------------------------- optical flow


def luma_u8(frame: np.ndarray) -> np.ndarray:
    """Rounded BT.601 luma as uint8, the input DIS flow expects."""
    return np.clip(np.rint(rgb_to_y(frame)), 0, 255).astype(np.uint8)


def warp(frame: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``frame`` at p + flow(p) (bilinear, border replicated): with the backward flow
    t -> t-1 this moves frame t-1 onto frame t."""
    gx, gy = _pixel_grid(*flow.shape[:2], np.float32)
    return cv2.remap(frame, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


@lru_cache(maxsize=8)
def _pixel_grid(h: int, w: int, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Pixel x and y coordinates (read-only), built once per frame size: flow is warped for
    every frame pair, and the grid costs as much as the warp."""
    gx, gy = np.meshgrid(np.arange(w, dtype=dtype), np.arange(h, dtype=dtype))
    gx.flags.writeable = gy.flags.writeable = False
    return gx, gy


def _norm2(flow: np.ndarray) -> np.ndarray:
    """Squared length of each flow vector (as fast as numpy gets it: no reduction over the
    short last axis)."""
    return flow[..., 0] ** 2 + flow[..., 1] ** 2


def consistency_mask(flow_bw: np.ndarray, flow_fw: np.ndarray) -> np.ndarray:
    """Pixels of frame t whose backward flow is confirmed by the forward flow from t-1 and
    that land inside frame t-1 (True = usable, False = occluded or out of view)."""
    h, w = flow_bw.shape[:2]
    fw_at = warp(flow_fw, flow_bw)
    total = flow_bw + fw_at
    lhs = _norm2(total)
    rhs = 0.01 * (_norm2(flow_bw) + _norm2(fw_at)) + 0.5
    gx, gy = _pixel_grid(h, w, np.float64)  # float64: the bounds test is exact at the border
    tx, ty = gx + flow_bw[..., 0], gy + flow_bw[..., 1]
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    return (lhs <= rhs) & inside


class FlowEstimator:
    """Backward flow and occlusion mask between consecutive frames with OpenCV DIS (no
    downloadable weights). One instance is reused across frames: DIS keeps no state between
    calls, but creating it is not free."""

    def __init__(self, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) -> None:
        self._dis = cv2.DISOpticalFlow_create(preset)

    def pair(self, prev: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(flow t -> t-1, mask) for uint8 luma (or RGB) frames prev = t-1, cur = t."""
        p = prev if prev.ndim == 2 else luma_u8(prev)
        c = cur if cur.ndim == 2 else luma_u8(cur)
        flow_bw = self._dis.calc(c, p, None)
        flow_fw = self._dis.calc(p, c, None)
        return flow_bw, consistency_mask(flow_bw, flow_fw)


def warp_error_pair(prev: np.ndarray, cur: np.ndarray, flow: np.ndarray,
                    mask: np.ndarray) -> float:
    """Masked MSE between frame t and frame t-1 warped onto it ([0,1] RGB, mean over
    channels); 0 when the mask is empty (nothing comparable)."""
    diff = (as_float01(cur) - warp(as_float01(prev), flow)) ** 2
    n = int(mask.sum())
    return 0.0 if n == 0 else float(diff[mask].mean())


def warping_error(frames: Iterable[np.ndarray],
                  flow_frames: Iterable[np.ndarray] | None = None) -> float:
    """E_warp of a clip (raw, not x1e3). ``flow_frames`` (the ground truth) supplies the flow;
    without it the clip's own flow is used (no-reference mode). Streams both iterables."""
    meter = WarpMeter()
    flows = FlowEstimator()
    prev = prev_ref = None
    refs = iter(flow_frames) if flow_frames is not None else None
    for frame in frames:
        ref = next(refs, None) if refs is not None else frame
        if ref is None:
            break
        ref_y = luma_u8(ref)
        if prev is not None:
            flow, mask = flows.pair(prev_ref, ref_y)
            meter.update(prev, frame, flow, mask)
        prev, prev_ref = frame, ref_y
    return meter.value


@dataclass
class WarpMeter:
    """Running mean of per-pair warping errors."""

    errors: list[float] = field(default_factory=list)

    def update(self, prev: np.ndarray, cur: np.ndarray, flow: np.ndarray,
               mask: np.ndarray) -> None:
        self.errors.append(warp_error_pair(prev, cur, flow, mask))

    @property
    def value(self) -> float:
        return float(np.mean(self.errors)) if self.errors else math.nan


# --------------------------------------------------------------------------- flicker


def brightness_cells(frame: np.ndarray, grid: int = FLICKER_GRID) -> np.ndarray:
    """Mean luma over a grid x grid partition of the frame (8-bit levels)."""
    y = rgb_to_y(frame).astype(np.float32)
    return cv2.resize(y, (grid, grid), interpolation=cv2.INTER_AREA)


@dataclass
class FlickerMeter:
    """Running mean of |median cell-brightness change| between consecutive frames."""

    grid: int = FLICKER_GRID
    _prev: np.ndarray | None = None
    _diffs: list[float] = field(default_factory=list)

    def update(self, frame: np.ndarray) -> None:
        cells = brightness_cells(frame, self.grid)
        if self._prev is not None:
            self._diffs.append(abs(float(np.median(cells - self._prev))))
        self._prev = cells

    @property
    def value(self) -> float:
        return float(np.mean(self._diffs)) if self._diffs else math.nan


def flicker(frames: Iterable[np.ndarray], grid: int = FLICKER_GRID) -> float:
    """No-reference flicker of a clip in 8-bit luma levels (see module docstring)."""
    meter = FlickerMeter(grid)
    for frame in frames:
        meter.update(frame)
    return meter.value


# --------------------------------------------------------------------------- detail


def detail(frame: np.ndarray) -> float:
    """Laplacian variance of the Y over the centre half of a face crop (see module docstring):
    high-frequency energy of the face itself, so a restoration can be checked for softness
    against its input or ground truth without the background counting."""
    y = rgb_to_y(frame)
    h, w = y.shape
    centre = np.ascontiguousarray(y[h // 4:3 * h // 4, w // 4:3 * w // 4])
    return float(cv2.Laplacian(centre, cv2.CV_64F).var())


def stripe_share(frame: np.ndarray) -> float:
    """Share of the face centre's high-band spectral energy on the two frequency axes (see
    module docstring): a stripe lattice, which `detail` cannot tell from real texture."""
    y = rgb_to_y(frame)
    h, w = y.shape
    centre = y[h // 4:3 * h // 4, w // 4:3 * w // 4]
    centre = (centre - centre.mean()) * np.outer(np.hanning(centre.shape[0]), np.hanning(centre.shape[1]))
    power = np.abs(np.fft.fft2(centre)) ** 2
    fy = np.fft.fftfreq(centre.shape[0])[:, None]
    fx = np.fft.fftfreq(centre.shape[1])[None, :]
    high = np.hypot(fy, fx) > STRIPE_BAND
    axes = (np.abs(fy) <= 1 / centre.shape[0]) | (np.abs(fx) <= 1 / centre.shape[1])
    total = power[high].sum()
    return float(power[high & axes].sum() / total) if total > 0 else math.nan


def detail_ratio(values: Sequence[float], reference: Sequence[float]) -> float:
    """Mean detail of a clip over the mean of its reference on the same frames (nan when the
    reference is flat or empty)."""
    ref = float(np.sum(reference))
    return float(np.sum(values)) / ref if ref > 0 else math.nan


# --------------------------------------------------------------------------- alignment


def find_offset(pred: Sequence[np.ndarray], gt: Sequence[np.ndarray],
                max_shift: int = 2) -> tuple[int, dict[int, float]]:
    """Shift s in [-max_shift, max_shift] maximising mean Y-PSNR of pred[t + s] vs gt[t].

    Every shift is scored on the same ground-truth frames so shifts compare fairly; ties go
    to the smallest |s|. Returns (best shift, {shift: mean PSNR}). Published clips are often
    off by a frame or two, which would otherwise dominate PSNR and SSIM."""
    n = min(len(pred), len(gt))
    lo, hi = max_shift, n - max_shift
    if hi - lo < 1:
        raise InputError(f"clips of {len(pred)} and {len(gt)} frames are too short to search "
                         f"offsets up to {max_shift}; lower --offset-search")
    pred_y = [rgb_to_y(f) for f in pred[:n]]
    gt_y = [rgb_to_y(f) for f in gt[:n]]
    scores: dict[int, float] = {}
    for s in range(-max_shift, max_shift + 1):
        scores[s] = mean_psnr([psnr_luma(pred_y[t + s], gt_y[t]) for t in range(lo, hi)])
    best = max(scores, key=lambda s: (scores[s], -abs(s), s))
    return best, scores


# --------------------------------------------------------------------------- ONNX models


@dataclass(frozen=True)
class OnnxSpec:
    """A user-supplied landmark model and how to feed it.

    The model takes one NCHW float32 RGB image, normalised as (pixel - mean) / std with pixel in
    0..255, at its declared input size (112 when the size is dynamic), and returns K (x, y[, z])
    points in pixels of its input (``coords="pixels"``), in [0, 1] (``"unit"``) or in [-1, 1]
    (``"signed"``). Defaults are those of ``dvface eval`` (x / 255, pixels)."""

    path: Path
    mean: float = 0.0
    std: float = 255.0
    coords: str = "pixels"


class OnnxFaceModel:
    """A landmark ONNX model run with onnxruntime on the CPU (or a provider the installed
    onnxruntime offers first)."""

    def __init__(self, spec: OnnxSpec) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise WeightsError("the landmark metric (AKD) needs onnxruntime: "
                               "pip install onnxruntime") from exc
        if not Path(spec.path).is_file():
            raise WeightsError(f"ONNX model {spec.path} not found; pass an existing .onnx file")
        if spec.coords not in ("pixels", "unit", "signed"):
            raise InputError(f"landmark coords {spec.coords!r}: use pixels, unit or signed")
        try:
            self._session = ort.InferenceSession(str(spec.path),
                                                 providers=ort.get_available_providers())
        except Exception as exc:  # onnxruntime raises several unrelated types for bad files
            raise WeightsError(f"cannot load ONNX model {spec.path}: {exc}") from exc
        inp = self._session.get_inputs()[0]
        self._input = inp.name
        dims = list(inp.shape)
        h = dims[2] if len(dims) == 4 and isinstance(dims[2], int) else 112
        w = dims[3] if len(dims) == 4 and isinstance(dims[3], int) else 112
        self.size = (int(h), int(w))
        self.spec = spec

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Raw model output for one RGB frame, flattened."""
        x = as_float01(frame) * 255.0
        x = cv2.resize(x, (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)
        x = ((x - self.spec.mean) / self.spec.std).transpose(2, 0, 1)[None].astype(np.float32)
        return np.asarray(self._session.run(None, {self._input: x})[0], np.float64).ravel()

    def landmarks(self, frame: np.ndarray) -> np.ndarray:
        """(K, 2) landmark positions in [0, 1] frame units."""
        out = self(frame)
        pts = out.reshape(-1, 3)[:, :2] if out.size % 2 else out.reshape(-1, 2)
        if self.spec.coords == "pixels":
            return pts / np.array([self.size[1], self.size[0]], np.float64)
        if self.spec.coords == "signed":
            return (pts + 1.0) / 2.0
        return pts


def descriptor_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two face descriptors (identity distance, 0 = same)."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def keypoint_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Euclidean distance between corresponding (K, 2) landmarks in frame units (AKD)."""
    return float(np.linalg.norm(a - b, axis=-1).mean())
