"""Should the refiner add detail only? Its correction with its own low band taken out.

The refiner adds x_hat = D(z_hat) + r + c. On real footage most of the fine detail comes from c,
and so does a broad brightness change that differs from frame to frame (the face pumps). Variant
S takes the Gaussian low band of sigma S pixels out of c (S = 0: the model as it is). This script
restores each clip once per window (17 frames, no overlap, fp32 torch), keeps D(z_hat), r and c,
and scores, for each S given, the output as the engine would produce it (the model's temporal
stabilisation applied per window unless --no-stabilise, rounded to 8 bits), and D(z_hat) + r
alone ("no refiner"):

* held-out training clips (`--data`, the validation split `dvface train` leaves out; never
  benchmark/), degraded with `--presets` at seed 0: PSNR-Y, detail against the ground truth's,
  E*warp (x1e-3, the ground truth's flow) and flicker beside the ground truth's;
* `--noref` videos (aligned 512 px clips): detail and flicker against the input's.

`--prefilter R` adds the variant "prefilter R": the whole model (refiner included, no high-pass)
run on the input window averaged along the flow first (`runtime/stabilise.prefilter`), what a
model with `"prefilter": R` in its config does (the other variants always take the raw input,
whatever the model's config says). `--paired CLIP ...` scores benchmark/paired clips (first --frames frames, no
offset search) against their GT as well.

    python benchmarks/refiner_highpass.py [--model models/dvface-tiny] [--data runs/data/tiny512]
        [--sigmas 0 4 8 16] [--presets medium light] [--frames 51] [--noref VIDEO ...] [--no-stabilise]
        [--prefilter R] [--paired HDTF_1 HDTF_2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from dvface_plugin.degrade import degrade_clip
from dvface_plugin.metrics import detail, flicker, psnr_y, warping_error
from dvface_plugin.model.dvface import DVFace
from dvface_plugin.runtime.stabilise import prefilter, stabilise
from dvface_plugin.training.data import list_items, load_item, split

REPO = Path(__file__).resolve().parents[1]


def low_band(frames: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of each (H, W, 3) float frame out to 3 sigma, edges replicated."""
    size = 2 * math.ceil(3 * sigma) + 1
    return np.stack([cv2.GaussianBlur(f, (size, size), sigma, borderType=cv2.BORDER_REPLICATE) for f in frames])


def read_video(path: Path, frames: int) -> np.ndarray:
    with av.open(str(path)) as container:
        out = [f.to_ndarray(format="rgb24") for _, f in zip(range(frames), container.decode(video=0))]
    return np.stack(out)


@torch.no_grad()
def restore_variants(model: DVFace, clip: np.ndarray, sigmas: list[float], stabilise_on: bool,
                     prefilter_radius: int = 0) -> dict[str, np.ndarray]:
    """(T, H, W, 3) uint8 -> {variant: restored uint8 clip}, T cut to whole 17-frame windows;
    variant "no refiner" is D(z_hat) + r, the others `highpass S` and, with `prefilter_radius`,
    `prefilter R`."""
    window = model.config.window
    outs: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(clip) - window + 1, window):
        x = torch.from_numpy(clip[start:start + window]).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
        latent = model.encode(x)
        decoded = model.decode_restored(latent, model.encode_priors(latent))
        crop = (0, slice(None), slice(None), slice(latent.height), slice(latent.width))
        base = (decoded + latent.detail)[crop].permute(1, 2, 3, 0).numpy()  # (T, H, W, 3)
        corr = model.refiner(decoded, latent.detail)[crop].permute(1, 2, 3, 0).numpy()
        variants = {"no refiner": base}
        for sigma in sigmas:
            variants[f"highpass {sigma:g}"] = base + (corr - low_band(corr, sigma) if sigma else corr)
        if prefilter_radius:
            steady = prefilter(np.ascontiguousarray(x[0].permute(1, 2, 3, 0).numpy()), prefilter_radius)
            steady_latent = model.encode(torch.from_numpy(steady).permute(3, 0, 1, 2)[None])
            out = model.add_detail(model.decode_restored(steady_latent, model.encode_priors(steady_latent)),
                                   steady_latent.detail)
            variants[f"prefilter {prefilter_radius}"] = out[crop].permute(1, 2, 3, 0).numpy()
        for name, out in variants.items():
            out = np.clip(out, -1, 1)
            if stabilise_on and model.config.stabilise:
                out = stabilise(out, model.config.stabilise)
            outs.setdefault(name, []).append(np.clip(np.rint((out + 1) * 127.5), 0, 255).astype(np.uint8))
    return {s: np.concatenate(v) for s, v in outs.items()}


def score(pred: np.ndarray, ref: np.ndarray, gt: bool) -> dict[str, float]:
    row = {"detail": float(np.mean([detail(f) for f in pred]) / np.mean([detail(f) for f in ref])),
           "flicker": flicker(pred)}
    if gt:
        row["psnr"] = float(np.mean([psnr_y(p, g) for p, g in zip(pred, ref)]))
        row["ewarp"] = warping_error(pred, ref) * 1e3
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO / "models" / "dvface-tiny")
    parser.add_argument("--data", type=Path, default=REPO / "runs" / "data" / "tiny512")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0, 4, 8, 16])
    parser.add_argument("--presets", nargs="*", default=["medium", "light"])
    parser.add_argument("--frames", type=int, default=51)
    parser.add_argument("--noref", type=Path, nargs="*", default=[])
    parser.add_argument("--no-stabilise", action="store_true", help="score the model's output before its stabilisation")
    parser.add_argument("--prefilter", type=int, default=0, metavar="R")
    parser.add_argument("--paired", nargs="*", default=[], metavar="CLIP")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = DVFace.from_pretrained(args.model).eval()
    if model.refiner is None:
        parser.error(f"{args.model} has no refiner")
    _, held_out = split([p for p in list_items([args.data]) if p.suffix == ".npy"], 0.1)
    rows = []
    cases = [(p.stem, preset, np.asarray(load_item(p)[: args.frames])) for p in held_out for preset in args.presets]
    cases += [(v.stem if v.stem != "LQ" else v.parent.name, "input", read_video(v, args.frames)) for v in args.noref]
    paired = REPO.parent / "shared" / "data" / "benchmark" / "paired"
    cases += [(c, "paired", read_video(paired / c / "GT.mp4", args.frames)) for c in args.paired]
    for name, preset, clip in cases:
        if len(clip) < model.config.window:
            continue
        if preset == "paired":
            inp = read_video(paired / name / "LQ.mp4", args.frames)
        else:
            inp = degrade_clip(clip, preset, seed=0) if preset != "input" else clip
        variants = restore_variants(model, inp, args.sigmas, not args.no_stabilise, args.prefilter)
        n = len(next(iter(variants.values())))
        ref = clip[:n]
        base = {"clip": name, "preset": preset, "frames": n}
        first = len(rows)
        if preset != "input":
            rows.append({**base, "variant": "input", **score(inp[:n], ref, True)})
            rows.append({**base, "variant": "gt", "flicker": flicker(ref)})
        else:
            rows.append({**base, "variant": "input", **score(inp[:n], ref, False)})
        for variant, out in variants.items():
            rows.append({**base, "variant": variant, **score(out, ref, preset != "input")})
        for row in rows[first:]:
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
