"""The tables of docs/benchmarks.md "Our default model": a model against the benchmark clips.

1. paired: `dvface restore --aligned LQ.mp4` for each clip of ../shared/data/benchmark/paired,
   scored against GT.mp4 beside the LQ input and the published outputs (`dvface eval`).
2. synthetic: the first --frames frames of each clip of ../shared/data/benchmark/synthetic-gt,
   degraded with `degrade_clip(preset, seed)` (written losslessly as GT.mkv / LQ.mkv), restored
   and scored the same way.
3. realworld: every clip of ../shared/data/realworld/aligned (no ground truth), restored and
   scored against its own input (`dvface eval --ref LQ`: detail ratio and identity distance to
   the input, self-flow E*warp, flicker), beside the published outputs where the clip has them.

Never trains on anything; it only reads the benchmark and real-world folders. Usage (a few
minutes a table on two CPU cores with the tiny model, about 25 minutes for the real-world one):

    python benchmarks/default_model_eval.py [--model dvface-tiny] [--out runs/eval] [--preset medium]
        [--seed 0] [--frames 49] [--only paired|synthetic|realworld] [--stabilise N] [--method NAME]
        [--backend ort|openvino|torch] [--precision auto|fp32|bf16|int8]

--stabilise N restores with that stabilisation radius instead of the model's (0: the model's
output with no post-filter); --backend and --precision pick the runtime (default: dvface restore's auto);
--method names the restored files and the table rows.
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

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DATA = SHARED / "benchmark"
REALWORLD = SHARED / "realworld" / "aligned"


def dvface(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "dvface_plugin.cli", *args], check=True)


def restore(lq: Path, out: Path, model: str, extra: list[str]) -> None:
    """`dvface restore --aligned` with `extra` options, timed end to end (process start, model load,
    decode, encode)."""
    if out.exists():
        return
    start = time.perf_counter()
    dvface("restore", "--aligned", str(lq), "-o", str(out), "--model", model, "--quiet", "--overwrite", *extra)
    wall = time.perf_counter() - start
    with open_media(out) as media:
        n = media.frame_count
    print(f"{lq}: {n} frames in {wall:.1f} s = {n / wall:.2f} frames/s end to end", flush=True)


def write(path: Path, frames: np.ndarray, fps: Fraction) -> None:
    with MediaWriter(path, fps=fps, width=frames.shape[2], height=frames.shape[1], bit_depth=8) as writer:
        for frame in frames:
            writer.write(frame)


def paired(model: str, out: Path, method: str, extra: list[str]) -> None:
    root = out / "paired"
    for clip in sorted(p for p in (DATA / "paired").iterdir() if p.is_dir()):
        (root / clip.name).mkdir(parents=True, exist_ok=True)
        restore(clip / "LQ.mp4", root / clip.name / f"{method}.mkv", model, extra)
    dvface("eval", "--pred", str(DATA / "paired"), str(root), "--gt", str(DATA / "paired"), "--markdown")


def synthetic(model: str, out: Path, method: str, extra: list[str], preset: str, seed: int, frames: int) -> None:
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
        restore(folder / "LQ.mkv", folder / f"{method}.mkv", model, extra)
    dvface("eval", "--pred", str(root), "--gt", str(root), "--gt-name", "GT", "--offset-search", "0", "--markdown")


def realworld(model: str, out: Path, method: str, extra: list[str]) -> None:
    """Each clip folder (with the published outputs) or loose clip, scored against its own input;
    a loose clip gets a folder of its own in `out` with a link named LQ to the input."""
    root = out / "realworld"
    for group in sorted(p for p in REALWORLD.iterdir() if p.is_dir()):
        for src in sorted(group.iterdir()):
            lq = src / "LQ.mp4" if src.is_dir() else src
            folder = root / group.name / (src.name if src.is_dir() else src.stem)
            folder.mkdir(parents=True, exist_ok=True)
            if src.is_file() and not (folder / "LQ.mp4").exists():
                (folder / "LQ.mp4").symlink_to(src.resolve())
            restore(lq, folder / f"{method}.mkv", model, extra)
        published = [group] if any(p.is_dir() for p in group.iterdir()) else []
        dvface("eval", "--pred", *map(str, published), str(root / group.name), "--ref", "LQ", "--markdown")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="dvface-tiny")
    parser.add_argument("--out", type=Path, default=Path("runs/eval"))
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--only", choices=("paired", "synthetic", "realworld"))
    parser.add_argument("--stabilise", type=int, help="stabilisation radius instead of the model's (0: off)")
    parser.add_argument("--method", default="dvface-tiny", help="name of the restored files and table rows")
    parser.add_argument("--backend", help="dvface restore's --backend (default: its auto)")
    parser.add_argument("--precision", help="dvface restore's --precision (default: its auto)")
    args = parser.parse_args()
    extra = ["--stabilise", str(args.stabilise)] if args.stabilise is not None else []
    extra += ["--backend", args.backend] if args.backend else []
    extra += ["--precision", args.precision] if args.precision else []
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} not found: this benchmark needs ../shared/data beside the repository")
    if args.only in (None, "paired"):
        paired(args.model, args.out, args.method, extra)
    if args.only in (None, "synthetic"):
        synthetic(args.model, args.out, args.method, extra, args.preset, args.seed, args.frames)
    if args.only in (None, "realworld"):
        realworld(args.model, args.out, args.method, extra)


if __name__ == "__main__":
    main()
