"""What every restorer backend shares, and how one is chosen; imports no torch.

A backend turns one window of host crops into cached state (`encode`) and restored crops
(`decode`). `torch` runs the `DVFace` module (`restorer.Restorer`); `ort` runs its ONNX export on
onnxruntime (`ort_restorer.OrtRestorer`) and needs neither torch nor diffusers, which is what
VapourSynth's Python and farm nodes can install.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..errors import DVFaceError, InputError, WeightsError
from .stabilise import stabilise

if TYPE_CHECKING:
    from ..config import DVFaceConfig
    from .session import FaceTrackSession

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
DEFAULT_MODEL = "dvface-tiny"
BACKENDS = ("auto", "torch", "ort")


@dataclass(frozen=True)
class PriorState:
    """What a window's `prior_scale` changes leave untouched: its latent and prior features."""

    latent: Any
    priors: Any

    @property
    def nbytes(self) -> int:
        return self.latent.nbytes + self.priors.nbytes


class TrackRestorer(ABC):
    """Base of the backends: a model behind one lock, restoring aligned face tracks.

    Subclasses set `config`, `identity` (everything that changes outputs, for cache keys),
    `device`, `precision` and implement `_encode` / `_decode`; the lock is taken here, so hosts' threads may fetch, hash
    and blend concurrently while model calls run one at a time.
    """

    config: DVFaceConfig
    identity: str
    device: Any  # where it runs: a torch.device, or an onnxruntime execution provider
    precision: str

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def encode(self, crops: np.ndarray) -> PriorState:
        """Latent and prior features of one window of host crops (T, H, W, 3)."""
        with self._lock:
            return self._encode(crops)

    def decode(self, state: PriorState, prior_scale: float = 1.0) -> np.ndarray:
        """Restored window as float32 (T, H, W, 3) in [-1, 1], from cached latent and priors."""
        with self._lock:
            out = self._decode(state, prior_scale)
        if not np.isfinite(out).all():
            raise DVFaceError(f"the model produced NaN/Inf ({self.identity}); use fp32 precision")
        return stabilise(out, self.config.stabilise) if self.config.stabilise else out

    def with_stabilise(self, radius: int) -> TrackRestorer:
        """This restorer with the model config's `stabilise` overridden: frames each side averaged
        along the optical flow after restoring (0 = off). It shares the model and its lock; the
        radius is part of `identity`, so a shared window cache never mixes the two. The model's own
        radius returns this restorer: the same output, so the same cache entries."""
        if not (isinstance(radius, int) and radius >= 0):
            raise InputError(f"stabilise must be a whole number of frames >= 0 (0 = off), got {radius!r}")
        if radius == self.config.stabilise:
            return self
        other = copy.copy(self)
        other.config = dataclasses.replace(self.config, stabilise=radius)
        other.identity = f"{self.identity}|stabilise={radius}"
        return other

    def restore(self, crops: np.ndarray, prior_scale: float = 1.0) -> np.ndarray:
        """Restore a whole in-memory track (N, H, W, 3) through the windowed engine; same dtype out."""
        crops = np.asarray(crops)
        if crops.ndim != 4:
            raise DVFaceError(f"expected a track of crops (N, H, W, 3), got shape {crops.shape}")
        with self.session(crops.__getitem__, len(crops), crop_size=crops.shape[1:3], prior_scale=prior_scale) as s:
            return s.frames(0, len(crops))

    def session(self, get_crop: Callable[[int], np.ndarray], n_frames: int, **kwargs) -> FaceTrackSession:
        """A `FaceTrackSession` over one aligned track on this restorer (see its arguments)."""
        from .session import FaceTrackSession

        return FaceTrackSession(self, get_crop, n_frames, **kwargs)

    @abstractmethod
    def _encode(self, crops: np.ndarray) -> PriorState: ...

    @abstractmethod
    def _decode(self, state: PriorState, prior_scale: float) -> np.ndarray: ...


def resolve_model_folder(spec: str | Path | None = None) -> Path:
    """A model folder from a path or a bundled name under models/ (None: the bundled default)."""
    spec = DEFAULT_MODEL if spec is None or str(spec) == "" else spec
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise WeightsError(f"--model {spec}: expected a model folder holding config.json and weights, got a file")
    looks_like_path = any(sep in str(spec) for sep in ("/", "\\")) or str(spec).startswith(".")
    if looks_like_path:
        raise WeightsError(f"model folder {path} not found; pass --model FOLDER holding config.json and weights")
    folder = MODELS_DIR / str(spec)
    if folder.is_dir():
        return folder
    hint = (
        f"the bundled default model {DEFAULT_MODEL!r} is missing from this install: reinstall dvface from a "
        "full checkout (models/ is part of the repository)"
        if str(spec) == DEFAULT_MODEL
        else "check the name"
    )
    raise WeightsError(
        f"model {str(spec)!r} not found: no folder {folder}; {hint}, or pass "
        "--model FOLDER with a model folder (config.json + dvface.safetensors, as written by save_pretrained)"
    )


def open_restorer(
    model: str | Path | None = None,
    *,
    backend: str = "auto",
    device: str = "auto",
    precision: str = "auto",
    threads: int | None = None,
    window: int | None = None,
    stabilise: int | None = None,
) -> TrackRestorer:
    """The restorer for a model name or folder (`auto`: see `choose_backend`).

    threads: the model's intra-op threads (None: the library's default); torch's count is
    process-wide. window: the window length the caller will use (None: the model's), which
    `auto` needs because an ONNX export has a fixed window. stabilise: overrides the model's
    temporal stabilisation radius (None: the model's; see `TrackRestorer.with_stabilise`).
    """
    restorer = _open_backend(model, backend, device, precision, threads, window)
    return restorer if stabilise is None else restorer.with_stabilise(stabilise)


def _open_backend(
    model: str | Path | None, backend: str, device: str, precision: str, threads: int | None, window: int | None
) -> TrackRestorer:
    if backend not in BACKENDS:
        raise DVFaceError(f"backend {backend!r} is not available; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        backend = choose_backend(model, device, precision, window)
        if backend == "ort" and device == "auto" and importlib.util.find_spec("torch") is not None:
            device = "cpu"  # chosen because torch would run on the CPU
    if backend == "torch":
        if importlib.util.find_spec("torch") is None:
            raise DVFaceError("backend 'torch' needs PyTorch, which is not installed; use --backend ort")
        from .restorer import Restorer

        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        return Restorer.load(model, device=device, precision=precision)
    from .ort_restorer import OrtRestorer

    return OrtRestorer.load(model, device=device, precision=precision, threads=threads)


def choose_backend(model: str | Path | None, device: str, precision: str, window: int | None = None) -> str:
    """What `auto` runs: onnxruntime where torch would run fp32 on the CPU and the model has an export.

    On a CPU onnxruntime runs the bundled model about twice as fast as torch, with the same output
    to within one 8-bit level (docs/benchmarks.md, "Speed"). It needs an fp32 export of the
    window used, shipped in the model folder or cached (`dvface export onnx`); auto never exports.
    Without torch it is always onnxruntime; on a GPU, or for fp16/bf16, torch.
    """
    if importlib.util.find_spec("torch") is None:
        return "ort"
    from ..ort_backend import find_onnx, installed_runtimes

    if precision not in ("auto", "fp32") or len(installed_runtimes()) != 1:
        return "torch"
    if device == "auto":
        import torch

        if torch.cuda.is_available():
            return "torch"
    elif device != "cpu":
        return "torch"
    return "ort" if find_onnx(resolve_model_folder(model), frames=window) is not None else "torch"
