"""`dvface export onnx`: arguments, then `runtime.onnx_export`."""

from __future__ import annotations

import argparse
import time

from ..model.folders import resolve_model_folder


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a model for other runtimes",
        description="Export a model's inference graphs, so hosts without torch can run it on onnxruntime "
        "(`--backend ort`). Needs torch.",
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
    onnx_parser.add_argument("--fp16", action="store_true", help="half-precision graphs, for CUDA / TensorRT")
    onnx_parser.add_argument("--frames", type=int, default=None, help="window length T (default: the config's window)")
    onnx_parser.add_argument("--size", type=int, default=None, help="crop side H = W (default: the config's crop size)")
    onnx_parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..runtime import onnx_export

    folder = resolve_model_folder(args.model)
    start = time.perf_counter()
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
