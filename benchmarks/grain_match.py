"""Does a restored face keep the grain of the plate around it? `dvface restore --grain` measured.

The model removes grain with the rest of the damage, so on film a restored face can sit in its
grainy plate like a clean patch. This adds fresh film-like grain (per-pixel Gaussian, softened by
a 0.6 px blur, the same in every channel, --levels 8-bit levels rms) to the first --frames frames
of a real clip, restores that plate with `--grain 0` and `--grain 1`, and measures the grain in
each output as a user sees it move: the rms of each frame's difference from its flow-guided
average with two neighbours each side (`runtime.stabilise.prefilter`, in 17-frame windows as the
engine runs it), inside the face matte (matte > 0.99) and just outside it (matte 0, within the
faces' box grown by 32 px). A ratio inside / outside near 1 means the face carries the plate's
grain; the input's own ratio is the reference. `<out>/sheet.png` shows the faces' box of the
middle frame, zoomed 2x: grainy plate | --grain 0 | --grain 1. Never trains; images are written
only into --out (ignored by git: real media and images made from it are never committed).

    python benchmarks/grain_match.py [--clip ../shared/data/realworld/whole/keep_real_3.mp4]
        [--frames 48] [--levels 4] [--out runs/grain] [-- EXTRA RESTORE OPTIONS]

About 3 minutes on two CPU cores with the bundled model.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

WHOLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "realworld" / "whole"


def add_grain(clip: Path, plate: Path, frames: int, levels: float) -> None:
    """The clip's first `frames` frames with fresh grain in each, written losslessly to `plate`."""
    import cv2

    from dvface_plugin.media import MediaWriter, open_media

    rng = np.random.default_rng(0)
    plate.unlink(missing_ok=True)
    with open_media(clip) as src, MediaWriter(plate, fps=src.fps, width=src.width, height=src.height) as out:
        for n in range(min(frames, src.frame_count)):
            picture = src.read(n).astype(np.float32)
            grain = cv2.GaussianBlur(rng.normal(0, 1, picture.shape[:2]).astype(np.float32), (0, 0), 0.6)
            picture += (grain / grain.std() * levels)[..., None]
            out.write(np.clip(np.rint(picture), 0, 255).astype(np.uint8))


def restore(plate: Path, out: Path, grain: str, extra: list[str], mask: Path | None = None) -> None:
    subprocess.run([sys.executable, "-m", "dvface_plugin.cli", "restore", str(plate), "-o", str(out),
                    "--grain", grain, "--quiet", "--overwrite", *(["--mask-out", str(mask)] if mask else []),
                    *extra], check=True)


def frames_of(path: Path) -> np.ndarray:
    from dvface_plugin.media import open_media

    with open_media(path) as src:
        return np.stack(list(src))


def faces_box(matte: np.ndarray, pad: int = 32) -> tuple[slice, slice]:
    ys, xs = np.nonzero((matte > 0).any(axis=0))
    h, w = matte.shape[1:]
    return slice(max(ys.min() - pad, 0), min(ys.max() + pad + 1, h)), slice(max(xs.min() - pad, 0), min(xs.max() + pad + 1, w))


def grain_rms(frames: np.ndarray, matte: np.ndarray, box: tuple[slice, slice]) -> dict[str, float]:
    """rms (8-bit levels) of each frame's difference from its flow-guided average, inside and outside the faces."""
    from dvface_plugin.runtime.pixels import to_model
    from dvface_plugin.runtime.stabilise import prefilter

    crops = to_model(np.ascontiguousarray(frames[:, box[0], box[1]]))
    residual = np.concatenate([c - prefilter(c, 2) for c in np.array_split(crops, range(17, len(crops), 17))])
    residual = residual.mean(axis=-1) * 127.5  # the grain is the same in every channel
    m = matte[:, box[0], box[1]]
    inside, outside = residual[m > 0.99], residual[m == 0]
    rms = lambda r: float(np.sqrt(np.mean(r ** 2)))  # noqa: E731
    return {"inside": round(rms(inside), 3), "outside": round(rms(outside), 3),
            "ratio": round(rms(inside) / rms(outside), 3)}


def sheet(panels: list[np.ndarray], box: tuple[slice, slice], path: Path) -> None:
    import cv2

    zoomed = [cv2.resize(p[box[0], box[1]], None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST) for p in panels]
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(zoomed, axis=1), cv2.COLOR_RGB2BGR))


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", type=Path, default=WHOLE / "keep_real_3.mp4")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--levels", type=float, default=4.0, help="grain added, 8-bit levels rms")
    parser.add_argument("--out", type=Path, default=Path("runs/grain"))
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    args.out.mkdir(parents=True, exist_ok=True)
    plate, mask = args.out / "grainy.mkv", args.out / "matte.mkv"
    add_grain(args.clip, plate, args.frames, args.levels)
    restore(plate, args.out / "grain0.mkv", "0", extra, mask)
    restore(plate, args.out / "grain1.mkv", "1", extra)
    matte = frames_of(mask).astype(np.float32)
    matte = (matte[..., 0] if matte.ndim == 4 else matte) / np.iinfo(np.uint16).max
    box = faces_box(matte)
    outputs = {"input": frames_of(plate), "grain 0": frames_of(args.out / "grain0.mkv"),
               "grain 1": frames_of(args.out / "grain1.mkv")}
    result = {name: grain_rms(frames, matte, box) for name, frames in outputs.items()}
    sheet([frames[len(frames) // 2] for frames in outputs.values()], box, args.out / "sheet.png")
    print(json.dumps({"clip": args.clip.name, "frames": len(matte), "levels": args.levels, **result}, indent=1))


if __name__ == "__main__":
    main()
