"""`dvface export onnx`: arguments, then `runtime.onnx_export`; with `--int8`, calibration windows from a
prepared folder, then `runtime.onnx_int8`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..model.folders import resolve_model_folder

CALIBRATION_PRESET = "medium"  # how the calibration windows are degraded: the damage the model restores


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a model for other runtimes",
        description="Export a model's inference graphs, so hosts without torch can run it on onnxruntime "
        "(`--backend ort`). Needs torch; `--int8` needs only onnxruntime where the fp32 export exists.",
    )
    sub = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")
    onnx_parser = sub.add_parser(
        "onnx",
        help="ONNX graphs + manifest.json for the onnxruntime backend",
        description="Export encode_priors.onnx and restore.onnx at fixed shapes, with a manifest.json.",
    )
    onnx_parser.add_argument("--model", default=None, help="model folder or bundled name (default: the bundled model)")
    onnx_parser.add_argument("--backbone", default=None, help="diffusers Wan2.1 folder, if the model file lacks it")
    onnx_parser.add_argument(
        "-o", "--output", required=True, help="output folder (created; a previous export is replaced)"
    )
    precision = onnx_parser.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_true", help="half-precision graphs, for CUDA / TensorRT")
    precision.add_argument("--int8", action="store_true",
                           help="an int8 copy of the model's fp32 export, for CPUs without bf16 units (OpenVINO, "
                           "`--precision int8`); needs --calibration")
    onnx_parser.add_argument("--calibration", default=None,
                             help="with --int8: a folder made by `dvface prepare` from face footage like what you "
                             "restore (never clips you will score on); its clips, degraded, set the int8 ranges")
    onnx_parser.add_argument("--calibration-windows", type=int, default=4,
                             help="with --int8: how many of its clips calibrate (default 4; each takes a few "
                             "seconds per graph pass)")
    onnx_parser.add_argument("--frames", type=int, default=None, help="window length T (default: the config's window)")
    onnx_parser.add_argument("--size", type=int, default=None, help="crop side H = W (default: the config's crop size)")
    onnx_parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    folder = resolve_model_folder(args.model)
    start = time.perf_counter()
    if args.int8:
        manifest = _export_int8(args, folder)
    else:
        if args.calibration is not None:
            raise InputError("--calibration is for --int8; drop it, or add --int8")
        from ..runtime import onnx_export

        manifest = onnx_export.export_model_folder(
            folder, args.output, frames=args.frames, size=args.size, fp16=args.fp16, backbone=args.backbone
        )
    shape = manifest["shape"]
    print(
        f"exported {manifest['config_name']} ({manifest['precision']}, opset {manifest['opset']}, "
        f"{shape['frames']}x{shape['height']}x{shape['width']}) to {args.output} "
        f"in {time.perf_counter() - start:.1f} s"
    )
    return 0


def _export_int8(args: argparse.Namespace, folder: Path) -> dict:
    """Quantise the model's fp32 export (shipped, cached, or exported now) into --output."""
    from ..runtime.onnx_int8 import quantize_export
    from ..runtime.onnx_model import ensure_onnx, read_manifest

    if args.calibration is None:
        raise InputError("--int8 needs --calibration DATA: a folder made by `dvface prepare` from face footage")
    count = args.calibration_windows
    if count < 1:
        raise InputError(f"--calibration-windows must be at least 1, got {count}")
    picked = spread_clips(calibration_clips(Path(args.calibration)), count)  # refused before a long fp32 export
    source = ensure_onnx(folder, precision="fp32", frames=args.frames, size=args.size, backbone=args.backbone)
    shape = read_manifest(source)["shape"]
    windows = [calibration_window(path, seed, shape["frames"], shape["height"]) for seed, path in enumerate(picked)]
    print(f"calibrating {source} on {len(windows)} windows from {args.calibration}", flush=True)
    return quantize_export(source, args.output, windows, {"calibration_preset": CALIBRATION_PRESET},
                           progress=lambda message: print(message, flush=True))


def calibration_clips(folder: Path) -> list[Path]:
    """The prepared clips (`.npy`) under `folder`, in name order; an error if there are none."""
    if not folder.is_dir():
        raise InputError(f"calibration folder {folder} not found; give a folder made by `dvface prepare`")
    clips = sorted(folder.rglob("*.npy"))
    if not clips:
        raise InputError(f"{folder} holds no prepared clips (.npy); make them with `dvface prepare VIDEOS -o {folder}`")
    return clips


def spread_clips(clips: list[Path], count: int) -> list[Path]:
    """`count` of `clips` spread evenly over the list (first and last included)."""
    if len(clips) < count:
        raise InputError(f"{clips[0].parent} holds {len(clips)} prepared clips (.npy), fewer than the {count} "
                         "calibration windows asked for; prepare more with `dvface prepare` or lower --calibration-windows")
    return [clips[round(i * (len(clips) - 1) / (count - 1))] for i in range(count)] if count > 1 else clips[:1]


def calibration_window(path: Path, seed: int, frames: int, size: int) -> np.ndarray:
    """A prepared clip's first `frames` frames (the last repeated if it is shorter) at `size` px, degraded
    with CALIBRATION_PRESET at `seed`, as the model's input: (1, 3, frames, size, size) in [-1, 1]."""
    import cv2

    from ..degrade import degrade_clip

    clip = np.load(path, mmap_mode="r")
    if clip.ndim != 4 or clip.shape[-1] != 3 or clip.dtype != np.uint8 or len(clip) == 0:
        raise InputError(f"{path}: expected a (T, H, W, 3) uint8 array from `dvface prepare`, got {clip.shape} {clip.dtype}")
    take = np.asarray(clip[:frames])
    take = np.concatenate([take, np.repeat(take[-1:], frames - len(take), axis=0)])
    if take.shape[1:3] != (size, size):
        take = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in take])
    low = degrade_clip(take, CALIBRATION_PRESET, seed=seed).astype(np.float32) / 127.5 - 1.0
    return np.ascontiguousarray(low.transpose(3, 0, 1, 2)[None])
