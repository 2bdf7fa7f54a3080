"""A loaded DVFace model on a device, at a precision and backend, behind one lock.

The model is not thread-safe (the diffusers Wan VAE keeps a feature cache on the module during
encode/decode), so every model call goes through `Restorer._lock`; hosts' threads may still fetch
crops, hash, blend and wait concurrently.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from ..errors import DVFaceError, WeightsError
from .pixels import to_model

if TYPE_CHECKING:
    from ..model import DVFace, Latent
    from ..prior import PriorFeatures
    from .session import FaceTrackSession

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
DEFAULT_MODEL = "dvface-tiny"
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
BACKENDS = ("eager",)


@dataclass(frozen=True)
class PriorState:
    """What a window's `prior_scale` changes leave untouched: its latent and prior features."""

    latent: Latent
    priors: PriorFeatures

    @property
    def nbytes(self) -> int:
        return self.latent.nbytes + self.priors.nbytes


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`auto` picks CUDA, then Apple MPS, then CPU; explicit devices are checked, not assumed."""
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise DVFaceError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DVFaceError(f"device {device!r} asked for, but this torch build sees no CUDA GPU; use --device cpu")
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise DVFaceError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s) visible")
        return torch.device("cuda", index)
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise DVFaceError("device 'mps' asked for, but Apple MPS is not available; use --device cpu")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise DVFaceError(f"device type {dev.type!r} is not supported; use auto, cpu, cuda or cuda:N")
    return dev


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto`: fp32 on CPU (half types are slow there), bf16 on GPUs that have it, else fp16."""
    if precision == "auto":
        if device.type == "cpu":
            return "fp32"
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return "bf16"
        return "fp16"
    if precision not in PRECISIONS:
        raise DVFaceError(f"unknown precision {precision!r}; choose auto, {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type == "cpu":
        raise DVFaceError("fp16 is not supported on cpu; use fp32 or bf16")
    if precision == "bf16" and (
        device.type == "mps" or (device.type == "cuda" and not torch.cuda.is_bf16_supported())
    ):
        raise DVFaceError(f"bf16 is not supported on {device}; use fp16 or fp32")
    return precision


def load_model(spec: str | Path | None = None) -> DVFace:
    """A model from a folder (config.json + safetensors) or a bundled name under models/."""
    from ..model import DVFace

    spec = DEFAULT_MODEL if spec is None or str(spec) == "" else spec
    path = Path(spec).expanduser()
    if path.is_dir():
        return DVFace.from_pretrained(path)
    if path.exists():
        raise WeightsError(f"--model {spec}: expected a model folder holding config.json and weights, got a file")
    looks_like_path = any(sep in str(spec) for sep in ("/", "\\")) or str(spec).startswith(".")
    if looks_like_path:
        raise WeightsError(f"model folder {path} not found; pass --model FOLDER holding config.json and weights")
    folder = MODELS_DIR / str(spec)
    if folder.is_dir():
        return DVFace.from_pretrained(folder)
    hint = (
        f"the bundled default model {DEFAULT_MODEL!r} comes with a later release of dvface"
        if str(spec) == DEFAULT_MODEL
        else "check the name"
    )
    raise WeightsError(
        f"model {str(spec)!r} not found: no folder {folder}; {hint}; until then pass "
        "--model FOLDER with a model folder (config.json + dvface.safetensors, as written by save_pretrained)"
    )


class Restorer:
    """Owns a model, its device, precision and backend; restores aligned face tracks.

    The model is moved to the device and precision in place: hand each Restorer its own model.
    """

    def __init__(
        self,
        model: DVFace,
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        backend: str = "eager",
    ) -> None:
        if backend not in BACKENDS:
            raise DVFaceError(f"backend {backend!r} is not available; choose one of {BACKENDS}")
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.backend = backend
        self.dtype = PRECISIONS[self.precision]
        self._lock = threading.Lock()
        self.model = model.eval().to(device=self.device, dtype=self.dtype)
        self.config = model.config
        ident = f"{model.weights_digest()}|{self.precision}|{self.device.type}|{backend}"
        self.identity = hashlib.blake2b(ident.encode(), digest_size=16).hexdigest()

    @classmethod
    def load(
        cls,
        model: str | Path | None = None,
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        backend: str = "eager",
    ) -> "Restorer":
        """Load `model` (folder or bundled name; None: the bundled default)."""
        return cls(load_model(model), device=device, precision=precision, backend=backend)

    def encode(self, crops: np.ndarray) -> PriorState:
        """Latent and prior features of one window of host crops (T, H, W, 3)."""
        x = self._to_tensor(crops)
        with self._lock, torch.inference_mode():
            latent = self.model.encode(x)
            priors = self.model.encode_priors(latent)
        return PriorState(latent, priors)

    def decode(self, state: PriorState, prior_scale: float = 1.0) -> np.ndarray:
        """Restored window as float32 (T, H, W, 3) in [-1, 1], from cached latent and priors."""
        with self._lock, torch.inference_mode():
            y = self.model.restore_latent(state.latent, state.priors, prior_scale=prior_scale)
        out = y[0].float().permute(1, 2, 3, 0).contiguous().cpu().numpy()
        if not np.isfinite(out).all():
            raise DVFaceError(
                f"the model produced NaN/Inf at precision {self.precision}; use --precision fp32 or bf16"
            )
        return out

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

    def _to_tensor(self, crops: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(to_model(crops)))  # (T, H, W, 3)
        return x.permute(3, 0, 1, 2).unsqueeze(0).to(device=self.device, dtype=self.dtype)
