"""`dvface batch INPUTS... -o OUTDIR`: restore many clips on Ray workers, resumably.

Each clip is split into chunks (see `plan`), rendered by actors that each hold a loaded model,
and joined into OUTDIR/<stem>.<ext> with the source's audio and metadata (an image sequence of
scans: OUTDIR/<stem>/, its frames' names and numbers kept). Whole-frame clips are
analysed (faces detected, tracked and smoothed) once per file on the driver before splitting, and
every chunk gets the file's tracks. The job's manifest (OUTDIR/.dvface-batch/<job>/manifest.json)
records inputs with checksums, settings and each chunk's state, so rerunning the same command
resumes.
"""

from __future__ import annotations

import argparse
import glob
import tempfile
import warnings
from pathlib import Path

from ..batch.manifest import Manifest, job_id, source_sha256
from ..errors import InputError
from ..runtime.backends import BACKENDS, PRECISIONS
from ..batch.naming import output_name
from ..media.formats import SOURCE_VIDEO_EXTENSIONS
from ..media.sequences import parse_pattern
from ..wholeframe import platecolour

BATCH_DIR = ".dvface-batch"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "batch",
        help="restore many clips on Ray workers (resumable)",
        description="Restore many clips, split into chunks run by Ray workers: whole frames (every chosen face "
        "restored and pasted back, as dvface restore) or, with --aligned, aligned face-crop clips.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="video files, image sequences (name_%%04d.dpx, or a folder of numbered frames), globs, "
                        "folders (their video files) or .txt lists (one path a line)")
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                        help="folder for <stem>.<ext> outputs (a sequence: <stem>/ with its own frame names)")
    parser.add_argument("--aligned", action="store_true", help="inputs hold aligned face crops (one track each)")
    parser.add_argument("--faces", default="all", help="whole frames: all, largest, center or track ids (default all)")
    parser.add_argument("--min-face", type=float, default=0.0, metavar="PX",
                        help="whole frames: skip tracks whose median face size is below PX pixels (default 0)")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    parser.add_argument("--workers", type=int, default=2, help="Ray actors, each holding a model (default 2)")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs each worker reserves (default 0)")
    parser.add_argument("--threads-per-worker", type=int, default=1,
                        help="model threads per worker, torch or onnxruntime (default 1); 16-bit outputs match "
                        "dvface restore run with the same thread count")
    parser.add_argument("--chunk-frames", type=int, default=240, help="output frames per chunk, about (default 240)")
    parser.add_argument("--ext", default=None,
                        help="output extension (default mkv: FFV1, lossless; an image sequence: its own format)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the job state, render nothing")
    parser.add_argument("--model", default=None, help="model folder, or a bundled model name (default: dvface-tiny)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="auto: bf16 on a CPU with AMX (OpenVINO), bf16 or fp16 on a GPU (torch), else fp32; "
                        "int8: the model's int8 export (`dvface export onnx --int8`), opt-in for CPUs without bf16")
    parser.add_argument("--backend", default="auto", choices=BACKENDS)
    parser.add_argument("--window", type=int, default=None, help="window length in frames (default: the model's)")
    parser.add_argument("--overlap", type=int, default=None, help="frames shared by neighbouring windows")
    parser.add_argument("--strength", type=float, default=1.0,
                        help="how much of the restoration to use, 0 to 1 (default 1): 0 leaves the input as it is; "
                        "values between mix restored and original faces inside the face matte")
    parser.add_argument("--stabilise", type=int, default=None, metavar="N",
                        help="flow-guided temporal stabilisation: frames each side averaged with every restored "
                        "face (0 = off; default: the model's)")
    parser.add_argument("--grain", type=float, default=0.0,
                        help="how much of the inputs' own grain goes back on the restored faces, 0 to 1 (default 0; "
                        "see `dvface restore --help`)")
    parser.add_argument("--codec", default=None, help="output codec (default: chosen from --ext)")
    parser.add_argument("--allow-bit-depth-loss", action="store_true", help="allow an output with fewer bits than IN")
    parser.add_argument("--drop-subtitles", action="store_true",
                        help="leave the inputs' subtitle tracks out (copied otherwise, and refused where --ext cannot hold them)")
    parser.add_argument("--allow-retime", action="store_true",
                        help="write variable-frame-rate inputs at their average rate (refused without this)")
    parser.add_argument("--allow-interlaced", action="store_true",
                        help="restore interlaced inputs frame by frame, as `dvface restore --allow-interlaced` does "
                        "(by default whole frames are restored field by field, and --aligned refuses them)")
    parser.add_argument("--report", type=Path, default=None, metavar="DIR",
                        help="whole frames: also write a QC page per file to DIR/<stem>/index.html (see `dvface report`)")
    platecolour.add_arguments(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def expand_inputs(specs: list[str]) -> list[str]:
    """Absolute paths of the inputs, in the order given, each once: video files, and image
    sequences as a frame pattern or a folder of numbered frames."""
    found: list[Path] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if parse_pattern(path) is not None:  # scan_%04d.dpx, scan_####.dpx
            found.append(path)
        elif path.is_dir():
            videos = sorted(p for p in path.iterdir() if p.suffix.lower() in SOURCE_VIDEO_EXTENSIONS)
            found += videos or [path]  # no video files: a folder of numbered frames (scans)
        elif path.suffix.lower() == ".txt" and path.is_file():
            lines = [line.strip() for line in path.read_text().splitlines()]
            found += [Path(line).expanduser() for line in lines if line and not line.startswith("#")]
        elif path.exists():
            found.append(path)
        else:
            matches = sorted(glob.glob(str(path)))
            if not matches:
                raise InputError(f"{spec}: no such file, folder or matching files")
            found += [Path(m) for m in matches]
    result: list[str] = []
    for p in found:
        if not (p.is_file() or p.is_dir() or parse_pattern(p) is not None):
            raise InputError(f"{p}: not a file (listed inputs must be video files or image sequences)")
        if str(p.resolve()) not in result:
            result.append(str(p.resolve()))
    if not result:
        raise InputError("no input files found")
    return result


def _check_output(media, name: str, options: dict, woven_fields: bool) -> None:
    """Open and drop the writer this file's output will get, in a scratch folder (the output
    folder is made later), so what it refuses (container, codec, depth, audio, subtitles) is said
    before any work; its warnings come when the output is written."""
    from ..batch.execute import output_writer

    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        target = Path(folder) / name
        target.parent.mkdir(exist_ok=True)
        output_writer(media, target, options, woven_fields).abort()


def run(args: argparse.Namespace) -> int:
    from ..faces import check_strength
    from ..runtime.base import check_grain

    if min(args.workers, args.chunk_frames, args.threads_per_worker) < 1:
        raise InputError("--workers, --chunk-frames and --threads-per-worker must be at least 1")
    if args.stabilise is not None and args.stabilise < 0:
        raise InputError(f"--stabilise must be a whole number of frames >= 0 (0 = off), got {args.stabilise}")
    if args.min_face < 0:
        raise InputError(f"--min-face must be >= 0 px, got {args.min_face}")
    check_strength(args.strength, "--strength")
    check_grain(args.grain, "--grain")
    if args.aligned and (args.faces != "all" or args.min_face):
        raise InputError("--faces and --min-face choose faces in whole frames; an --aligned clip is one face")
    if args.aligned and args.report is not None:
        raise InputError("--report needs whole frames: a clip of --aligned crops has no face tracks to report")
    if args.aligned and args.colorspace is not None:
        raise InputError("--colorspace needs whole frames: --aligned crops are already in the model's display sRGB")
    colour = platecolour.settings(args)  # an unknown colour space is refused before any decoding
    from ..batch.plan import plan_chunks
    from ..batch.scheduler import tracks_path
    from ..engine import WindowGrid
    from ..media import check_constant_rate, check_progressive, open_media
    from ..wholeframe.fields import FieldSource, restore_by_fields
    from ..model.config import DVFaceConfig
    from ..model.folders import resolve_model_folder

    if not args.dry_run:
        from ..batch.scheduler import import_ray

        import_ray()  # say how to install Ray before any work
    inputs = expand_inputs(args.inputs)
    outdir = Path(args.output).expanduser().resolve()
    outputs: dict[str, str] = {}
    for src in inputs:
        name = output_name(src, args.ext)
        if name in outputs:
            raise InputError(f"{src} and {outputs[name]} would both write {name}; run them as separate jobs")
        outputs[name] = src
    model = resolve_model_folder(args.model).resolve()
    cfg = DVFaceConfig.load(model / "config.json")
    window = cfg.window if args.window is None else args.window
    overlap = cfg.overlap if args.overlap is None else args.overlap
    stabilise = cfg.stabilise if args.stabilise is None else args.stabilise
    options = {"model": str(model), "backend": args.backend, "device": args.device, "precision": args.precision,
               "window": window, "overlap": overlap, "strength": args.strength, "stabilise": stabilise,
               "grain": args.grain, "codec": args.codec,
               "allow_bit_depth_loss": args.allow_bit_depth_loss, "drop_subtitles": args.drop_subtitles,
               "allow_retime": args.allow_retime, "threads": args.threads_per_worker,
               "aligned": args.aligned, "faces": args.faces, "min_face": args.min_face,
               "colorspace": args.colorspace, "ocio": args.ocio, "allow_interlaced": args.allow_interlaced}
    settings = {**{k: v for k, v in options.items() if k != "device"}, "chunk_frames": args.chunk_frames,
                "ext": args.ext}
    job = job_id(inputs, settings)
    manifest = Manifest.open(outdir / BATCH_DIR / job / "manifest.json", settings)
    for src in inputs:
        with open_media(src) as media:
            n = media.frame_count
            if n < 1:
                raise InputError(f"{src} has no frames")
            check_constant_rate(media.metadata, Path(src).name, args.allow_retime)  # before any work
            if args.aligned:
                check_progressive(media.metadata, Path(src).name, args.allow_interlaced)
                first = None
            else:  # interlaced whole frames are restored field by field, as `dvface restore` does
                first = restore_by_fields(media.metadata, Path(src).name, args.allow_interlaced)
            if args.aligned and (media.width, media.height) != (cfg.crop_size, cfg.crop_size):
                raise InputError(f"{src} is {media.width}x{media.height}; --aligned needs "
                                 f"{cfg.crop_size}x{cfg.crop_size} aligned face crops for this model")
            _check_output(media, output_name(src, args.ext), options, woven_fields=first is not None)
            pictures = media if first is None else FieldSource(media, first)
            tracks = None if args.aligned else _analyse(platecolour.viewed(pictures, colour), src, cfg.crop_size,
                                                        args.quiet)
        try:
            grid = WindowGrid(pictures.frame_count, window, overlap, cfg.vae_temporal_stride)
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        if tracks is None:
            chunks = plan_chunks(grid, args.chunk_frames)
        else:
            from ..batch.plan import plan_frame_chunks
            from ..faces import select_tracks

            chosen = select_tracks(tracks, args.faces, args.min_face)
            # chunks count pictures: a field file's are its fields, two a frame, cut between frames
            per_frame = 1 if first is None else 2
            chunks = plan_frame_chunks(pictures.frame_count, chosen, per_frame * args.chunk_frames, window, overlap,
                                       cfg.vae_temporal_stride)
        manifest.add_file(src, source_sha256(src), str(outdir / output_name(src, args.ext)), n, chunks,
                          "frames" if first is None else "fields")
        if tracks is not None:
            path = tracks_path(manifest, src)
            path.parent.mkdir(parents=True, exist_ok=True)
            tracks.save(path)
    if args.dry_run:
        print_plan(manifest)
        return 0
    from ..batch.scheduler import run_job

    outdir.mkdir(parents=True, exist_ok=True)
    manifest.save()
    run_job(manifest, options, workers=args.workers, gpus_per_worker=args.gpus_per_worker,
            address=args.address, quiet=args.quiet,
            report_dir=None if args.report is None else args.report.expanduser().resolve())
    return 0


def _analyse(media, src: str, crop_size: int, quiet: bool):
    """The file's face tracks, from the user's track cache or a new analysis pass over the whole file
    (`media` as the model sees it, `platecolour.viewed`)."""
    import sys

    from ..wholeframe.stages import StageTimer
    from ..wholeframe.tracksource import default_cache_dir, obtain_tracks

    found = obtain_tracks(media, StageTimer(), crop_size, cache_dir=default_cache_dir())
    if not quiet:
        print(f"dvface batch: {src}: {len(found.tracks)} face tracks ({found.origin})", file=sys.stderr)
    return found.tracks


def print_plan(manifest: Manifest) -> None:
    print(f"job manifest: {manifest.path}")
    for src, entry in manifest.files.items():
        chunks = entry["chunks"]
        done = sum(c["state"] == "done" for c in chunks)
        print(f"{src} -> {entry['output']}: {entry['n_frames']} frames, {len(chunks)} chunks, "
              f"{done} done, file {entry['state']}")
        unit = entry.get("unit", "frames")
        for c in chunks:
            print(f"  chunk {c['index']}: {unit} [{c['start']}, {c['stop']}) reads [{c['read_start']}, "
                  f"{c['read_stop']}) {c['state']}")
