"""`dvface bench pipeline`: where a whole-frame job spends its time besides the model.

Builds a synthetic shot (astronaut faces drifting over a background, H.264 in a temp folder), runs
the complete `dvface restore` job on it with the tiny preset (random weights: the figures are about
the plumbing, not the restoration) and reports seconds per stage and the ratio of everything-but-
the-model to the model. A ratio well below 1 means the model is the bottleneck, as it should be.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from fractions import Fraction
from pathlib import Path

from ..errors import InputError
from ..runtime.backends import PRECISIONS
from ..wholeframe.stages import STAGES
from .restore import register as register_restore

FPS = Fraction(24000, 1001)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "pipeline",
        help="seconds per stage of a whole-frame restore (decode, detect, track, align, model, paste, encode)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--frames", type=int, default=24, help="clip length (default 24)")
    parser.add_argument("--size", default="1280x720", help="frame size WxH (default 1280x720)")
    parser.add_argument("--faces", type=int, default=2, help="faces in the shot (default 2)")
    parser.add_argument("--crop", type=int, default=None,
                        help="model crop size (default: the tiny preset's, 512; smaller for a quick run)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
    parser.add_argument("--backend", default="torch", choices=("torch", "ort", "openvino"),
                        help="model backend (ort and openvino export the random model to ONNX first)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise InputError(f"--size {text!r}: use WIDTHxHEIGHT, e.g. 1280x720")
    width, height = int(match[1]), int(match[2])
    if width < 64 or height < 64 or width % 2 or height % 2:
        raise InputError(f"--size {text}: width and height must be even and at least 64")
    return width, height


def restore_arguments(argv: list[str]) -> argparse.Namespace:
    """`dvface restore ARGV` parsed by the restore command's own parser, so every other option
    keeps the default a user gets."""
    parser = argparse.ArgumentParser(prog="dvface")
    register_restore(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["restore", *argv])


def run(args: argparse.Namespace) -> int:
    import torch

    from ..media import MediaWriter
    from ..model.config import DVFaceConfig
    from ..model.dvface import DVFace
    from ..wholeframe.command import restore_whole_frames
    from ..wholeframe.synthetic import synthetic_frames

    width, height = parse_size(args.size)
    if args.frames < 1 or args.faces < 1:
        raise InputError("--frames and --faces must be at least 1")
    with tempfile.TemporaryDirectory(prefix="dvface-bench-") as tmp:
        folder = Path(tmp)
        cfg = DVFaceConfig.preset("tiny")
        if args.crop is not None:
            if args.crop < cfg.spatial_multiple or args.crop % cfg.spatial_multiple:
                raise InputError(f"--crop must be a positive multiple of {cfg.spatial_multiple}")
            cfg.crop_size = args.crop
        torch.manual_seed(0)
        DVFace(cfg).save_pretrained(folder / "model")
        if args.backend in ("ort", "openvino"):
            from ..runtime.onnx_export import export_model_folder

            export_model_folder(folder / "model", folder / "model" / "onnx")
        clip = folder / "in.mp4"
        with MediaWriter(clip, fps=FPS, width=width, height=height) as writer:
            for frame in synthetic_frames(args.frames, width, height, faces=args.faces):
                writer.write(frame)
        job = restore_arguments([
            str(clip), "-o", str(folder / "out.mp4"), "--model", str(folder / "model"), "--device", args.device,
            "--precision", args.precision, "--backend", args.backend, "--no-cache", "--quiet", "--json",
        ])
        summary = restore_whole_frames(job)
    seconds = summary["seconds"]
    faces = sum(summary["faces_per_frame"])
    result = {
        "frames": summary["frames"],
        "size": f"{width}x{height}",
        "crop": cfg.crop_size,
        "backend": args.backend,
        "tracks": len(summary["tracks"]),
        "face_frames": faces,
        "device": summary["device"],
        "precision": summary["precision"],
        "seconds": {k: seconds[k] for k in STAGES},
        "ms_per_frame": {k: round(1000 * seconds[k] / summary["frames"], 2) for k in STAGES},
        "total_s": seconds["total"],
        "non_model_s": round(seconds["total"] - seconds["model"], 4),
        "non_model_over_model": seconds["non_model_over_model"],
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['frames']} frames {result['size']}, {result['tracks']} face tracks "
          f"({faces} face-frames), crop {result['crop']}, {result['device']} {result['precision']}")
    for stage in STAGES:
        print(f"{stage:>8}: {result['seconds'][stage]:9.3f} s  {result['ms_per_frame'][stage]:9.2f} ms/frame")
    print(f"{'total':>8}: {result['total_s']:9.3f} s")
    ratio = result["non_model_over_model"]
    print(f"non-model / model: {'n/a' if ratio is None else f'{ratio:.3f}'}")
    return 0
