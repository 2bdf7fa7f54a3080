"""The onnxruntime backend: a model's ONNX export, with no torch in the process.

The export is found in the model folder (`onnx/`, shipped) or in the user cache; exporting one
needs torch, so a torch-free environment must be given a model that ships its export (or one
exported elsewhere with `dvface export onnx`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ..errors import DVFaceError, WeightsError
from ..model.folders import resolve_model_folder
from .base import PriorState, TrackRestorer
from .onnx_model import OrtModel, ensure_onnx
from .pixels import to_model


def providers_for(device: str) -> tuple[list[str] | None, int]:
    """Map the engine's device names to onnxruntime providers: auto, cpu, cuda, cuda:N, tensorrt[:N]."""
    name, _, index = str(device).partition(":")
    if name == "auto":
        return None, 0
    if name == "cpu":
        return ["cpu"], 0
    if name in ("cuda", "tensorrt", "trt"):
        return [name, "cpu"], int(index or 0)
    raise DVFaceError(f"unknown device {device!r} for the ort backend; use auto, cpu, cuda[:N] or tensorrt[:N]")


class OrtRestorer(TrackRestorer):
    backend = "onnxruntime"

    def __init__(self, model: OrtModel) -> None:
        super().__init__()
        self.model = model
        self.config = model.config
        self.precision = model.precision
        self.device = model.providers[0]  # the onnxruntime execution provider that runs it
        self.identity = f"{model.weights_digest()}|{model.precision}|{model.providers[0]}|ort"

    @classmethod
    def load(
        cls, model: str | Path | None = None, *, device: str = "auto", precision: str = "auto", threads: int | None = None
    ) -> "OrtRestorer":
        if precision not in ("auto", "fp32", "fp16"):
            raise DVFaceError(f"precision {precision!r} is not available on the ort backend; use fp32 or fp16")
        folder = resolve_model_folder(model)
        fp16 = precision == "fp16"
        try:
            onnx_folder = ensure_onnx(folder, fp16=fp16)
        except ModuleNotFoundError as exc:
            if importlib.util.find_spec("torch") is not None:
                raise
            raise WeightsError(
                f"model {folder} has no {'fp16' if fp16 else 'fp32'} ONNX export and this environment has no torch "
                f"to make one: run `dvface export onnx --model {folder} -o {folder / 'onnx'}` where torch is "
                "installed, then use the model folder here"
            ) from exc
        providers, device_id = providers_for(device)
        return cls(OrtModel(onnx_folder, providers=providers, device_id=device_id, threads=threads))

    def _encode(self, crops: np.ndarray) -> PriorState:
        latent = self.model.encode(to_model(crops).transpose(3, 0, 1, 2)[None])
        return PriorState(latent, self.model.encode_priors(latent))

    def _decode(self, state: PriorState, prior_scale: float) -> np.ndarray:
        out = self.model.restore_latent(state.latent, state.priors, prior_scale)
        return np.ascontiguousarray(out[0].transpose(1, 2, 3, 0), dtype=np.float32)
