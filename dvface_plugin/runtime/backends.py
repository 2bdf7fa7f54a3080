"""How a backend is chosen and opened; imports no torch.

`torch` runs the `DVFace` module (`torch_restorer.Restorer`); `ort` runs its ONNX export on
onnxruntime and `openvino` the same export on OpenVINO's CPU runtime (`ort_restorer.OrtRestorer`),
neither needing torch nor diffusers, which is what VapourSynth's Python and farm nodes can install.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from pathlib import Path

from ..errors import DVFaceError
from ..model.folders import resolve_model_folder
from .base import TrackRestorer, check_grain

BACKENDS = ("auto", "torch", "ort", "openvino")
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")  # what --precision offers; each backend takes some


def open_restorer(
    model: str | Path | None = None,
    *,
    backend: str = "auto",
    device: str = "auto",
    precision: str = "auto",
    threads: int | None = None,
    window: int | None = None,
    stabilise: int | None = None,
    grain: float = 0.0,
    streams: int | None = None,
) -> TrackRestorer:
    """The restorer for a model name or folder (`auto`: see `choose_backend`).

    threads: the model's threads (None: the library's default; on onnxruntime's CPU provider every
    core, split between the streams); torch's count is process-wide. window: the window length the
    caller will use (None: the model's), which `auto` needs because an ONNX export has a fixed
    window. stabilise: overrides the model's temporal stabilisation radius (None: the model's; see
    `TrackRestorer.with_stabilise`). grain: how much of the input's grain goes back on the restored
    faces (`TrackRestorer.with_grain`). streams: copies of the model run side by side (None:
    `ort_restorer.plan_streams`' choice, two on a CPU; torch runs one); callers that ask for one
    window at a time should pass 1, the others keep them busy with `FaceTrackSession(ahead=...)`.
    """
    check_grain(grain)  # before a model is loaded
    restorer = _open_backend(model, backend, device, precision, threads, window, streams)
    return (restorer if stabilise is None else restorer.with_stabilise(stabilise)).with_grain(grain)


def _open_backend(
    model: str | Path | None,
    backend: str,
    device: str,
    precision: str,
    threads: int | None,
    window: int | None,
    streams: int | None,
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
        if streams not in (None, 1):
            raise DVFaceError(f"{streams} streams were asked for, but the torch backend runs one model call at a "
                              "time; use --backend ort, or --streams 1")
        from .torch_restorer import Restorer

        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        return Restorer.load(model, device=device, precision=precision)
    from .ort_restorer import OrtRestorer

    if backend == "openvino":
        if device not in ("auto", "cpu"):
            raise DVFaceError(f"the openvino backend runs on the CPU, not {device!r}; use --device cpu, or "
                              "--backend ort for a GPU")
        device = "openvino"
    return OrtRestorer.load(model, device=device, precision=precision, threads=threads, streams=streams)


def describe(restorer: TrackRestorer) -> str:
    """Which backend, device and precision run the model, as a user reads it."""
    from .onnx_model import PROVIDER_ALIASES
    from .openvino_model import OPENVINO

    device = "cpu" if restorer.device == OPENVINO else next(
        (alias for alias, name in PROVIDER_ALIASES.items() if name == str(restorer.device)),
        str(restorer.device))  # an execution provider by the name --device takes
    return f"{restorer.backend} on {device} ({restorer.precision})"


def choose_backend(model: str | Path | None, device: str, precision: str, window: int | None = None) -> str:
    """What `auto` runs: on a CPU the model's export, on OpenVINO where it is installed, else onnxruntime.

    On a CPU onnxruntime runs the bundled model about twice as fast as torch, with the same output
    to within one 8-bit level (docs/benchmarks.md, "Speed"), and OpenVINO about 3.5x as fast as
    onnxruntime on a CPU with AMX, in bf16 ("OpenVINO on the CPU"). Both need an fp32 export of the
    window used, shipped in the model folder or cached (`dvface export onnx`); auto never exports.
    Without torch it is always an export; on a GPU, or for fp16, torch; int8 is always an int8
    export, on OpenVINO where it can be.
    """
    from .onnx_model import find_onnx, installed_runtimes
    from .openvino_model import PRECISIONS as OPENVINO_PRECISIONS

    has_torch = importlib.util.find_spec("torch") is not None
    on_cpu = device == "cpu" or (device == "auto" and not cuda_device_present())
    has_openvino = importlib.util.find_spec("openvino") is not None
    if precision == "int8":  # only an int8 export runs int8
        return "openvino" if on_cpu and has_openvino else "ort"
    if on_cpu and precision in OPENVINO_PRECISIONS and has_openvino:
        if not has_torch or find_onnx(resolve_model_folder(model), frames=window) is not None:
            return "openvino"
    if not has_torch:
        return "ort"
    if precision not in ("auto", "fp32") or len(installed_runtimes()) != 1 or not on_cpu:
        return "torch"
    return "ort" if find_onnx(resolve_model_folder(model), frames=window) is not None else "torch"


def cuda_device_present() -> bool:
    """Whether the NVIDIA driver sees a GPU this process may use, asked through NVML.

    Importing torch to ask costs seconds on every start, and `auto` runs onnxruntime on a CPU
    anyway. NVML counts devices without creating a CUDA context, so a later fork (Ray, the
    worker) stays safe. CUDA_VISIBLE_DEVICES set empty or to -1 hides every device, as in CUDA.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    names = ("nvml.dll",) if sys.platform == "win32" else ("libnvidia-ml.so.1", "libnvidia-ml.so")
    for name in names:
        try:
            nvml = ctypes.CDLL(name)
        except OSError:
            continue
        if nvml.nvmlInit_v2() != 0:
            return False
        try:
            count = ctypes.c_uint(0)
            return nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) == 0 and count.value > 0
        finally:
            nvml.nvmlShutdown()
    return False
