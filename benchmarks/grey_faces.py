"""How the model restores black-and-white faces: the paired benchmark clips made grey.

Much archive footage is black-and-white film, and every face the bundled model trained on is in
colour. This writes grey copies of ../shared/data/benchmark/paired (LQ and GT both turned into
their BT.601 luma in all three channels, `training.data.to_grey`, losslessly to FFV1), restores
each grey LQ with `dvface restore --aligned`, and scores the result with `dvface eval` against
the grey GT. The luma is the same as the colour clips', so the detail measure of LQ and GT is
too: compare the output's row with the colour run's in docs/benchmarks.md ("Our default model").
Never trains; everything is written into --out (ignored by git: real media and images made from
it are never committed).

    python benchmarks/grey_faces.py [--model dvface-tiny] [--out runs/grey] [-- EXTRA RESTORE OPTIONS]

About 6 minutes on two CPU cores with the bundled model.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

PAIRED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "benchmark" / "paired"


def grey_copy(source: Path, target: Path) -> None:
    from dvface_plugin.media import MediaWriter, open_media
    from dvface_plugin.training.data import to_grey

    target.unlink(missing_ok=True)
    with open_media(source) as src, MediaWriter(target, fps=src.fps, width=src.width, height=src.height) as out:
        for frame in src:
            out.write(to_grey(frame[None])[0])


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="dvface-tiny")
    parser.add_argument("--out", type=Path, default=Path("runs/grey"))
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    cli = [sys.executable, "-m", "dvface_plugin.cli"]
    for clip in sorted(p for p in PAIRED.iterdir() if p.is_dir()):
        folder = args.out / clip.name
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("LQ", "GT"):
            grey_copy(clip / f"{name}.mp4", folder / f"{name}.mkv")
        subprocess.run([*cli, "restore", "--aligned", str(folder / "LQ.mkv"), "-o", str(folder / "ours.mkv"),
                        "--model", args.model, "--quiet", "--overwrite", *extra], check=True)
    subprocess.run([*cli, "eval", "--pred", str(args.out), "--gt", str(args.out), "--markdown"], check=True)


if __name__ == "__main__":
    main()
