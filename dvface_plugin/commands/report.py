"""`dvface report IN RESTORED -o DIR`: arguments, then `report.build_report`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InputError
from ..wholeframe import platecolour


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="a QC page of a restored shot: every face track's crops, detail, flicker and identity",
        description="Write DIR/index.html (static: open it in any browser) and DIR/report.json: the shot, "
        "each face track with thumbnails across it, a full-frame input/restored toggle and plots over time "
        "of detail, flicker and identity distance (where dlib is installed), and the frames where no face "
        "was restored and why.",
    )
    parser.add_argument("input", metavar="IN", help="the clip that was restored")
    parser.add_argument("restored", metavar="RESTORED", help="its restoration (same frames and size)")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="report folder (created)")
    parser.add_argument("-y", "--overwrite", action="store_true", help="replace a report already in DIR")
    parser.add_argument("--crop-size", type=int, default=512,
                        help="the model's crop size, so the cached face tracks of the restore are reused (default 512)")
    parser.add_argument("--tracks", type=Path, default=None, metavar="FILE",
                        help="the face tracks file the restore was given (see `dvface restore --tracks`)")
    parser.add_argument("--force-tracks", action="store_true",
                        help="use --tracks even though it was made from other pixels, as `dvface restore` allows")
    parser.add_argument("--frames", metavar="A-B", default=None,
                        help="the range a `dvface restore --frames A-B` restored (RESTORED holds only those frames)")
    parser.add_argument("--faces", default=None,
                        help="the restore's --faces, so tracks it left out are named with the reason")
    parser.add_argument("--min-face", type=float, default=0.0, help="the restore's --min-face (px)")
    parser.add_argument("--allow-interlaced", action="store_true",
                        help="the restore's --allow-interlaced: an interlaced IN is then measured frame by frame "
                        "(by default field by field, as it was restored)")
    platecolour.add_arguments(parser)  # both clips are plates in that space; the page shows them as the model saw them
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..report import build_report
    from ..wholeframe.tracksource import default_cache_dir

    out = Path(args.output)
    if (out / "report.json").exists() and not args.overwrite:
        raise InputError(f"{out} already holds a report; pass --overwrite (-y) to replace it, or name another folder")
    report = build_report(args.input, args.restored, out, crop_size=args.crop_size, cache_dir=default_cache_dir(),
                          tracks_file=args.tracks, check_digest=not args.force_tracks, frames=args.frames,
                          faces=args.faces, min_face=args.min_face, colour=platecolour.settings(args),
                          allow_interlaced=args.allow_interlaced)
    restored = sum(t["restored"] for t in report["tracks"])
    print(f"dvface report: {len(report['tracks'])} face tracks ({restored} restored) -> {out / 'index.html'}",
          file=sys.stderr)
    return 0
