"""How the training faces differ from the benchmark's, and what a model gains on each.

1. Softness: the PSNR (Y) between a frame and its bicubic x2 down-and-up copy, averaged over the
   first frame of every prepared training clip or photo (resized by each --scales factor, as the
   training config's `scale` does) and over the first frames of the synthetic-gt benchmark clips.
   Higher means softer: less detail above half the sampling rate. Only statistics are read from
   the benchmark; nothing is trained on it. The paired clips' ground truth is measured the same way.
2. With --model: the model's PSNR gain on held-out training clips, 17 x 512 x 512, degraded with
   --preset (seeded), the same kind of input the synthetic benchmark gives it.

    python benchmarks/domain_gap.py --data runs/data/tiny512 [--scales 1 0.5] [--model DIR --clips 6]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from dvface_plugin.media import open_media
from dvface_plugin.metrics import psnr_luma, psnr_y, rgb_to_y
from dvface_plugin.model.dvface import DVFace
from dvface_plugin.training.data import ClipSampler, list_items, load_item, split

BENCHMARK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "benchmark"


def softness(frame: np.ndarray) -> float:
    """PSNR of Y against its x2 bicubic round trip (dB; higher = softer)."""
    h, w = frame.shape[:2]
    small = cv2.resize(frame, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    back = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return psnr_luma(rgb_to_y(back), rgb_to_y(frame))


def first_frames(paths: list[Path], count: int) -> list[np.ndarray]:
    frames = []
    for path in paths:
        with open_media(path) as media:
            frames += list(media.frames(0, min(count, media.frame_count)))
    return frames


def clip_psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean per-frame PSNR on Y of two (1, 3, T, H, W) clips in [-1, 1], as `dvface eval` scores."""
    frames = [((x[0].permute(1, 2, 3, 0).clamp(-1, 1) + 1) / 2).numpy() for x in (a, b)]
    return float(np.mean([psnr_y(p, g) for p, g in zip(*frames)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="runs/data/tiny512", help="folder written by `dvface prepare`")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.5])
    parser.add_argument("--model", help="also measure this model folder's gain on held-out training clips")
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--clips", type=int, default=6)
    args = parser.parse_args()

    items = list_items([args.data])
    for scale in args.scales:
        values = []
        for path in items:
            frame = np.asarray(load_item(path)[0])
            if scale != 1.0:
                frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            values.append(softness(frame))
        print(f"training faces at scale {scale:g}: softness {np.mean(values):.2f} dB "
              f"(median {np.median(values):.2f}, {len(values)} items)")
    for name, pattern in (("synthetic-gt", "synthetic-gt/*.mp4"), ("paired GT", "paired/*/GT.mp4")):
        values = [softness(f) for f in first_frames(sorted(BENCHMARK.glob(pattern)), 5)]
        if values:
            print(f"benchmark {name} faces: softness {np.mean(values):.2f} dB "
                  f"(median {np.median(values):.2f}, {len(values)} frames)")

    if args.model:
        torch.set_num_threads(2)
        model = DVFace.from_pretrained(args.model).eval()
        _, val = split(items, 0.1)
        sampler = ClipSampler(sorted(p for p in val if p.suffix == ".npy"), 17, 512, args.preset)
        gains = []
        with torch.no_grad():
            for i in range(args.clips):
                lq, hq = sampler.sample(1, np.random.default_rng([5, i]))
                before, after = clip_psnr(lq, hq), clip_psnr(model(lq), hq)
                gains.append(after - before)
                print(f"held-out clip {i}: {before:.2f} -> {after:.2f} dB ({after - before:+.2f})", flush=True)
        print(f"{args.model} on held-out training clips, {args.preset}: mean gain {np.mean(gains):+.2f} dB")


if __name__ == "__main__":
    main()
