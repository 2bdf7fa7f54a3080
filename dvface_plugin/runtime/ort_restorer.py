"""The ONNX backends: a model's export on onnxruntime, or on OpenVINO's CPU runtime, with no torch.

The export is found in the model folder (`onnx/`, shipped) or in the user cache; exporting one
needs torch, so a torch-free environment must be given a model that ships its export (or one
exported elsewhere with `dvface export onnx`).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import DVFaceError, WeightsError
from ..model.folders import resolve_model_folder
from .base import PriorState, TrackRestorer
from .onnx_model import CPU, OrtModel, ensure_onnx, export_precision, import_onnxruntime, resolve_providers
from .openvino_model import OPENVINO, OvModel, openvino_precision


def providers_for(device: str) -> tuple[list[str] | None, int]:
    """Map the engine's device names to onnxruntime providers: auto, cpu, cuda, cuda:N, tensorrt[:N];
    `openvino` is OpenVINO's CPU runtime in place of onnxruntime (`openvino_model`)."""
    name, _, index = str(device).partition(":")
    if name == "auto":
        return None, 0
    if name == "cpu":
        return ["cpu"], 0
    if name == "openvino":
        return [OPENVINO], 0
    if name in ("cuda", "tensorrt", "trt"):
        return [name, "cpu"], int(index or 0)
    raise DVFaceError(
        f"unknown device {device!r} for the ort backend; use auto, cpu, cuda[:N], tensorrt[:N] or openvino"
    )


def plan_streams(provider: str, streams: int | None = None, threads: int | None = None) -> tuple[int, int | None]:
    """How many model copies may run at once, and each copy's intra-op threads.

    On the CPU provider the cores are split between the copies, two by default where there are
    two cores or more: two single-threaded calls side by side ran the model 1.18x faster than one call
    on both cores of the development machine (docs/benchmarks.md, "Several faces at once"),
    since one call's threads wait on each other between layers. `threads` is then the total (None:
    every core this process may use). On a GPU provider, one copy unless asked, on the library's
    default threads; on OpenVINO one copy on every core.
    """
    if streams is not None and streams < 1:
        raise DVFaceError(f"streams must be at least 1, got {streams}")
    if threads is not None and threads < 1:
        raise DVFaceError(f"threads must be at least 1, got {threads}")
    if provider == OPENVINO:  # one copy on every core is OpenVINO's fastest (`OvModel`)
        return streams or 1, None if threads is None else max(1, threads // (streams or 1))
    if provider != CPU:
        return streams or 1, threads
    budget = threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    streams = streams or (2 if budget >= 2 else 1)
    return streams, max(1, budget // streams)


class OrtRestorer(TrackRestorer):
    """The ONNX backends: `streams` copies of one export, each its own onnxruntime session or
    OpenVINO compiled model."""

    def __init__(self, models: Sequence[OrtModel]) -> None:
        super().__init__(models)
        model = models[0]
        self.backend = model.runtime
        self.config = model.config
        self.precision = model.precision
        self.device = model.providers[0]  # the onnxruntime execution provider that runs it, or OpenVINO
        self.identity = f"{model.weights_digest()}|{model.precision}|{model.providers[0]}|ort"

    @classmethod
    def load(
        cls,
        model: str | Path | None = None,
        *,
        device: str = "auto",
        precision: str = "auto",
        threads: int | None = None,
        streams: int | None = None,
    ) -> "OrtRestorer":
        """The restorer of a model folder's export; `streams` and `threads` as `plan_streams` sets them.
        device `openvino` runs it on OpenVINO, in fp32, bf16 or int8 (`openvino_model.openvino_precision`);
        int8 runs the model's int8 export (`onnx_int8`) on either runtime."""
        providers, device_id = providers_for(device)
        if providers == [OPENVINO]:
            precision = openvino_precision(precision)  # refuse a bad precision before looking for an export
        elif precision not in ("auto", "fp32", "fp16", "int8"):
            raise DVFaceError(f"precision {precision!r} is not available on the ort backend; use fp32, fp16 or int8")
        folder = resolve_model_folder(model)
        export = export_precision(precision)
        try:
            onnx_folder = ensure_onnx(folder, precision=export)
        except ModuleNotFoundError as exc:
            if importlib.util.find_spec("torch") is not None:
                raise
            raise WeightsError(
                f"model {folder} has no {export} ONNX export and this environment has no torch "
                f"to make one: run `dvface export onnx --model {folder} -o {folder / 'onnx'}` where torch is "
                "installed, then use the model folder here"
            ) from exc
        return cls(open_streams(onnx_folder, providers, device_id, streams, threads, precision))

    def _encode(self, model: OrtModel, pixels: np.ndarray) -> PriorState:
        latent = model.encode(pixels.transpose(3, 0, 1, 2)[None])
        return PriorState(latent, model.encode_priors(latent))

    def _decode(self, model: OrtModel, state: PriorState, prior_scale: float) -> np.ndarray:
        out = model.restore_latent(state.latent, state.priors, prior_scale)
        return np.ascontiguousarray(out[0].transpose(1, 2, 3, 0), dtype=np.float32)


def open_streams(
    folder: Path,
    providers: list[str] | None,
    device_id: int = 0,
    streams: int | None = None,
    threads: int | None = None,
    precision: str = "auto",
) -> list[OrtModel]:
    """The export in `folder` opened once per stream (`plan_streams` decides how many, and their threads);
    `precision` is OpenVINO's (fp32, bf16 or int8), onnxruntime runs the export's own."""
    if providers == [OPENVINO]:
        count, per_stream = plan_streams(OPENVINO, streams, threads)
        return [OvModel(folder, precision=precision, threads=per_stream) for _ in range(count)]
    first = resolve_providers(providers, import_onnxruntime().get_available_providers())[0]
    count, per_stream = plan_streams(first, streams, threads)
    return [OrtModel(folder, providers=providers, device_id=device_id, threads=per_stream) for _ in range(count)]
