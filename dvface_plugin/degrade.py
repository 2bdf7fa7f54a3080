"""Seeded synthetic degradation of face clips, for training pairs and controlled benchmarks.

A clip is a numpy array (T, H, W, 3), RGB, either uint8 or float32 in [0, 1]. The pipeline
follows the classic video-restoration model  x = up( codec( jpeg( down(k * y) + n ) ) ):
blur at full resolution, downscale, add sensor noise, compress (JPEG and/or a real video codec,
at the low resolution as a real camera or upload would), then upscale back to the input size.

Archival footage degrades consistently over a shot, so every parameter is drawn once per clip
and then varies only slowly and slightly from frame to frame (``DegradationConfig.jitter``).
All randomness comes from one ``numpy.random.Generator`` seeded by ``degrade_clip``'s seed, and
the video codecs run single-threaded into raw elementary streams, so the same seed gives
bit-identical output.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from .errors import InputError

BLUR_KINDS = ("iso", "aniso", "motion")
NOISE_KINDS = ("gaussian", "poisson")
CODECS = ("h264", "mpeg2")
INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}

Range = tuple[float, float]


@dataclass(frozen=True)
class DegradationConfig:
    """Distribution of degradations. Each ``*_prob`` switches a stage on per clip; each range
    ``(lo, hi)`` is sampled uniformly once per clip (use ``lo == hi`` for a fixed value).

    Units: blur sigma and motion length in pixels of the input; ``noise_sigma`` in 8-bit levels
    (sigma / 255 in [0, 1] units); ``poisson_peak`` is the photon count at white (lower means
    noisier); ``mpeg2_bpp`` in bits per pixel per frame (so it scales with the low resolution);
    ``jitter`` is the largest relative per-frame deviation of sigma, noise and JPEG quality.
    """

    name: str = "custom"
    blur_prob: float = 1.0
    blur_kinds: tuple[str, ...] = BLUR_KINDS
    blur_sigma: Range = (0.2, 3.0)
    motion_length: Range = (3.0, 11.0)
    scale: Range = (1.0, 4.0)
    down_interp: tuple[str, ...] = ("area", "bilinear", "bicubic")
    up_interp: tuple[str, ...] = ("bicubic",)
    noise_prob: float = 1.0
    noise_kinds: tuple[str, ...] = NOISE_KINDS
    noise_sigma: Range = (0.0, 10.0)
    poisson_peak: Range = (100.0, 1000.0)
    jpeg_prob: float = 0.0
    jpeg_quality: Range = (40.0, 95.0)
    codec_prob: float = 1.0
    codecs: tuple[str, ...] = ("h264",)
    h264_crf: Range = (18.0, 25.0)
    mpeg2_bpp: Range = (0.1, 0.4)
    jitter: float = 0.05
    fps: int = 24

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name.endswith("_prob") and not 0.0 <= value <= 1.0:
                raise InputError(f"degradation {field.name}={value}: must lie in [0, 1]")
            if field.type == "Range" and (len(value) != 2 or value[0] > value[1] or value[0] < 0):
                raise InputError(f"degradation {field.name}={value}: "
                                 "give (lo, hi) with 0 <= lo <= hi")
        allowed = {"blur_kinds": BLUR_KINDS, "noise_kinds": NOISE_KINDS, "codecs": CODECS,
                   "down_interp": tuple(INTERPOLATIONS), "up_interp": tuple(INTERPOLATIONS)}
        for name, choices in allowed.items():
            values = getattr(self, name)
            bad = [v for v in values if v not in choices]
            if not values or bad:
                raise InputError(f"degradation {name}={values}: choose one or more of {choices}")
        if self.scale[0] < 1.0 or self.scale[1] > 8.0:
            raise InputError(f"degradation scale={self.scale}: factors must lie in [1, 8]")
        if self.jpeg_quality[0] < 1.0 or self.jpeg_quality[1] > 100.0:
            raise InputError(f"degradation jpeg_quality={self.jpeg_quality}: must lie in [1, 100]")
        if self.h264_crf[1] > 51:
            raise InputError(f"degradation h264_crf={self.h264_crf}: CRF must lie in [0, 51]")
        if not 0.0 <= self.jitter < 1.0:
            raise InputError(f"degradation jitter={self.jitter}: must lie in [0, 1)")
        if self.poisson_peak[0] <= 0 or self.fps <= 0:
            raise InputError("degradation poisson_peak and fps must be positive")

    @classmethod
    def preset(cls, name: str) -> DegradationConfig:
        """One of ``PRESETS``: light, medium, heavy, vfhq-like."""
        if name not in PRESETS:
            raise InputError(f"unknown degradation preset {name!r}; "
                             f"choose one of {sorted(PRESETS)}")
        return PRESETS[name]

    def to_dict(self) -> dict[str, Any]:
        items = dataclasses.asdict(self).items()
        return {k: list(v) if isinstance(v, tuple) else v for k, v in items}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DegradationConfig:
        """Build from a dict; a ``preset`` key starts from that preset and overrides the rest."""
        data = dict(data)
        base = cls.preset(data.pop("preset")).to_dict() if "preset" in data else {}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown degradation keys {unknown}; valid keys are {sorted(known)}")
        base.update(data)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in base.items()})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> DegradationConfig:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read degradation config {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise InputError(f"degradation config {path} must hold a JSON object")
        return cls.from_dict(data)


PRESETS: dict[str, DegradationConfig] = {
    # Mild softening and a good-quality encode: a recent but over-compressed web video.
    "light": DegradationConfig(
        name="light", blur_prob=0.7, blur_kinds=("iso",), blur_sigma=(0.2, 1.2),
        scale=(1.0, 2.0), noise_prob=0.5, noise_kinds=("gaussian",), noise_sigma=(0.0, 4.0),
        jpeg_prob=0.3, jpeg_quality=(70.0, 95.0), codec_prob=0.7, codecs=("h264",),
        h264_crf=(18.0, 25.0)),
    # Typical low-quality footage: moderate blur, x1-x4, noise, H.264 or MPEG-2.
    "medium": DegradationConfig(
        name="medium", blur_prob=0.9, blur_kinds=("iso", "aniso"), blur_sigma=(0.5, 2.5),
        scale=(1.0, 4.0), noise_prob=0.8, noise_sigma=(1.0, 10.0), poisson_peak=(100.0, 800.0),
        jpeg_prob=0.3, jpeg_quality=(50.0, 90.0), codec_prob=0.9, codecs=("h264", "mpeg2"),
        h264_crf=(22.0, 32.0), mpeg2_bpp=(0.15, 0.5)),
    # Archival / surveillance grade: strong blur incl. motion, x2-x8, heavy noise and codec.
    "heavy": DegradationConfig(
        name="heavy", blur_prob=1.0, blur_kinds=BLUR_KINDS, blur_sigma=(1.0, 4.0),
        motion_length=(5.0, 15.0), scale=(2.0, 8.0), noise_prob=1.0, noise_sigma=(5.0, 20.0),
        poisson_peak=(20.0, 200.0), jpeg_prob=0.5, jpeg_quality=(25.0, 70.0), codec_prob=1.0,
        codecs=("h264", "mpeg2"), h264_crf=(30.0, 40.0), mpeg2_bpp=(0.05, 0.2)),
    # Close to the VFHQ-Test synthetic protocol the paper evaluates on: Gaussian blur
    # sigma 0.2-3, bicubic x4, Gaussian noise 0-10 levels, H.264 CRF 18-25, bicubic back up.
    "vfhq-like": DegradationConfig(
        name="vfhq-like", blur_prob=1.0, blur_kinds=("iso",), blur_sigma=(0.2, 3.0),
        scale=(4.0, 4.0), down_interp=("bicubic",), up_interp=("bicubic",), noise_prob=1.0,
        noise_kinds=("gaussian",), noise_sigma=(0.0, 10.0), jpeg_prob=0.0, codec_prob=1.0,
        codecs=("h264",), h264_crf=(18.0, 25.0)),
}


# --------------------------------------------------------------------------- clip helpers


def to_float(clip: np.ndarray) -> np.ndarray:
    """(T,H,W,3) uint8 or float in [0,1] -> float32 [0,1] (a copy)."""
    clip = np.asarray(clip)
    if clip.ndim != 4 or clip.shape[-1] != 3:
        raise InputError(f"expected a clip of shape (T, H, W, 3), got {clip.shape}")
    if clip.dtype == np.uint8:
        return clip.astype(np.float32) / 255.0
    if not np.issubdtype(clip.dtype, np.floating):
        raise InputError(f"clip dtype {clip.dtype} unsupported; use uint8 or float in [0, 1]")
    return np.clip(clip, 0.0, 1.0).astype(np.float32)


def _to_uint8(clip: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(clip * 255.0), 0, 255).astype(np.uint8)


def _like(result: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Return float32 [0,1] ``result`` in the dtype of the caller's clip."""
    return _to_uint8(result) if np.asarray(reference).dtype == np.uint8 else result


def _per_frame(value: float | np.ndarray, length: int) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (length,))
    return arr.copy()


def frame_jitter(rng: np.random.Generator, length: int, amount: float) -> np.ndarray:
    """Multipliers in [1 - amount, 1 + amount] that drift smoothly over ``length`` frames.

    White noise low-passed over about 3 frames and normalised to unit variance, so the
    deviation does not depend on the clip length; clipped at 2 sigma."""
    pad = 9
    noise = rng.standard_normal(length + 2 * pad)
    taps = np.exp(-0.5 * (np.arange(-pad, pad + 1) / 3.0) ** 2)
    taps /= taps.sum()
    smooth = np.convolve(noise, taps, mode="valid")[:length] / math.sqrt(float(np.sum(taps**2)))
    return 1.0 + amount * np.clip(smooth, -2.0, 2.0) / 2.0


# --------------------------------------------------------------------------- blur


def gaussian_kernel(sigma_x: float, sigma_y: float | None = None, theta: float = 0.0,
                    size: int | None = None) -> np.ndarray:
    """Normalised 2-D Gaussian; anisotropic when sigma_y differs, rotated by theta (radians)."""
    sigma_y = sigma_x if sigma_y is None else sigma_y
    sx, sy = max(sigma_x, 1e-3), max(sigma_y, 1e-3)
    size = size or 2 * math.ceil(3 * max(sx, sy)) + 1
    half = size // 2
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float64)
    c, s = math.cos(theta), math.sin(theta)
    u, v = c * xx + s * yy, -s * xx + c * yy
    kernel = np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return (kernel / kernel.sum()).astype(np.float32)


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """Normalised linear motion-blur kernel of ``length`` pixels at ``angle`` (radians),
    drawn as an anti-aliased line so sub-pixel lengths and angles change it smoothly."""
    length = max(length, 1.0)
    size = 2 * math.ceil(length / 2) + 1
    half = size // 2
    kernel = np.zeros((size, size), np.float64)
    steps = max(4 * size, 16)
    for t in np.linspace(-length / 2, length / 2, steps):
        x, y = half + t * math.cos(angle), half + t * math.sin(angle)
        x0, y0 = math.floor(x), math.floor(y)
        fx, fy = x - x0, y - y0
        for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                          (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            if 0 <= x0 + dx < size and 0 <= y0 + dy < size:
                kernel[y0 + dy, x0 + dx] += w
    return (kernel / kernel.sum()).astype(np.float32)


def _filter(clip: np.ndarray, kernels: list[np.ndarray]) -> np.ndarray:
    out = np.empty_like(clip)
    for t, kernel in enumerate(kernels):
        out[t] = cv2.filter2D(clip[t], -1, kernel, borderType=cv2.BORDER_REFLECT_101)
    return out


def gaussian_blur(clip: np.ndarray, sigma_x: float | np.ndarray,
                  sigma_y: float | np.ndarray | None = None,
                  theta: float | np.ndarray = 0.0) -> np.ndarray:
    """Isotropic (sigma_y None) or anisotropic Gaussian blur; parameters scalar or per frame."""
    x = to_float(clip)
    n = len(x)
    sx = _per_frame(sigma_x, n)
    sy = sx if sigma_y is None else _per_frame(sigma_y, n)
    th = _per_frame(theta, n)
    return _like(_filter(x, [gaussian_kernel(sx[t], sy[t], th[t]) for t in range(n)]), clip)


def motion_blur(clip: np.ndarray, length: float | np.ndarray,
                angle: float | np.ndarray) -> np.ndarray:
    """Linear camera/subject motion blur; ``length`` in pixels, ``angle`` in radians."""
    x = to_float(clip)
    n = len(x)
    ln, an = _per_frame(length, n), _per_frame(angle, n)
    return _like(_filter(x, [motion_kernel(ln[t], an[t]) for t in range(n)]), clip)


# --------------------------------------------------------------------------- noise


def gaussian_noise(clip: np.ndarray, sigma: float | np.ndarray, rng: np.random.Generator,
                   gray: bool = False) -> np.ndarray:
    """Additive white Gaussian noise; ``sigma`` in 8-bit levels, scalar or per frame.
    ``gray`` adds the same noise to all three channels (luma-only sensor noise)."""
    x = to_float(clip)
    sig = _per_frame(sigma, len(x)).astype(np.float32)[:, None, None, None] / 255.0
    shape = x.shape[:3] + ((1,) if gray else (3,))
    noise = rng.standard_normal(shape, dtype=np.float32) * sig
    return _like(np.clip(x + noise, 0.0, 1.0), clip)


def poisson_noise(clip: np.ndarray, peak: float | np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """Shot noise: photon counts ~ Poisson(x * peak), so dark areas are relatively noisier."""
    x = to_float(clip)
    pk = _per_frame(peak, len(x))[:, None, None, None]
    counts = rng.poisson(x.astype(np.float64) * pk)
    return _like(np.clip(counts / pk, 0.0, 1.0).astype(np.float32), clip)


# --------------------------------------------------------------------------- resampling


def resize(clip: np.ndarray, height: int, width: int, interp: str = "bicubic") -> np.ndarray:
    """Resize every frame to (height, width); ``interp`` names one of INTERPOLATIONS."""
    x = to_float(clip)
    flag = INTERPOLATIONS[interp]
    out = np.stack([cv2.resize(f, (width, height), interpolation=flag) for f in x])
    return _like(np.clip(out, 0.0, 1.0), clip)


def _low_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """Low-resolution size for a downscale factor, even so yuv420p codecs accept it."""
    return (max(2, 2 * round(height / scale / 2)), max(2, 2 * round(width / scale / 2)))


def downscale(clip: np.ndarray, scale: float, down_interp: str = "bicubic",
              up_interp: str = "bicubic") -> np.ndarray:
    """Downscale by ``scale`` (1-8) and back up to the input size: detail above the low
    resolution's Nyquist limit is lost."""
    x = to_float(clip)
    h, w = x.shape[1:3]
    low = resize(x, *_low_size(h, w, scale), interp=down_interp)
    return _like(resize(low, h, w, interp=up_interp), clip)


# --------------------------------------------------------------------------- compression


def jpeg(clip: np.ndarray, quality: float | np.ndarray) -> np.ndarray:
    """Per-frame JPEG round trip through OpenCV at ``quality`` (1-100, scalar or per frame)."""
    x = _to_uint8(to_float(clip))
    q = np.clip(np.rint(_per_frame(quality, len(x))), 1, 100).astype(int)
    out = np.empty_like(x)
    for t, frame in enumerate(x):
        ok, buf = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(q[t])])
        if not ok:
            raise InputError("OpenCV could not JPEG-encode a frame")
        out[t] = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return out if np.asarray(clip).dtype == np.uint8 else out.astype(np.float32) / 255.0


def _codec_roundtrip(frames: np.ndarray, codec: str, fps: int, options: dict[str, str],
                     bit_rate: int | None) -> np.ndarray:
    """Encode uint8 frames into an in-memory raw elementary stream and decode them back.

    Raw streams (no container) and one encoder thread keep the bytes reproducible: container
    headers carry muxing dates, and threaded x264 slices depend on scheduling. Frames are
    edge-padded to multiples of 16 (cropped after decoding) so both codecs code whole
    macroblocks of real content."""
    encoder, fmt = {"h264": ("libx264", "h264"), "mpeg2": ("mpeg2video", "mpeg2video")}[codec]
    t, h, w, _ = frames.shape
    pad_h, pad_w = -h % 16, -w % 16
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as out:
        stream = out.add_stream(encoder, rate=fps, options=options)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        if bit_rate is not None:
            stream.bit_rate = bit_rate
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            vf.pts = i
            out.mux(stream.encode(vf))
        out.mux(stream.encode())
    with av.open(io.BytesIO(buf.getvalue()), mode="r", format=fmt) as inp:
        decoded = [f.to_ndarray(format="rgb24") for f in inp.decode(video=0)]
    if len(decoded) != t:
        raise InputError(f"{codec} round trip returned {len(decoded)} of {t} frames")
    return np.stack(decoded)[:, :h, :w]


def h264(clip: np.ndarray, crf: float, preset: str = "medium", fps: int = 24) -> np.ndarray:
    """Real H.264 (libx264) compression at constant rate factor ``crf`` (0 best - 51 worst).

    x264 runs single-threaded and without its assembly kernels (``asm=0``): with them, the
    x264 bundled in PyAV 18 gave different bytes for the same input in a few percent of runs
    (measured here), which would break seeded reproducibility. The C path is exact and fast
    enough at the low resolutions the pipeline encodes."""
    x = _to_uint8(to_float(clip))
    options = {"crf": str(int(round(crf))), "preset": preset, "threads": "1",
               "x264-params": "asm=0"}
    out = _codec_roundtrip(x, "h264", fps, options, None)
    return out if np.asarray(clip).dtype == np.uint8 else out.astype(np.float32) / 255.0


def mpeg2(clip: np.ndarray, bitrate_kbps: float, fps: int = 24) -> np.ndarray:
    """Real MPEG-2 compression at an average bitrate (kbit/s): DVD/broadcast-era blocking."""
    x = _to_uint8(to_float(clip))
    out = _codec_roundtrip(x, "mpeg2", fps, {}, int(bitrate_kbps * 1000))
    return out if np.asarray(clip).dtype == np.uint8 else out.astype(np.float32) / 255.0


# --------------------------------------------------------------------------- pipeline


@dataclass(frozen=True)
class DegradationPlan:
    """The concrete parameters drawn for one clip; per-frame arrays have length T."""

    blur: str | None
    blur_sigma_x: np.ndarray
    blur_sigma_y: np.ndarray
    blur_theta: np.ndarray
    scale: float
    down_interp: str
    up_interp: str
    noise: str | None
    noise_level: np.ndarray
    noise_gray: bool
    jpeg_quality: np.ndarray | None
    codec: str | None
    codec_value: float


def _uniform(rng: np.random.Generator, bounds: Range) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _choice(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def sample_plan(config: DegradationConfig, length: int,
                rng: np.random.Generator) -> DegradationPlan:
    """Draw one clip's parameters. Every draw happens whether or not its stage is on, so
    toggling one stage in a config does not reshuffle the parameters of the others."""
    jit = config.jitter
    use_blur = rng.random() < config.blur_prob
    blur_kind = _choice(rng, config.blur_kinds)
    sigma = _uniform(rng, config.blur_sigma)
    sigma2 = _uniform(rng, config.blur_sigma)
    theta = _uniform(rng, (0.0, math.pi))
    motion = _uniform(rng, config.motion_length)
    sx_jit, sy_jit = frame_jitter(rng, length, jit), frame_jitter(rng, length, jit)
    th_jit = frame_jitter(rng, length, jit)
    if blur_kind == "iso":
        bx, by, bt = sigma * sx_jit, sigma * sx_jit, np.zeros(length)
    elif blur_kind == "aniso":
        bx, by, bt = sigma * sx_jit, sigma2 * sy_jit, theta + (th_jit - 1.0) * math.pi / 4
    else:  # motion: length in sigma_x, angle in theta
        bx, by, bt = motion * sx_jit, np.zeros(length), theta + (th_jit - 1.0) * math.pi / 4

    scale = _uniform(rng, config.scale)
    down_interp, up_interp = _choice(rng, config.down_interp), _choice(rng, config.up_interp)

    use_noise = rng.random() < config.noise_prob
    noise_kind = _choice(rng, config.noise_kinds)
    level = (_uniform(rng, config.noise_sigma) if noise_kind == "gaussian"
             else _uniform(rng, config.poisson_peak))
    gray = bool(rng.random() < 0.3)
    noise_level = level * frame_jitter(rng, length, jit)

    use_jpeg = rng.random() < config.jpeg_prob
    quality = _uniform(rng, config.jpeg_quality) * frame_jitter(rng, length, jit)

    use_codec = rng.random() < config.codec_prob
    codec = _choice(rng, config.codecs)
    value = _uniform(rng, config.h264_crf if codec == "h264" else config.mpeg2_bpp)

    return DegradationPlan(
        blur=blur_kind if use_blur else None, blur_sigma_x=bx, blur_sigma_y=by, blur_theta=bt,
        scale=scale, down_interp=down_interp, up_interp=up_interp,
        noise=noise_kind if use_noise else None, noise_level=noise_level, noise_gray=gray,
        jpeg_quality=np.clip(quality, 1, 100) if use_jpeg else None,
        codec=codec if use_codec else None, codec_value=value)


def apply_plan(clip: np.ndarray, plan: DegradationPlan, rng: np.random.Generator,
               fps: int = 24) -> np.ndarray:
    """Run the pipeline blur -> downscale -> noise -> JPEG -> codec -> upscale for a plan."""
    x = to_float(clip)
    h, w = x.shape[1:3]
    if plan.blur == "motion":
        x = motion_blur(x, plan.blur_sigma_x, plan.blur_theta)
    elif plan.blur is not None:
        x = gaussian_blur(x, plan.blur_sigma_x, plan.blur_sigma_y, plan.blur_theta)
    low_h, low_w = _low_size(h, w, plan.scale) if plan.scale > 1.0 else (h, w)
    if (low_h, low_w) != (h, w):
        x = resize(x, low_h, low_w, plan.down_interp)
    if plan.noise == "gaussian":
        x = gaussian_noise(x, plan.noise_level, rng, gray=plan.noise_gray)
    elif plan.noise == "poisson":
        x = poisson_noise(x, plan.noise_level, rng)
    if plan.jpeg_quality is not None:
        x = jpeg(x, plan.jpeg_quality)
    if plan.codec == "h264":
        x = h264(x, plan.codec_value, fps=fps)
    elif plan.codec == "mpeg2":
        x = mpeg2(x, plan.codec_value * x.shape[1] * x.shape[2] * fps / 1000.0, fps=fps)
    if x.shape[1:3] != (h, w):
        x = resize(x, h, w, plan.up_interp)
    return _like(x, clip)


def degrade_clip(clip: np.ndarray, config: DegradationConfig | str, seed: int) -> np.ndarray:
    """Degrade a clip (T,H,W,3 uint8 or float32 [0,1]); same seed -> bit-identical output,
    returned in the input's dtype and shape."""
    if isinstance(config, str):
        config = DegradationConfig.preset(config)
    x = to_float(clip)
    rng = np.random.default_rng(seed)
    plan = sample_plan(config, len(x), rng)
    return _like(apply_plan(x, plan, rng, fps=config.fps), clip)
