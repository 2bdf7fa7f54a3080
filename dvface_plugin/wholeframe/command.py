"""`dvface restore IN -o OUT`: restore every chosen face of a video, image sequence or photo.

Everything that can be refused is checked before the slow part (input readable, output writable
and able to keep the input's depth, model present), the output appears only when complete
(MediaWriter renames it into place), and a clip without faces comes out unchanged with a warning.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Iterator

from ..errors import IO_EXIT_CODE, InputError
from . import platecolour
from .stages import STAGES, StageTimer

EXIT_OK = 0
EXIT_INPUT = 2
EXIT_MODEL = 3
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = f"""\
exit codes:
  {EXIT_OK}    done (also when no face was found: the output is then the unchanged input, with a warning)
  {EXIT_INPUT}    bad arguments or input: unreadable or unsupported file, no frames, frames changing size,
       output not writable, already there without --overwrite, or unable to keep the input's bit depth,
       --faces not a policy or id list, tracks file not for this input
  {EXIT_MODEL}    model or weights missing or unusable (--model), or the face detector model missing
  {IO_EXIT_CODE}    reading or writing failed in the system (folder gone, no permission, disk full)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)
Whatever the exit code, OUT (and --mask-out) exist only if the whole job succeeded."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Whole-frame options of `dvface restore` (the shared ones are defined by the restore parser)."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EXIT_CODES_HELP
    group = parser.add_argument_group("whole frames (without --aligned)")
    group.add_argument("--faces", default="all",
                       help="which face tracks to restore: all, largest, center, or track ids such as 1,3 "
                            "(ids as listed by `dvface track`; default all)")
    group.add_argument("--min-face", type=float, default=0.0, metavar="PX",
                       help="skip tracks whose median face size is below PX pixels (default 0)")
    group.add_argument("--tracks", type=Path, default=None, metavar="FILE",
                       help="face tracks file from `dvface track` (may be hand-edited) instead of analysing IN")
    group.add_argument("--force-tracks", action="store_true",
                       help="use --tracks even though it was made from other pixels (size and frame count "
                            "must still match)")
    group.add_argument("--no-cache", action="store_true",
                       help="analyse IN again instead of reusing cached face tracks (cache: $DVFACE_CACHE_DIR/tracks "
                            "or ~/.cache/dvface/tracks)")
    group.add_argument("--mask-out", type=Path, default=None, metavar="PATH",
                       help="also write the face matte, 16-bit grey where the format allows "
                            "(matte_%%04d.png, .tif sequence, or .mkv/.mov video)")
    platecolour.add_arguments(group)
    group.add_argument("--report", type=Path, default=None, metavar="DIR",
                       help="also write a QC page of the result to DIR/index.html (see `dvface report`)")
    group.add_argument("--json", action="store_true",
                       help="print a JSON summary on stdout (frames, tracks, faces per frame, seconds per stage)")


def run(args: argparse.Namespace) -> int:
    summary = restore_whole_frames(args)  # WeightsError -> exit 3 through the CLI's DVFaceError handler
    if args.report is not None:
        from ..model.folders import DEFAULT_MODEL
        from ..report import build_report
        from .tracksource import default_cache_dir

        run = {"model": str(args.model or DEFAULT_MODEL), "backend": summary["backend"], "device": summary["device"],
               "precision": summary["precision"], "strength": args.strength, "faces": args.faces,
               "min_face": args.min_face, "stabilise": "model's" if args.stabilise is None else args.stabilise,
               "grain": args.grain, "restore_seconds": summary["seconds"]["wall"]}
        build_report(args.input, args.output, args.report, crop_size=summary["crop_size"],
                     cache_dir=None if args.no_cache else default_cache_dir(), tracks_file=args.tracks,
                     check_digest=not args.force_tracks, frames=args.frames, faces=args.faces,
                     min_face=args.min_face, colour=platecolour.settings(args), run=run,
                     allow_interlaced=args.allow_interlaced)
    if args.json:
        print(json.dumps(summary))
    elif not args.quiet:
        stages = ", ".join(f"{k} {v:.2f}s" for k, v in summary["seconds"].items() if k in STAGES)
        restored = sum(t["restored"] for t in summary["tracks"])
        print(f"dvface restore: {summary['frames']} frames, {restored} of {len(summary['tracks'])} face tracks "
              f"restored (tracks from {summary['tracks_source']}); {stages}", file=sys.stderr)
    return EXIT_OK


def _check_args(args: argparse.Namespace) -> None:
    from ..faces import parse_faces

    if args.min_face < 0:
        raise InputError(f"--min-face must be >= 0 px, got {args.min_face}")
    if args.force_tracks and args.tracks is None:
        raise InputError("--force-tracks only applies with --tracks FILE")
    if args.mask_out is not None and Path(args.mask_out).resolve() in (Path(args.output).resolve(),
                                                                       Path(args.input).resolve()):
        raise InputError("--mask-out must name a file other than IN and OUT")
    parse_faces(args.faces)  # a typo fails now, not after minutes of face analysis
    if args.report is not None and (Path(args.report) / "report.json").exists() and not args.overwrite:
        raise InputError(f"{args.report} already holds a report; pass --overwrite (-y) to replace it")


def _warn(message: str) -> None:
    print(f"dvface restore: warning: {message}", file=sys.stderr)


def _progress(quiet: bool):
    def wrap(items: Iterator, desc: str, total: int | None) -> Iterator:
        if quiet:
            return items
        from tqdm import tqdm

        return tqdm(items, total=total, desc=desc, unit="frame", file=sys.stderr, dynamic_ncols=True, leave=False)

    return wrap


def crops_bar(total: int):
    """The restore stage's bar: face crops through the model, the work that takes the time, with
    an ETA from the average rate so far (tqdm's default smoothing swings with every window)."""
    from tqdm import tqdm

    return tqdm(total=total, desc="restoring", unit="crop", file=sys.stderr, dynamic_ncols=True, leave=False,
                smoothing=0, mininterval=0)  # one update a window: each is shown, the last one too


class _WritingBar:
    """The writer, counting frames written on a bar of their own under the restore's ("writing")."""

    def __init__(self, writer: Any, total: int) -> None:
        from tqdm import tqdm

        self.writer = writer
        self.bar = tqdm(total=total, desc="writing", unit="frame", file=sys.stderr, dynamic_ncols=True,
                        leave=False, position=1)

    def write(self, frame: Any, matte: Any = None) -> None:
        self.writer.write(frame, matte)
        self.bar.update(1)
        if self.bar.n == self.bar.total:
            self.bar.refresh()  # the last frame shows even when it came within tqdm's refresh interval


def restore_whole_frames(args: argparse.Namespace) -> dict[str, Any]:
    """Run the job the parsed `restore` arguments describe; returns the summary `--json` prints."""
    from ..faces import select_tracks
    from ..media import MediaWriter, open_media, parse_frame_range
    from ..runtime.backends import describe, open_restorer
    from .compositor import read_span, restore_stream
    from .fields import FieldSource, FieldWeaver, restore_by_fields
    from .platecolour import PlateRoundTrip
    from .tracksource import default_cache_dir, obtain_tracks

    _check_args(args)
    colour = platecolour.settings(args)
    started = time.perf_counter()
    timer = StageTimer()
    progress = _progress(args.quiet)
    with open_media(args.input, sequence_fps=args.fps) as src, ExitStack() as stack:
        n_frames = src.frame_count
        if n_frames < 1:
            raise InputError(f"{args.input} has no frames")
        # Interlaced video is restored field by field (fields.py); one of unknown field order is refused.
        first = restore_by_fields(src.metadata, args.input, args.allow_interlaced)
        trim = (None if args.frames is None
                else parse_frame_range(args.frames, n_frames, src.metadata.get("first_frame", 0)))
        start, stop = trim or (0, n_frames)
        # Writers open first: every refusal about the output (folder, codec, depth, size, audio)
        # comes before the slow part. They write to hidden partial files until closed.
        writer = stack.enter_context(MediaWriter(
            args.output, fps=src.fps or None, width=src.width, height=src.height,
            bit_depth=src.source_bits, codec=args.codec, streams_from=src, metadata=src.metadata,
            allow_bit_depth_loss=args.allow_bit_depth_loss, allow_retime=args.allow_retime, trim=trim,
            planes_from=src, woven_fields=first is not None, drop_subtitles=args.drop_subtitles,
        ))
        mask_writer = None
        if args.mask_out is not None:
            mask_writer = stack.enter_context(MediaWriter(
                args.mask_out, fps=src.fps or None, width=src.width, height=src.height, bit_depth=16,
                allow_bit_depth_loss=True, metadata=src.metadata, allow_retime=args.allow_retime, trim=trim,
            ))
        restorer = open_restorer(
            args.model, backend=args.backend, device=args.device, precision=args.precision, window=args.window,
            stabilise=args.stabilise, grain=args.grain, streams=args.streams,
        )
        pictures = src if first is None else FieldSource(src, first)
        found = obtain_tracks(
            platecolour.viewed(pictures, colour),  # faces are found as the model sees them
            timer,
            restorer.config.crop_size,
            tracks_file=args.tracks,
            check_digest=not args.force_tracks,
            cache_dir=None if args.no_cache else default_cache_dir(),
            progress=lambda frames, desc: progress(frames, desc, pictures.frame_count),
        )
        tracks = found.tracks
        chosen = select_tracks(tracks, args.faces, args.min_face)
        if not len(tracks):
            _warn(f"no face found in {args.input}; the output is the unchanged input")
        elif not len(chosen):
            _warn(f"none of the {len(tracks)} face tracks matches --faces {args.faces} --min-face "
                  f"{args.min_face:g}; the output is the unchanged input")
        elif not args.quiet:
            print(f"dvface restore: {len(chosen)} of {len(tracks)} face tracks, on {describe(restorer)}",
                  file=sys.stderr)
        frames, span = pictures.frames(), None
        p_start, p_stop = (start, stop) if first is None else (2 * start, 2 * stop)  # pictures: frames or fields
        if trim is not None:  # decode only what the range's windows read; tracks still span the clip
            config = restorer.config
            lo, hi = read_span(chosen, p_start, p_stop, config.window if args.window is None else args.window,
                               config.overlap if args.overlap is None else args.overlap, config.vae_temporal_stride)
            frames, span = pictures.frames(lo, hi), (lo, p_start, p_stop)
        if not args.quiet:
            writer = _WritingBar(writer, stop - start)
            stack.callback(writer.bar.close)
        if first is not None:  # the compositor writes field pictures; the writers take them woven, in pairs
            writer = FieldWeaver(writer, first)
            mask_writer = None if mask_writer is None else FieldWeaver(mask_writer, first)
        if colour is not None:  # picture by picture: each field's change goes back into its own plate picture
            writer = PlateRoundTrip(colour, writer)
            frames = writer.frames(frames, span[0] if span else 0, p_start)
        result = restore_stream(
            frames, chosen, restorer, writer, timer,
            name=Path(args.input).name, strength=args.strength, window=args.window,
            overlap=args.overlap, mask_writer=mask_writer,
            progress=None if args.quiet else crops_bar, span=span,
        )
        with timer.stage("encode"):  # flushing the encoders' look-ahead and the rename count too
            stack.close()
    summary = _summary(args, src, found, chosen, result, timer, restorer, time.perf_counter() - started)
    if first is not None:  # tracks and faces_per_frame count field pictures, two a frame
        summary.update(frames=stop - start, interlaced=src.metadata["interlaced"])
    return summary


def _summary(args, src, found, chosen, result, timer, restorer, wall: float) -> dict[str, Any]:
    chosen_ids = {t.id for t in chosen}
    return {
        "input": str(args.input),
        "output": str(args.output),
        "mask": None if args.mask_out is None else str(args.mask_out),
        "frames": len(result.faces_per_frame),
        "width": src.width,
        "height": src.height,
        "fps": str(src.fps),
        "pixel_aspect": found.tracks.pixel_aspect,  # how the faces were found and aligned: as displayed
        "rotation": found.tracks.rotation,
        "tracks_source": found.origin,
        "tracks_cache": None if found.cache_file is None else str(found.cache_file),
        "tracks": [
            {"id": t.id, "first_frame": t.first_frame, "last_frame": t.last_frame, "frames": len(t.faces),
             "median_size": round(t.median_size, 1), "restored": t.id in chosen_ids}
            for t in found.tracks
        ],
        "faces_per_frame": result.faces_per_frame,
        "max_frames_held": result.max_frames_held,
        "backend": restorer.backend,
        "crop_size": restorer.config.crop_size,
        "device": str(restorer.device),
        "precision": restorer.precision,
        "seconds": {**timer.summary(), "wall": round(wall, 4)},
    }
