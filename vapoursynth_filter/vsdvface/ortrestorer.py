"""The engine's ONNX restorer (onnxruntime or OpenVINO), shaped by the export it runs and able to run in parallel.

An ONNX export has a fixed window length and crop size (`dvface export onnx --frames --size`),
which may be smaller than the model config's; the sessions must then use the export's, so
`config` here carries them. Its streams are the core's (`ort_restorer.plan_streams`): on
onnxruntime's CPU provider two sessions splitting the cores, kept busy together by the filter's
prefetching of the next window; on OpenVINO one on every core (docs/benchmarks.md).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path

from dvface_plugin.errors import WeightsError
from dvface_plugin.model.folders import DEFAULT_MODEL, MODELS_DIR, resolve_model_folder
from dvface_plugin.runtime.onnx_format import MANIFEST_NAME
from dvface_plugin.runtime.onnx_model import CPU, OrtModel, ensure_onnx, import_onnxruntime, resolve_providers
from dvface_plugin.runtime.openvino_model import OPENVINO
from dvface_plugin.runtime.ort_restorer import OrtRestorer, open_streams, providers_for

BACKENDS = ("auto", "cpu", "cuda", "tensorrt", "openvino")
MODEL_ENV = "DVFACE_MODEL"


class StreamedOrtRestorer(OrtRestorer):
    def __init__(self, models: list[OrtModel]) -> None:
        super().__init__(models)
        model = models[0]
        frames, height, width = model.shape
        if height != width:
            raise WeightsError(f"{model.folder}: the export's crops are {height}x{width}; DVFace crops are square")
        cfg = model.config
        overlap = min(cfg.overlap, max_overlap(frames, cfg.vae_temporal_stride))
        self.config = dataclasses.replace(cfg, window=frames, overlap=overlap, crop_size=height)
        # Short windows are padded up to the export's length, which changes their result.
        self.identity = f"{self.identity}|{frames}x{height}x{width}"


def max_overlap(window: int, quantum: int) -> int:
    """Largest overlap the engine's window grid accepts for this window length."""
    return max(0, (window - quantum + 1) // 2)


def resolve_model(model: str | os.PathLike | None) -> Path:
    """An ONNX export folder, or a model folder (config.json + weights); None: $DVFACE_MODEL or the bundled one."""
    spec = model if model is not None else os.environ.get(MODEL_ENV) or DEFAULT_MODEL
    path = Path(spec).expanduser()
    if path.is_dir() and (path / MANIFEST_NAME).is_file():
        return path
    try:
        path = resolve_model_folder(spec)
    except WeightsError as exc:
        raise WeightsError(
            f"{exc}; or pass an ONNX export folder (`dvface export onnx --model M -o DIR`), or set ${MODEL_ENV}"
        ) from None
    if not (path / "config.json").is_file():
        raise WeightsError(
            f"{path} holds neither {MANIFEST_NAME} (an ONNX export) nor config.json (a model folder); "
            f"export the model with `dvface export onnx --model M -o DIR` and pass model=DIR (see {MODELS_DIR})"
        )
    return path


def onnx_folder(model: Path, fp16: bool) -> Path:
    """The export to run: `model` itself, or the model folder's shipped/cached export (made once if torch is here).

    fp16 is only a speed-up: without torch to make a missing fp16 export, the fp32 one is used.
    """
    if (model / MANIFEST_NAME).is_file():
        return model
    try:
        return ensure_onnx(model, precision="fp16" if fp16 else "fp32")
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        if fp16:
            return onnx_folder(model, fp16=False)
        raise WeightsError(
            f"{model} has no ONNX export (in onnx/ or the dvface cache) and exporting needs torch, which this "
            f"environment lacks; export it where torch is installed: `dvface export onnx --model {model} -o "
            f"{model / 'onnx'}`"
        ) from None


def load_restorer(
    model: str | os.PathLike | None, backend: str, device_index: int, num_streams: int | None, half: bool
) -> StreamedOrtRestorer:
    """The restorer for these settings (an fp16 export when the clip is half float and on a GPU);
    num_streams None: as many as `plan_streams` gives this provider. `auto` takes TensorRT, then CUDA,
    then OpenVINO where it is installed (several times onnxruntime's CPU speed on CPUs with AMX),
    then onnxruntime's CPU provider."""
    providers, _ = providers_for(backend)
    gpu = providers != [OPENVINO] and resolve_providers(
        providers, import_onnxruntime().get_available_providers())[0] != CPU
    if providers is None and not gpu and importlib.util.find_spec("openvino") is not None:
        providers = [OPENVINO]
    folder = onnx_folder(resolve_model(model), fp16=half and gpu)
    return StreamedOrtRestorer(open_streams(folder, providers, device_index, num_streams))
