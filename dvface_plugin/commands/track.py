"""`dvface track IN -o tracks.json`: run face analysis once and save its tracks file.

The file lists every face track with an id, so an artist can pick faces (`restore --faces 2`),
delete a false detection or fix a landmark by hand, and render with `restore --tracks FILE`; a farm
analyses once and hands the same file to every machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..wholeframe import platecolour

if TYPE_CHECKING:
    from ..faces import Tracks
    from ..media import MediaSource


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "track",
        help="detect and track faces; write the tracks file that restore --tracks reads",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes: 0 done (also with no face found), 2 bad input or output, "
        "3 face detector model missing, 130 interrupted",
    )
    parser.add_argument("input", metavar="IN", help="video file, image sequence (shot_%%04d.png), folder or photo")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="FILE", help="tracks file to write (.json)")
    parser.add_argument("--crop-size", type=int, default=None,
                        help="crop size the stored affines map to (default 512; restore rescales to its model's)")
    parser.add_argument("--no-cache", action="store_true",
                        help="analyse IN again instead of reusing the tracks cache that restore shares")
    parser.add_argument("--preview", type=Path, default=None, metavar="DIR",
                        help="also write DIR/track_<id>.png, each track's face in its middle frame, to see which "
                        "id is which face")
    platecolour.add_arguments(parser)
    parser.add_argument("--allow-interlaced", action="store_true",
                        help="track an interlaced IN frame by frame, as `dvface restore --allow-interlaced` "
                        "restores it (by default its fields are tracked, as restore restores them)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..faces import CROP_SIZE
    from ..media import open_media
    from ..wholeframe.fields import FieldSource, restore_by_fields
    from ..wholeframe.stages import StageTimer
    from ..wholeframe.tracksource import default_cache_dir, obtain_tracks

    out = Path(args.output)
    if out.suffix.lower() != ".json":
        raise InputError(f"{out.name}: the tracks file must be a .json file")
    if not out.parent.is_dir():
        raise InputError(f"output folder {out.parent} does not exist; create it first")
    if args.preview is not None and args.preview.is_dir() and any(args.preview.glob("track_*.png")):
        raise InputError(f"{args.preview} already holds track previews; empty it or choose another folder")
    colour = platecolour.settings(args)
    crop_size = CROP_SIZE if args.crop_size is None else args.crop_size
    if crop_size < 16:
        raise InputError(f"--crop-size must be at least 16 px, got {crop_size}")
    timer = StageTimer()
    with open_media(args.input) as plates:
        first = restore_by_fields(plates.metadata, args.input, args.allow_interlaced)  # as `dvface restore`
        pictures = plates if first is None else FieldSource(plates, first)
        src = platecolour.viewed(pictures, colour)  # faces are found, and previews shown, as the model sees them
        total = src.frame_count

        def progress(frames, desc):
            if args.quiet:
                return frames
            from tqdm import tqdm

            return tqdm(frames, total=total, desc=desc, unit="frame", file=sys.stderr, leave=False)

        found = obtain_tracks(src, timer, crop_size, progress=progress,
                              cache_dir=None if args.no_cache else default_cache_dir())
        if args.preview is not None:
            write_previews(src, found.tracks, args.preview)
    tracks = found.tracks
    try:
        tracks.save(out)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror or exc}; choose another path") from exc
    rows = [
        {"id": t.id, "first_frame": t.first_frame, "last_frame": t.last_frame, "frames": len(t.faces),
         "median_size": round(t.median_size, 1)}
        for t in tracks
    ]
    if args.json:
        print(json.dumps({"input": str(args.input), "output": str(out), "frames": tracks.frame_count,
                          "tracks_source": found.origin, "tracks": rows, "seconds": timer.summary()}))
        return 0
    if not rows:
        print(f"dvface track: warning: no face found in {args.input}", file=sys.stderr)
    for row in rows:
        print(f"track {row['id']}: frames {row['first_frame']}-{row['last_frame']} ({row['frames']}), "
              f"median face {row['median_size']:g} px")
    return 0


PREVIEW_SIZE = 256


def write_previews(src: MediaSource, tracks: Tracks, folder: Path) -> list[Path]:
    """DIR/track_<id>.png: each track's aligned face in its middle frame, 8-bit, PREVIEW_SIZE px."""
    import numpy as np

    from ..faces import warp_to_crop
    from ..media import MediaWriter
    from ..media.pixels import rgb_to_dtype

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for track in tracks:
        face = track.faces[len(track.faces) // 2]
        frame = rgb_to_dtype(src.read(face.frame), np.uint8)
        crop = warp_to_crop(frame, face.affine * (PREVIEW_SIZE / tracks.crop_size), PREVIEW_SIZE)
        written.append(folder / f"track_{track.id}.png")
        with MediaWriter(written[-1], width=PREVIEW_SIZE, height=PREVIEW_SIZE) as writer:
            writer.write(crop)
    return written
