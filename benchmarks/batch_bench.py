"""Throughput of `dvface batch --aligned` (frames/s) with 1 and 2 Ray workers on a local Ray.

Writes synthetic aligned clips (lossless FFV1) and a tiny-preset model (random weights, crops of
--crop pixels) to a temporary folder, starts Ray once (its start-up is not counted), then times
each whole job: actor start and model load, chunk rendering, and joining the outputs. Usage:

    python benchmarks/batch_bench.py [--clips 4] [--frames 60] [--chunk-frames 16] [--workers 1 2] [--json]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import ray
import torch

from dvface_plugin.cli import main
from dvface_plugin.commands.bench import print_result, synthetic_crop
from dvface_plugin.media import MediaWriter
from dvface_plugin.model.config import DVFaceConfig
from dvface_plugin.model.dvface import DVFace


def make_inputs(folder: Path, clips: int, frames: int, crop: int) -> tuple[Path, list[Path]]:
    torch.manual_seed(0)
    cfg = DVFaceConfig.preset("tiny")
    cfg.crop_size = crop
    model = folder / "model"
    DVFace(cfg).save_pretrained(model)
    paths = []
    for i in range(clips):
        get_crop = synthetic_crop(i, crop)
        path = folder / f"clip{i:02d}.mkv"
        with MediaWriter(path, fps=Fraction(25), width=crop, height=crop, bit_depth=8) as writer:
            for n in range(frames):
                writer.write(get_crop(n))
        paths.append(path)
    return model, paths


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--crop", type=int, default=32)
    parser.add_argument("--chunk-frames", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result: dict = {"clips": args.clips, "frames_per_clip": args.frames, "crop": args.crop,
                    "chunk_frames": args.chunk_frames}
    with tempfile.TemporaryDirectory() as tmp:
        model, clips = make_inputs(Path(tmp), args.clips, args.frames, args.crop)
        ray.init(num_cpus=max(args.workers), include_dashboard=False, log_to_driver=False)
        try:
            for workers in args.workers:
                start = time.perf_counter()
                code = main(["batch", *map(str, clips), "-o", str(Path(tmp) / f"out{workers}"), "--aligned",
                             "--model", str(model), "--quiet", "--workers", str(workers),
                             "--chunk-frames", str(args.chunk_frames)])
                if code:
                    raise SystemExit(f"dvface batch failed with exit code {code}")
                result[f"fps_{workers}_workers"] = args.clips * args.frames / (time.perf_counter() - start)
        finally:
            ray.shutdown()
    print_result(result, args.json)


if __name__ == "__main__":
    main_bench()
