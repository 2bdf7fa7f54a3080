"""Does the VapourSynth filter restore an interlaced clip as `dvface restore` does?

A progressive clip's frame pairs are woven into an interlaced 4:2:0 FFV1 clip (top field first,
`interlaced_fields.weave`); both hosts restore it field by field with the same model, the filter
on bwdif field pictures made by the VapourSynth plugin, `dvface restore` on FFmpeg's. Printed:
the share of luma samples each changes, the PSNR-Y between the two outputs over the samples
either changes, and whether every other sample is the source's in both.

Run in the VapourSynth venv (Python >= 3.12, see vapoursynth_filter/run_tests.sh), which has
the dvface core and its `dvface` command too:

    python benchmarks/vs_interlaced.py [--clip ../shared/data/realworld/whole/hamilton_640x360.mp4]
        [--frames 24] [--model MODEL]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
import vapoursynth as vs

import vsdvface
from interlaced_fields import DEFAULT_CLIP, weave

from dvface_plugin.media import open_media


def luma_planes(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="yuv420p")[: f.height].astype(np.float64) for f in container.decode(video=0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--frames", type=int, default=24, help="progressive frames to weave (even)")
    parser.add_argument("--model", default=None, help="model folder (default: the bundled one)")
    args = parser.parse_args()
    with open_media(args.clip) as src:
        truth = list(src.frames(0, args.frames - args.frames % 2))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        woven = weave(truth, folder)
        cli = folder / "cli.mkv"
        model = [] if args.model is None else ["--model", args.model]
        subprocess.run([sys.executable, "-m", "dvface_plugin.cli", "restore", str(woven), "-o", str(cli), "--quiet",
                        *model], check=True)
        # The weave tags its field order in the file, which not every source filter reads: say it.
        clip = vs.core.std.SetFieldBased(vs.core.bs.VideoSource(str(woven)), 2)
        out = vsdvface.restore(clip, model=args.model, matrix_in=6 if clip.height < 720 else 1)
        filtered = [np.asarray(f[0]).astype(np.float64) for f in out.frames()]
        source, restored = luma_planes(woven), luma_planes(cli)
    changed_cli = [r != s for r, s in zip(restored, source)]
    changed_vs = [v != s for v, s in zip(filtered, source)]
    either = np.stack([a | b for a, b in zip(changed_cli, changed_vs)])
    difference = np.stack(restored) - np.stack(filtered)
    mse = float(np.mean(difference[either] ** 2)) if either.any() else 0.0
    print(json.dumps({
        "clip": args.clip.name, "frames": len(source),
        "luma_changed_share": {"dvface restore": round(float(np.mean(changed_cli)), 4),
                               "vsdvface": round(float(np.mean(changed_vs)), 4)},
        "psnr_y_between_hosts_db": round(10 * np.log10(255 ** 2 / mse), 2) if mse else None,
        "same_outside_either": bool(np.array_equal(difference[~either], np.zeros(int((~either).sum())))),
    }, indent=1))


if __name__ == "__main__":
    main()
