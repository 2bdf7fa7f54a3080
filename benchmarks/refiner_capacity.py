"""What a detail refiner of a given shape can learn, and what it costs a 512 px frame.

Each refiner config is trained from scratch for --steps on the degraded input alone (D(z_hat) = 0,
r = LQ: the refiner's own reach, without the VAE or DiT), on 128 px crops of the prepared
training clips, and scored on held-out clips (PSNR on Y, LQ -> refined). `--noise S` replaces the
preset by plain Gaussian noise of S 8-bit levels, which any working denoiser removes. The cost is
one forward pass over a 17 x 512 x 512 window on one thread, per frame. Usage (minutes a config):

    python benchmarks/refiner_capacity.py --data runs/data/tiny512 [--noise 8 | --preset medium]
        [--configs 48x3/4 32x3/2] [--steps 600] [--lr 5e-4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from dvface_plugin.degrade import DegradationConfig, degrade_clip
from dvface_plugin.model.config import RefinerConfig
from dvface_plugin.model.refiner import DetailRefiner
from dvface_plugin.training.data import ClipSampler, list_items, split


def psnr_y(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR on BT.601 Y of clips in [-1, 1]."""
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1, 1)
    ya, yb = ((a + 1) / 2 * w).sum(1), ((b + 1) / 2 * w).sum(1)
    return float(10 * torch.log10(1 / ((ya - yb) ** 2).mean()))


def batches(sampler: ClipSampler, count: int, seed: int, noise: float | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = []
    for i in range(count):
        lq, hq = sampler.sample(4, np.random.default_rng([seed, i]))
        if noise is not None:
            config = DegradationConfig(name="noise", blur_prob=0.0, scale=(1.0, 1.0), noise_kinds=("gaussian",),
                                       noise_sigma=(noise, noise), codec_prob=0.0)
            clips = ((hq.permute(0, 2, 3, 4, 1) + 1) * 127.5).round().byte().numpy()
            lq = torch.stack([torch.from_numpy(degrade_clip(c, config, seed=1000 * seed + i)) for c in clips])
            lq = lq.permute(0, 4, 1, 2, 3).float() / 127.5 - 1
        out.append((lq, hq))
    return out


def seconds_per_frame(refiner: DetailRefiner) -> float:
    torch.set_num_threads(1)
    x = torch.zeros(1, 3, 17, 512, 512)
    with torch.no_grad():
        refiner(x, x)
        start = time.perf_counter()
        refiner(x, x)
    return (time.perf_counter() - start) / 17


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="runs/data/tiny512", help="folder written by `dvface prepare`")
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--noise", type=float, help="Gaussian noise sigma in 8-bit levels instead of --preset")
    parser.add_argument("--configs", nargs="+", default=["48x3/4", "32x3/2"], help="CHANNELSxBLOCKS/UNSHUFFLE")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    train_items, val_items = split(list_items([args.data]), 0.1)
    train = batches(ClipSampler(train_items, 5, 128, args.preset), 150, 1, args.noise)
    val = batches(ClipSampler(val_items, 5, 128, args.preset), 15, 2, args.noise)
    lq_psnr = np.mean([psnr_y(lq, hq) for lq, hq in val])
    print(f"degradation: {f'Gaussian noise {args.noise}' if args.noise is not None else args.preset}; "
          f"validation LQ {lq_psnr:.2f} dB", flush=True)
    for spec in args.configs:
        channels, rest = spec.split("x")
        blocks, unshuffle = rest.split("/")
        torch.manual_seed(0)
        refiner = DetailRefiner(RefinerConfig(int(channels), int(blocks), int(unshuffle)))
        torch.set_num_threads(args.threads)
        optimizer = torch.optim.Adam(refiner.parameters(), args.lr)
        for step in range(args.steps):
            lq, hq = train[step % len(train)]
            loss = (lq + refiner(torch.zeros_like(lq), lq) - hq).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(refiner.parameters(), 1.0)
            optimizer.step()
        with torch.no_grad():
            out = np.mean([psnr_y((lq + refiner(torch.zeros_like(lq), lq)).clamp(-1, 1), hq) for lq, hq in val])
        params = sum(p.numel() for p in refiner.parameters())
        print(f"{spec}: {params / 1e6:.2f} M parameters, {args.steps} steps: {lq_psnr:.2f} -> {out:.2f} dB "
              f"({out - lq_psnr:+.2f}), {seconds_per_frame(refiner):.3f} s per 512 px frame (1 thread)", flush=True)


if __name__ == "__main__":
    main()
