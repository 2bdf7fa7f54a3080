"""Does the temporal stabilisation keep detail? Candidate stabilisers on the paired benchmark clips.

Each clip of --paired (a folder holding LQ.mp4 and GT.mp4), and each video given to --noref,
is restored once with the model's stabilisation off, and the float output of every engine window is kept under --out (float16,
git-ignored runs/). Each candidate then runs on those windows exactly where the engine runs it
(after the model, before the cross-fade of overlapping windows and the rounding to 8 bits), and
the result is scored against GT.mp4 at the temporal offset `dvface eval` finds:

* detail: Laplacian variance of the luma over the centre half of the crop (`metrics.detail`),
  mean over frames, and its ratio to the unstabilised output's ("keeps detail": >= 0.98);
* flicker (`metrics.flicker`, 8-bit levels) and E*warp (x1e-3, with the ground truth's DIS flow,
  as `dvface eval --gt` computes it); PSNR (Y) for reference; seconds spent stabilising.

A --noref clip has no ground truth: its E*warp uses the output's own flow and there is no PSNR
(`dvface eval --ref` without GT); the input's own flicker and E*warp are printed beside it.

--boost imitates a sharper model: `sharp` adds an unsharp mask (1.5 x the detail above a
1-pixel Gaussian) to every window output, `sharp+noise` also adds fresh high-pass noise
(3 levels) to every frame, i.e. detail that flickers. Usage (about 1 min a clip to restore,
then about 30 s a candidate for the three clips on two busy CPU cores):

    python benchmarks/stabilise_detail.py [--paired ../shared/data/benchmark/paired] [--model dvface-tiny]
        [--noref VIDEO ...] [--boost none|sharp|sharp+noise] [--only library old low1.5 ...]
        [--out runs/stabilise_detail]

Candidates (radius 2, photometric tolerance 16 levels unless named otherwise):
  old        the stabiliser before: whole frames averaged, weights on whole-frame differences
  lowS       only the low band (Gaussian blur, sigma S pixels) averaged, weights on low-band
             differences; each frame keeps its own high band (S = 1, 1.5, 2, 3)
  lowS-wfull the same with the weights of `old` (whole-frame differences)
  lowS-flowlow the same as lowS with the optical flow computed on the low band
  lowS+highH the low band as lowS, and the high band averaged too where it agrees with the
             frame's own within H levels (blurred difference; bicubic warp)
  lowS+texR  the low band as lowS, and the high band averaged too with the low band's weights
             (bicubic warp), then scaled back to the frame's own high-band energy (local RMS
             over a Gaussian of sigma R pixels, gain at most 2); lowS+texRmM mixes M of that
             with 1 - M of the frame's own high band
  library    `runtime.stabilise.stabilise` as it is now (the model's radius)
  library-rN the same with N neighbours each side
  anchorS+library  the output's low band below a Gaussian of sigma S pixels replaced by the
             input's (out + G_S(in - out)), then `library`: brightness as steady as the input's
  steadyS+library  the model's change of that low band (G_S(out - in)) replaced by its mean over
             the window, then `library`: the model's brightness correction kept, made constant
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from dvface_plugin.engine import WindowGrid
from dvface_plugin.evaluate import OFFSET_FRAMES, OFFSET_SIZE, _read_frames
from dvface_plugin.media import open_media
from dvface_plugin.metrics import (
    FlowEstimator,
    consistency_mask,
    detail,
    find_offset,
    flicker,
    luma_u8,
    mean_psnr,
    psnr_luma,
    rgb_to_y,
    warp,
    warp_error_pair,
    warping_error,
)
from dvface_plugin.runtime.backends import open_restorer
from dvface_plugin.runtime.pixels import from_model, to_model
from dvface_plugin.runtime.stabilise import stabilise

ROOT = Path(__file__).resolve().parents[1]
PAIRED = ROOT.parent / "shared" / "data" / "benchmark" / "paired"
LEVEL = 1 / 127.5  # one 8-bit level in model units


def load(path: Path) -> np.ndarray:
    with open_media(path) as media:
        return np.stack(list(media.frames()))


def blur(frames: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in frames])


def luma8(frames: np.ndarray) -> np.ndarray:
    y = ((frames + 1.0) * 127.5) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def warp_cubic(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(img, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def anchored(frames: np.ndarray, inputs: np.ndarray, radius: int, sigma: float) -> np.ndarray:
    return stabilise(frames + blur(inputs - frames, sigma), radius)


def steadied(frames: np.ndarray, inputs: np.ndarray, radius: int, sigma: float) -> np.ndarray:
    change = blur(frames - inputs, sigma)
    return stabilise(frames - change + change.mean(0, keepdims=True), radius)


def local_rms(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-weighted RMS over the channels and a neighbourhood of sigma pixels, per frame (T, H, W)."""
    return np.sqrt(np.stack([cv2.GaussianBlur((f**2).mean(-1), (0, 0), sigma) for f in x]) + 1e-12)


def candidate(frames: np.ndarray, radius: int = 2, sigma_levels: float = 16.0, band: float = 0.0,
              weights_on: str = "band", flow_on: str = "full", high_levels: float | None = None,
              texture: float | None = None, mix: float = 1.0) -> np.ndarray:
    """One window (T, H, W, 3) in [-1, 1] stabilised; band 0 is the stabiliser before this change."""
    n = len(frames)
    low = blur(frames, band) if band > 0 else frames
    high = frames - low
    luma = luma8(low if flow_on == "low" else frames)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    acc, total = low.copy(), np.ones(frames.shape[:3], np.float32)
    acc_h, total_h = high.copy(), np.ones(frames.shape[:3], np.float32)
    scale = 127.5 / sigma_levels
    for t in range(n):
        for s in range(t + 1, min(n, t + radius + 1)):
            to_s, to_t = dis.calc(luma[t], luma[s], None), dis.calc(luma[s], luma[t], None)
            for dst, src, flow, back in ((t, s, to_s, to_t), (s, t, to_t, to_s)):
                moved = warp(low[src], flow)
                ref = low[dst]
                if weights_on == "full" and band > 0:
                    moved_full, ref = warp(frames[src], flow), frames[dst]
                    diff = np.abs(moved_full - ref).mean(-1) * scale
                else:
                    diff = np.abs(moved - ref).mean(-1) * scale
                weight = consistency_mask(flow, back) * np.exp(-(diff**2))
                acc[dst] += moved * weight[..., None]
                total[dst] += weight
                if texture is not None or high_levels is not None:
                    moved_h = warp_cubic(frames[src], flow) - warp_cubic(low[src], flow)
                    weight_h = weight
                    if high_levels is not None:
                        diff_h = cv2.GaussianBlur(np.abs(moved_h - high[dst]).mean(-1), (0, 0), 1.0)
                        weight_h = weight * np.exp(-((diff_h / (high_levels * LEVEL)) ** 2))
                    acc_h[dst] += moved_h * weight_h[..., None]
                    total_h[dst] += weight_h
    if texture is not None:  # the averaged high band, brought back to the frame's own local energy
        avg = acc_h / total_h[..., None]
        gain = np.minimum(local_rms(high, texture) / local_rms(avg, texture), 2.0)
        return acc / total[..., None] + (1 - mix) * high + mix * avg * gain[..., None]
    return acc / total[..., None] + (acc_h / total_h[..., None] if high_levels is not None else high)


CANDIDATES = {
    "old": partial(candidate, band=0.0),
    **{f"low{s:g}": partial(candidate, band=s) for s in (1.0, 1.5, 2.0, 3.0)},
    "low1.5-wfull": partial(candidate, band=1.5, weights_on="full"),
    "low1.5-flowlow": partial(candidate, band=1.5, flow_on="low"),
    "low2-flowlow": partial(candidate, band=2.0, flow_on="low"),
    "low1.5+high2": partial(candidate, band=1.5, high_levels=2.0),
    "low1.5+high1": partial(candidate, band=1.5, high_levels=1.0),
    **{f"low2+tex{t:g}": partial(candidate, band=2.0, texture=float(t)) for t in (2, 4, 8)},
    "low2+tex4m0.5": partial(candidate, band=2.0, texture=4.0, mix=0.5),
    **{f"library-r{r}": (lambda frames, radius, r=r: stabilise(frames, r)) for r in (3, 4)},
}
# candidates that also read the window's input crops
WITH_INPUT = {
    **{f"anchor{s}+library": partial(anchored, sigma=float(s)) for s in (8, 16, 32)},
    **{f"steady{s}+library": partial(steadied, sigma=float(s)) for s in (4, 8, 16)},
}


def restore_windows(crops: np.ndarray, restorer, cache: Path) -> tuple[WindowGrid, list[np.ndarray]]:
    """The restorer's float output of every window of the clip's crops (cached as float16)."""
    cfg = restorer.config
    grid = WindowGrid(len(crops), cfg.window, cfg.overlap, cfg.vae_temporal_stride)
    if cache.exists():
        with np.load(cache) as z:
            same = "identity" in z.files and str(z["identity"]) == restorer.identity
            if same and len(z.files) == len(grid.windows) + 1:
                return grid, [z[f"w{w.index}"].astype(np.float32) for w in grid.windows]
    outs = [restorer.decode(restorer.encode(crops[w.start : w.stop])).astype(np.float16) for w in grid.windows]
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, identity=np.array(restorer.identity), **{f"w{w.index}": o for w, o in zip(grid.windows, outs)})
    return grid, [o.astype(np.float32) for o in outs]  # as a later run reads them back


def boosted(y: np.ndarray, boost: str, seed: int) -> np.ndarray:
    if boost == "none":
        return y
    y = y + 1.5 * (y - blur(y, 1.0))
    if boost == "sharp+noise":
        noise = np.random.default_rng(seed).normal(0, 3 * LEVEL, y.shape).astype(np.float32)
        y = y + noise - blur(noise, 1.5)
    return np.clip(y, -1.0, 1.0)


def assemble(grid: WindowGrid, outs: list[np.ndarray], fn, inputs: np.ndarray) -> tuple[np.ndarray, float]:
    """Stabilise each window, cross-fade as the engine does, round to 8 bits; and the seconds it took.
    fn takes a window's output and its input crops (model units)."""
    acc = np.zeros((grid.n_frames, *outs[0].shape[1:]), np.float64)
    spent = 0.0
    for w, y in zip(grid.windows, outs):
        start = time.perf_counter()
        y = fn(y, inputs[w.start : w.stop]) if fn is not None else y
        spent += time.perf_counter() - start
        acc[w.start : w.stop] += y.astype(np.float64) * grid.weights(w.index)[:, None, None, None]
    return from_model(acc, np.uint8), spent


def noref_name(video: Path) -> str:
    """A clip's name: the folder's for an LQ.mp4 (the real-world dvface-page clips), else the file's."""
    return video.parent.name if video.name == "LQ.mp4" else video.stem


def score(out: np.ndarray, clip: dict) -> dict[str, float]:
    """Detail, flicker, E*warp and (with a GT) PSNR of an assembled output, as in the docstring."""
    gt, offset, gt_flows = clip["gt"], clip["offset"], clip["gt_flows"]
    if gt is None:  # no reference: the output's own flow, detail against the input
        return {"detail": float(np.mean([detail(f) for f in out])), "flicker": flicker(out),
                "ewarp": 1e3 * warping_error(out)}
    ts = [t for t in range(len(gt)) if 0 <= t + offset < len(out)]  # pred[t + offset] ~ gt[t]
    return {
        "detail": float(np.mean([detail(out[t + offset]) for t in ts])), "flicker": flicker(out[t + offset] for t in ts),
        "ewarp": 1e3 * float(np.mean([warp_error_pair(out[t - 1 + offset], out[t + offset], *gt_flows[t - 1])
                                      for t in ts[1:]])),
        "psnr": mean_psnr([psnr_luma(rgb_to_y(out[t + offset]), rgb_to_y(gt[t])) for t in ts]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paired", type=Path, default=PAIRED, help="folder of clip folders holding LQ.mp4, GT.mp4")
    parser.add_argument("--noref", type=Path, nargs="*", default=[], metavar="VIDEO",
                        help="aligned clips without ground truth, scored against themselves")
    parser.add_argument("--model", default="dvface-tiny")
    parser.add_argument("--boost", choices=("none", "sharp", "sharp+noise"), default="none")
    parser.add_argument("--only", nargs="+", default=["library", "old", "low1", "low1.5", "low2", "low3"],
                        choices=["library", *CANDIDATES, *WITH_INPUT], metavar="NAME",
                        help="candidates to run (see above)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "stabilise_detail")
    args = parser.parse_args()
    paired = sorted(p for p in args.paired.iterdir() if (p / "LQ.mp4").is_file() and (p / "GT.mp4").is_file()) \
        if args.paired.is_dir() else []
    missing = [str(v) for v in args.noref if not v.is_file()]
    if missing:
        raise SystemExit(f"--noref: no such video: {', '.join(missing)}")
    if not paired and not args.noref:
        raise SystemExit(f"no clip folders with LQ.mp4 and GT.mp4 under {args.paired}, and no --noref clips")
    out_dir = args.out.resolve()
    if not out_dir.is_relative_to(ROOT / "runs"):
        raise SystemExit(f"--out must be under {ROOT / 'runs'} (git-ignored), got {args.out}")
    restorer = open_restorer(args.model)
    radius = restorer.config.stabilise
    restorer = restorer.with_stabilise(0)
    tag = f"{Path(args.model).name}-{restorer.identity.split('|')[0]}"  # with the weights' digest
    sources = {c.name: (c / "LQ.mp4", c / "GT.mp4") for c in paired} | {noref_name(v): (v, None) for v in args.noref}
    data = {}
    for name, (lq_path, gt_path) in sources.items():
        crops = load(lq_path)
        grid, outs = restore_windows(crops, restorer, out_dir / tag / f"{name}.npz")
        outs = [boosted(y, args.boost, seed=i) for i, y in enumerate(outs)]
        clip = {"grid": grid, "outs": outs, "inputs": to_model(crops), "gt": None, "offset": 0, "gt_flows": None}
        if gt_path is not None:
            gt = np.stack(list(_read_frames(gt_path)))  # decoded as `dvface eval` decodes it
            plain, _ = assemble(grid, outs, None, clip["inputs"])
            small = [[cv2.resize(f, (OFFSET_SIZE, OFFSET_SIZE), interpolation=cv2.INTER_AREA) for f in v[:OFFSET_FRAMES]]
                     for v in (plain, gt)]
            flows, gt_y = FlowEstimator(), [luma_u8(f) for f in gt]
            clip |= {"gt": gt, "offset": find_offset(*small, 2)[0],
                     "gt_flows": [flows.pair(gt_y[t - 1], gt_y[t]) for t in range(1, len(gt))]}
        else:
            print(f"{name} (no reference): input flicker {flicker(crops):.3f}, E*warp {1e3 * warping_error(crops):.3f}")
        data[name] = clip
    rows: dict[str, dict[str, dict[str, float]]] = {}
    base: dict[str, float] = {}
    names = ", ".join(f"{c} (offset {d['offset']})" if d["gt"] is not None else c for c, d in data.items())
    print(f"boost: {args.boost}; clips: {names}; per clip: detail (ratio to radius 0) / flicker / E*warp / PSNR\n")
    print("| stabiliser | " + " | ".join(data) + " | s/frame |\n|---|" + "---|" * (len(data) + 1))

    def without_input(fn):
        return lambda frames, inputs: fn(frames)

    fns = {"radius 0": None,
           **{n: partial(WITH_INPUT[n], radius=radius) if n in WITH_INPUT
              else without_input(partial(stabilise if n == "library" else CANDIDATES[n], radius=radius))
              for n in args.only}}
    for name, fn in fns.items():
        cells, spent, frames = {}, 0.0, 0
        for clip_name, clip in data.items():
            out, seconds = assemble(clip["grid"], clip["outs"], fn, clip["inputs"])
            spent, frames = spent + seconds, frames + sum(w.length for w in clip["grid"].windows)
            cell = score(out, clip)
            base.setdefault(clip_name, cell["detail"])
            cells[clip_name] = cell | {"detail_ratio": cell["detail"] / base[clip_name]}
        rows[name] = cells
        text = " | ".join(f"{c['detail']:.1f} ({c['detail_ratio']:.3f}) / {c['flicker']:.3f} / {c['ewarp']:.3f}"
                          + (f" / {c['psnr']:.2f}" if "psnr" in c else "") for c in cells.values())
        print(f"| {name} | {text} | {spent / frames:.3f} |", flush=True)
    result = out_dir / f"results-{tag}-{args.boost}.json"
    summary = {"model": args.model, "identity": restorer.identity, "boost": args.boost, "radius": radius, "rows": rows}
    result.write_text(json.dumps(summary, indent=1))
    print(f"\nwritten {result}")


if __name__ == "__main__":
    main()
