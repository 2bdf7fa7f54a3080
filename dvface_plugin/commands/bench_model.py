"""`dvface bench model`: frames per second of one window through torch, onnxruntime or OpenVINO.

Times the two calls the engine makes per window: encode (latent + priors, once per window) and
restore (backbone + decode, again on every `prior_scale` change), on a synthetic clip. Without
`--model` it uses the tiny preset with seed-0 random weights: it measures speed, not quality.
On onnxruntime and OpenVINO it also counts the graphs' FLOPs and measures a large MatMul in the
same process and precision, so the model's GFLOP/s reads as a fraction of what the cores reach;
`--compare-int8` times the model's int8 export (`dvface export onnx --int8`) against its fp32 one in
the same run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError
from .bench import print_result

BACKENDS = ("torch", "ort", "openvino")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `model` to the `bench` command registered before this module (see cli.COMMAND_MODULES)."""
    bench = subparsers.choices.get("bench")
    if bench is None:
        raise RuntimeError("dvface_plugin.commands.bench_model must come after dvface_plugin.commands.bench in COMMAND_MODULES")
    sub = next(a for a in bench._actions if isinstance(a, argparse._SubParsersAction))
    parser = sub.add_parser("model", help="frames/s of the model per window, torch, onnxruntime or OpenVINO", description=__doc__)
    parser.add_argument("--backend", choices=BACKENDS, default="torch")
    parser.add_argument("--model", default=None, help="model folder (default: tiny preset, random weights)")
    parser.add_argument("--onnx", default=None,
                        help="ort, openvino: export folder (default: export at first use, cached)")
    parser.add_argument("--frames", type=int, default=None, help="window length (default: the config's window)")
    parser.add_argument("--size", type=int, default=None, help="crop side (default: the config's crop size)")
    parser.add_argument("--device", default="auto", help="torch: auto | cpu | cuda[:N]")
    parser.add_argument("--precision", default="fp32",
                        help="torch: fp32 | fp16 | bf16; ort: fp32 | fp16 | int8 (export); "
                             "openvino: fp32 | bf16 | int8 | auto")
    parser.add_argument("--providers", default=None, help="ort: comma-separated providers (default: TensorRT>CUDA>CPU)")
    parser.add_argument("--threads", type=int, default=None,
                        help="ort, openvino: intra-op threads (default: one per core)")
    parser.add_argument("--compare-int8", action="store_true",
                        help="ort, openvino, with --model: also time the model's int8 export and its output's "
                             "difference from fp32 in 8-bit levels")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs after one warm-up (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def synthetic_clip(frames: int, size: int, seed: int = 0) -> np.ndarray:
    """(1, 3, T, S, S) float32 in [-1, 1]: smooth moving pattern plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    t = np.arange(frames, dtype=np.float32)[:, None, None]
    base = 0.6 * np.sin(6.0 * xx + 0.2 * t) * np.cos(4.0 * yy - 0.1 * t)
    clip = base[None] * np.array([1.0, 0.7, 0.4], dtype=np.float32)[:, None, None, None]
    clip = clip + rng.normal(0.0, 0.1, clip.shape).astype(np.float32)
    return np.clip(clip, -1.0, 1.0)[None].astype(np.float32)


def _time(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: allocations, TensorRT engine build, oneDNN kernel selection
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _torch_runner(args: argparse.Namespace, frames: int | None, size: int | None):
    import torch

    from ..model.config import DVFaceConfig
    from ..model.dvface import DVFace
    from ..runtime.torch_restorer import PRECISIONS, resolve_device, resolve_precision

    if args.model is None:
        torch.manual_seed(0)
        model = DVFace(DVFaceConfig.preset("tiny"))
    else:
        from ..model.folders import resolve_model_folder

        model = DVFace.from_pretrained(resolve_model_folder(args.model))
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    model = model.eval().to(device=device, dtype=PRECISIONS[precision])
    cfg = model.config
    frames, size = frames or cfg.window, size or cfg.crop_size
    x = torch.from_numpy(synthetic_clip(frames, size)).to(device=device, dtype=PRECISIONS[precision])

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    state = {}

    def encode() -> None:
        with torch.inference_mode():
            state["latent"] = model.encode(x)
            state["priors"] = model.encode_priors(state["latent"])
        sync()

    def restore() -> None:
        with torch.inference_mode():
            model.restore_latent(state["latent"], state["priors"], 0.5)
        sync()

    return encode, restore, frames, size, {"device": str(device), "precision": precision}


def _ort_runner(args: argparse.Namespace, frames: int | None, size: int | None):
    """onnxruntime, or OpenVINO on the fp32 export in --precision (the int8 export for int8)."""
    from ..runtime.onnx_model import ensure_onnx, export_precision

    openvino = args.backend == "openvino"
    if args.precision not in (("fp32", "bf16", "int8", "auto") if openvino else ("fp32", "fp16", "int8")):
        raise InputError(f"--precision {args.precision} is not available for --backend {args.backend}; use "
                         + ("fp32, bf16, int8 or auto" if openvino else "fp32, fp16 or int8"))
    export = export_precision(args.precision)
    if args.onnx is not None:
        folder = Path(args.onnx)
    elif args.model is not None:
        from ..model.folders import resolve_model_folder

        folder = ensure_onnx(resolve_model_folder(args.model), precision=export, frames=frames, size=size)
    else:
        folder = _random_tiny_export(export, frames, size)
    model = _onnx_model(args, folder, args.precision)
    if frames not in (None, model.shape[0]) or size not in (None, model.shape[1]):
        raise InputError(
            f"--frames {frames} --size {size} differ from the export in {folder} "
            f"({model.shape[0]} frames, {model.shape[1]} px); drop them or export at that shape"
        )
    frames, size = model.shape[0], model.shape[1]
    encode, restore = _window_calls(model)
    return encode, restore, frames, size, {"providers": model.providers, "precision": model.precision,
                                           "folder": folder}


def _window_calls(model) -> tuple[Callable[[], None], Callable[[], np.ndarray]]:
    """(encode, restore) of one synthetic window through an ONNX model, as the engine calls them."""
    x = synthetic_clip(model.shape[0], model.shape[1])
    state = {}

    def encode() -> None:
        state["latent"] = model.encode(x)
        state["priors"] = model.encode_priors(state["latent"])

    def restore() -> np.ndarray:
        return model.restore_latent(state["latent"], state["priors"], 0.5)

    return encode, restore


def _onnx_model(args: argparse.Namespace, folder: Path, precision: str):
    from ..runtime.onnx_model import OrtModel
    from ..runtime.openvino_model import OvModel

    if args.backend == "openvino":
        return OvModel(folder, precision=precision, threads=args.threads)
    providers = [p.strip() for p in args.providers.split(",")] if args.providers else None
    return OrtModel(folder, providers=providers, threads=args.threads)


def _random_tiny_export(precision: str, frames: int | None, size: int | None) -> Path:
    """Export of the seed-0 random tiny model, cached like any model's: its bytes are the same every run."""
    import torch

    from ..model.config import DVFaceConfig
    from ..model.dvface import DVFace
    from ..runtime.onnx_model import ensure_onnx

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="dvface-bench-") as tmp:
        DVFace(DVFaceConfig.preset("tiny")).save_pretrained(tmp)
        return ensure_onnx(tmp, precision=precision, frames=frames, size=size)


def run(args: argparse.Namespace) -> int:
    if args.repeat < 1:
        raise InputError(f"--repeat must be at least 1, got {args.repeat}")
    if args.compare_int8 and (args.backend == "torch" or args.model is None or args.onnx is not None
                              or args.precision != "fp32"):
        raise InputError("--compare-int8 times a model's int8 export against its fp32 one: use it with --backend ort "
                         "or openvino, --model and --precision fp32 (no --onnx)")
    if args.backend == "torch" and args.threads is not None:
        raise InputError("--threads is for --backend ort or openvino")
    int8_folder = _int8_export(args) if args.compare_int8 else None
    runner = _torch_runner if args.backend == "torch" else _ort_runner
    encode, restore, frames, size, info = runner(args, args.frames, args.size)
    folder = info.pop("folder", None)
    t_encode = _time(encode, args.repeat)
    t_restore = _time(restore, args.repeat)
    result = {
        "backend": args.backend,
        **info,
        "frames": frames,
        "size": size,
        "encode_s": t_encode,
        "restore_s": t_restore,
        "window_s": t_encode + t_restore,
        "fps": frames / (t_encode + t_restore),
        "fps_restore_only": frames / t_restore,
    }
    if folder is not None:
        openvino = info["precision"] if args.backend == "openvino" else None
        result.update(_flops(folder, frames, t_encode + t_restore, args.threads, openvino))
    if int8_folder is not None:
        result.update(_compare_int8(args, int8_folder, frames, restore, t_encode + t_restore))
    print_result(result, args.json)
    return 0


def _flops(folder: Path, frames: int, window_s: float, threads: int | None, openvino: str | None) -> dict:
    from ..runtime.onnx_flops import export_flops, matmul_peak_gflops

    flops = export_flops(folder)
    achieved = flops / window_s / 1e9
    peak = matmul_peak_gflops(threads, openvino_precision=openvino)
    return {"gflop_per_crop": flops / frames / 1e9, "gflops_achieved": achieved, "matmul_peak_gflops": peak,
            "fraction_of_peak": achieved / peak}


def _int8_export(args: argparse.Namespace) -> Path:
    """The model's int8 export at the benchmark's shape; looked up before any timing, so a missing one
    is an error at once."""
    from ..model.folders import resolve_model_folder
    from ..runtime.onnx_model import ensure_onnx

    return ensure_onnx(resolve_model_folder(args.model), precision="int8", frames=args.frames, size=args.size)


def _compare_int8(args: argparse.Namespace, folder: Path, frames: int, restore, window_s: float) -> dict:
    """The int8 export in `folder`, timed in this process on the same clip as the fp32 one (whose
    `restore` gives the reference output), with its GOP/s as a fraction of an int8 MatMul's in the
    same runtime."""
    from ..runtime.onnx_flops import export_flops, matmul_peak_gflops

    reference = restore()
    encode8, restore8 = _window_calls(_onnx_model(args, folder, "int8"))
    seconds = _time(encode8, args.repeat) + _time(restore8, args.repeat)
    levels = np.abs(restore8() - reference) * 127.5  # [-1, 1] -> 8-bit levels
    achieved = export_flops(folder) / seconds / 1e9
    peak = matmul_peak_gflops(args.threads, openvino_precision="int8" if args.backend == "openvino" else None,
                              int8=True)
    return {"fp32_crops_per_s": frames / window_s, "int8_crops_per_s": frames / seconds,
            "int8_speedup": window_s / seconds, "int8_gops_achieved": achieved, "int8_matmul_peak_gops": peak,
            "int8_fraction_of_peak": achieved / peak,
            "int8_mean_diff_levels": float(levels.mean()), "int8_max_diff_levels": float(levels.max())}
