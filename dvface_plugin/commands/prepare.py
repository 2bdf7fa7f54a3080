"""`dvface prepare`: arguments, then `training.prepare.prepare`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..training.prepare import prepare


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("prepare", help="align HQ videos/photos into training crops")
    parser.add_argument("inputs", nargs="+", type=Path, help="folders or files of HQ videos and photos")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder of .npy clips and .png crops")
    parser.add_argument("--size", type=int, default=256, help="crop side in pixels (512 = inference template)")
    parser.add_argument("--max-frames", type=int, default=120, help="frames read per video")
    parser.add_argument("--min-frames", type=int, default=9, help="shortest contiguous track kept")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    index = prepare(args.inputs, args.out, args.size, args.max_frames, args.min_frames)
    clips = sum(1 for item in index if item["frames"] > 1)
    print(f"wrote {clips} clips and {len(index) - clips} photos to {args.out}")
    return 0
