"""The tables of docs/benchmarks.md "Our default model": a model against the benchmark clips.

1. paired: `dvface restore --aligned LQ.mp4` for each clip of ../shared/data/benchmark/paired,
   scored against GT.mp4 beside the LQ input and the published outputs (`dvface eval`).
2. synthetic: the first --frames frames of each clip of ../shared/data/benchmark/synthetic-gt,
   degraded with `degrade_clip(preset, seed)` (written losslessly as GT.mkv / LQ.mkv), restored
   and scored the same way.

Never trains on anything; it only reads the benchmark folders. Usage (a few minutes a table on
two CPU cores with the tiny model):

    python benchmarks/default_model_eval.py [--model dvface-tiny] [--out runs/eval] [--preset medium]
        [--seed 0] [--frames 49] [--only paired|synthetic]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from dvface_plugin.degrade import degrade_clip
from dvface_plugin.media import MediaWriter, open_media

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "benchmark"
METHOD = "dvface-tiny"


def dvface(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "dvface_plugin.cli", *args], check=True)


def restore(lq: Path, out: Path, model: str) -> None:
    """`dvface restore --aligned`, timed end to end (process start, model load, decode, encode)."""
    if out.exists():
        return
    start = time.perf_counter()
    dvface("restore", "--aligned", str(lq), "-o", str(out), "--model", model, "--quiet")
    wall = time.perf_counter() - start
    with open_media(out) as media:
        n = media.frame_count
    print(f"{lq}: {n} frames in {wall:.1f} s = {n / wall:.2f} frames/s end to end", flush=True)


def write(path: Path, frames: np.ndarray, fps: Fraction) -> None:
    with MediaWriter(path, fps=fps, width=frames.shape[2], height=frames.shape[1], bit_depth=8) as writer:
        for frame in frames:
            writer.write(frame)


def paired(model: str, out: Path) -> None:
    root = out / "paired"
    for clip in sorted(p for p in (DATA / "paired").iterdir() if p.is_dir()):
        (root / clip.name).mkdir(parents=True, exist_ok=True)
        restore(clip / "LQ.mp4", root / clip.name / f"{METHOD}.mkv", model)
    dvface("eval", "--pred", str(DATA / "paired"), str(root), "--gt", str(DATA / "paired"), "--markdown")


def synthetic(model: str, out: Path, preset: str, seed: int, frames: int) -> None:
    root = out / f"synthetic-{preset}-seed{seed}-{frames}f"
    for i, src in enumerate(sorted((DATA / "synthetic-gt").glob("*.mp4"))):
        folder = root / src.stem
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "LQ.mkv").exists():
            with open_media(src) as media:
                fps = media.fps or Fraction(25)
                gt = np.stack([f for _, f in zip(range(frames), media.frames())])
            write(folder / "GT.mkv", gt, fps)
            write(folder / "LQ.mkv", degrade_clip(gt, preset, seed + i), fps)
        restore(folder / "LQ.mkv", folder / f"{METHOD}.mkv", model)
    dvface("eval", "--pred", str(root), "--gt", str(root), "--gt-name", "GT", "--offset-search", "0", "--markdown")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="dvface-tiny")
    parser.add_argument("--out", type=Path, default=Path("runs/eval"))
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--only", choices=("paired", "synthetic"))
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} not found: this benchmark needs ../shared/data beside the repository")
    if args.only != "synthetic":
        paired(args.model, args.out)
    if args.only != "paired":
        synthetic(args.model, args.out, args.preset, args.seed, args.frames)


if __name__ == "__main__":
    main()
