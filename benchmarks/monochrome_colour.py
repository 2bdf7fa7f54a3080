"""Does a black-and-white face come back black and white? Colour the restoration adds to film.

For each black-and-white clip of ../shared/data/realworld/aligned/misc (or --clips), restores it
with `dvface restore --aligned` into --out (or reads outputs already made, --restored DIR laid out
as benchmarks/default_model_eval.py writes them: DIR/misc/<clip>/dvface-tiny.mkv) and prints, on
the face centre (rows and columns H/4..3H/4) of every frame:
- colour spread: the standard deviation of R - Y and of B - Y (BT.601, 8-bit levels; the larger),
  averaged over frames, for the input and the output (0 on grey; a toned film has a spread near
  0 too, only its mean is off);
- colour change: the largest change of R - Y, G - Y or B - Y from the input's at any pixel;
- detail: the face-centre Laplacian variance of the output over the input's (docs/benchmarks.md,
  "Detail and identity").
Images are not written; the clips are research-use media. Usage:

    python benchmarks/monochrome_colour.py [--out runs/mono] [--restored DIR] [--frames N]
        [--clips svfr_lq2 svfr_lq3 wild_color_in-1] [-- EXTRA RESTORE OPTIONS]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

from dvface_plugin.media import open_media
from dvface_plugin.metrics import detail
from dvface_plugin.runtime.monochrome import colour_of, colour_spread

MISC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "realworld" / "aligned" / "misc"


def read(path: Path, frames: int) -> np.ndarray:
    with open_media(path) as media:
        return np.stack([f for _, f in zip(range(frames), media.frames())])


def colour(clip: np.ndarray) -> np.ndarray:
    """R - Y, G - Y, B - Y of the face centre, float32 8-bit levels."""
    h, w = clip.shape[1:3]
    return colour_of(clip[:, h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].astype(np.float32))


def spread(clip: np.ndarray) -> float:
    return float(colour_spread(colour(clip)).mean())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/mono"))
    parser.add_argument("--restored", type=Path, help="read DIR/misc/<clip>/dvface-tiny.mkv instead of restoring")
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--clips", nargs="+", default=["svfr_lq2", "svfr_lq3", "wild_color_in-1"])
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    print("| clip | frames | colour spread: input / output | largest colour change | detail, output / input |")
    print("|---|---|---|---|---|")
    for name in args.clips:
        source = MISC / f"{name}.mp4"
        lq = read(source, args.frames)
        if args.restored:
            restored = args.restored / "misc" / name / "dvface-tiny.mkv"
        else:
            restored = args.out / f"{name}.mkv"
            restored.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-m", "dvface_plugin.cli", "restore", "--aligned", str(source), "-o",
                            str(restored), "--frames", f"0-{len(lq) - 1}", "--quiet", "--overwrite", *extra],
                           check=True)
        out = read(restored, len(lq))
        change = np.abs(colour(out) - colour(lq)).max()
        gain = np.mean([detail(f) for f in out]) / np.mean([detail(f) for f in lq])
        print(f"| {name} | {len(out)} | {spread(lq):.2f} / {spread(out):.2f} | {change:.1f} | {gain:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
