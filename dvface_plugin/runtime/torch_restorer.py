"""The torch backend: a loaded `DVFace` on a device, at a precision.

The model is not thread-safe (the diffusers Wan VAE keeps a feature cache on the module during
encode/decode); `TrackRestorer` serialises every model call with one lock.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import DVFaceError
from ..model.folders import resolve_model_folder
from .base import PriorState, TrackRestorer

if TYPE_CHECKING:
    from ..model.dvface import DVFace

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


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
    from ..model.dvface import DVFace

    return DVFace.from_pretrained(resolve_model_folder(spec))


class Restorer(TrackRestorer):
    """The torch backend: owns a `DVFace` module on a device at a precision."""

    backend = "torch"

    def __init__(self, model: DVFace, *, device: str | torch.device = "auto", precision: str = "auto") -> None:
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.dtype = PRECISIONS[self.precision]
        self.model = model.eval().to(device=self.device, dtype=self.dtype)
        super().__init__([self.model])  # one stream: torch parallelises inside a call
        self.config = model.config
        ident = f"{model.weights_digest()}|{self.precision}|{self.device.type}|torch"
        self.identity = hashlib.blake2b(ident.encode(), digest_size=16).hexdigest()

    @classmethod
    def load(
        cls, model: str | Path | None = None, *, device: str | torch.device = "auto", precision: str = "auto"
    ) -> "Restorer":
        """Load `model` (folder or bundled name; None: the bundled default)."""
        return cls(load_model(model), device=device, precision=precision)

    def _encode(self, model: DVFace, pixels: np.ndarray) -> PriorState:
        x = torch.from_numpy(np.ascontiguousarray(pixels))  # (T, H, W, 3)
        x = x.permute(3, 0, 1, 2).unsqueeze(0).to(device=self.device, dtype=self.dtype)
        with torch.inference_mode():
            latent = model.encode(x)
            return PriorState(latent, model.encode_priors(latent))

    def _decode(self, model: DVFace, state: PriorState, prior_scale: float) -> np.ndarray:
        with torch.inference_mode():
            y = model.restore_latent(state.latent, state.priors, prior_scale=prior_scale)
        return y[0].float().permute(1, 2, 3, 0).contiguous().cpu().numpy()
