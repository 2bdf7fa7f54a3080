"""`dvface restore --aligned IN -o OUT`: restore a clip of aligned face crops.

Frames stream from the source through the windowed engine into an atomic writer: memory is
bounded by two windows and one window of input frames, not the clip length; the frame count, exact frame rate, bit depth
(where the output format can hold it), audio and metadata of the source are kept.
"""

from __future__ import annotations

import argparse
import sys
from collections import deque
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from ..runtime.backends import BACKENDS, PRECISIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "restore",
        help="restore faces in a clip",
        description="Restore faces. --aligned: IN is a clip of aligned face crops (the model's crop size).",
    )
    parser.add_argument("input", metavar="IN", help="video file, image sequence (shot_%%04d.png) or folder")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="output video or image sequence")
    parser.add_argument("-y", "--overwrite", action="store_true",
                        help="replace OUT (and --mask-out) if it exists; without it an existing output is refused")
    parser.add_argument("--aligned", action="store_true", help="IN holds aligned face crops, restored as one track")
    parser.add_argument("--fps", default=None, metavar="RATE",
                        help="frame rate of an image-sequence IN, e.g. 25 or 24000/1001 (default 24); "
                        "a video keeps its own and refuses this")
    parser.add_argument("--frames", default=None, metavar="A-B",
                        help="write only frames A to B, inclusive (A- = to the end), e.g. to preview: a video's "
                        "frames count from 0, an image sequence's by its file numbers; they equal the same "
                        "frames of a whole run, and the timecode, sequence numbers and audio follow")
    parser.add_argument("--model", default=None, help="model folder, or a bundled model name (default: dvface-tiny)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="auto: bf16 on a CPU with AMX (OpenVINO), bf16 or fp16 on a GPU (torch), else fp32; "
                        "int8: the model's int8 export (`dvface export onnx --int8`), opt-in for CPUs without bf16")
    parser.add_argument(
        "--backend", default="auto", choices=BACKENDS,
        help="torch; ort (onnxruntime; needs no torch); openvino (OpenVINO on the CPU, bf16 where the CPU has "
        "AMX); auto: on a CPU the model's ONNX export on openvino when installed, else ort (several times "
        "torch's speed there), else torch when installed",
    )
    parser.add_argument(
        "--streams", type=int, default=None, metavar="N",
        help="copies of the model restoring side by side, on onnxruntime (default: 2 on a CPU with two or more "
        "cores, which split them: about 1.2x the speed; 1 on a GPU and on openvino); 1 needs about 1.8 GB "
        "less memory",
    )
    parser.add_argument("--window", type=int, default=None, help="window length in frames (default: the model's)")
    parser.add_argument("--overlap", type=int, default=None, help="frames shared by neighbouring windows")
    parser.add_argument(
        "--strength", type=float, default=1.0,
        help="how much of the restoration to use, 0 to 1: 0 leaves the input as it is, 1 (default) is the full "
        "restoration, and values between mix the restored faces with the original ones inside the face matte",
    )
    parser.add_argument(
        "--stabilise", type=int, default=None, metavar="N",
        help="average each restored face with N frames each side along the optical flow, against flicker "
        "(default: the model's, 2 for dvface-tiny; 0 = off)",
    )
    parser.add_argument(
        "--grain", type=float, default=0.0,
        help="put this much of the input's own grain back on the restored faces, 0 to 1 (default 0): each "
        "frame's difference from its flow-guided average with its neighbours, which the model removes; 1 keeps "
        "film grain on the faces as it is on the rest of the plate",
    )
    parser.add_argument("--codec", default=None,
                        help="output codec: h264, h265, prores, prores4444, dnxhr (Avid DNxHR HQ, HQX for 10-bit "
                        "sources; .mov, .mxf), dnxhr444, dnxhd (interlaced 1080i DNxHD, .mxf), ffv1 (in a YUV source's own format) "
                        "or ffv1rgb (default: chosen from OUT's extension: .mkv and .mxf ffv1, .mov prores (prores4444 for a 4:4:4 "
                        "source), .mp4 h264 (in the source's chroma subsampling); dnxhr in .mov and .mxf for a DNxHD/DNxHR "
                        "source)")
    parser.add_argument(
        "--allow-bit-depth-loss", action="store_true", help="allow an output format with fewer bits than IN"
    )
    parser.add_argument(
        "--drop-subtitles", action="store_true",
        help="leave IN's subtitle tracks out (they are copied as they are, and refused where OUT cannot hold them)",
    )
    parser.add_argument(
        "--allow-retime", action="store_true",
        help="write a variable-frame-rate IN to a video at its average rate (refused without this: frames would be retimed)",
    )
    parser.add_argument(
        "--allow-interlaced", action="store_true",
        help="restore an interlaced IN frame by frame, each frame's two fields as one picture: right for "
        "progressive pictures stored as interlaced (PsF, film). Without it interlaced video is restored field "
        "by field and woven back (whole frames; --aligned and an unknown field order are refused)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    # Whole-frame restoration (no --aligned): its own options, defined in wholeframe.command.
    from ..wholeframe.command import add_arguments

    add_arguments(parser)
    parser.set_defaults(func=run)


class StreamedCrops:
    """Random access over a forward-only frame stream, keeping only the last `keep` frames.

    The engine reads windows in ascending order and never reaches back more than one window,
    so decoding stays a single forward pass.
    """

    def __init__(self, frames: Iterator[np.ndarray], n_frames: int, keep: int, name: str) -> None:
        self._frames = frames
        self._n_frames = n_frames
        self._buffer: deque[np.ndarray] = deque(maxlen=keep)
        self._next = 0  # number of frames decoded so far
        self._name = name

    def __call__(self, n: int) -> np.ndarray:
        while self._next <= n:
            frame = next(self._frames, None)
            if frame is None:
                raise InputError(
                    f"{self._name} ended after {self._next} frames but reports {self._n_frames}; "
                    "the file is truncated or its frame count is wrong: remux or re-encode it"
                )
            self._buffer.append(frame)
            self._next += 1
        age = self._next - 1 - n
        if age >= len(self._buffer):
            raise InputError(f"frame {n} was asked again after the stream moved on (engine read order bug)")
        return self._buffer[-1 - age]

    def check_exhausted(self) -> None:
        if next(self._frames, None) is not None:
            raise InputError(
                f"{self._name} holds more frames than the {self._n_frames} it reports; remux it so the "
                "frame count is right"
            )


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any work, an output that is the input or that exists without --overwrite."""
    from ..media import existing_output

    if Path(args.output).resolve() == Path(args.input).resolve():
        raise InputError(f"OUT is IN ({args.input}); write the result to another file")
    if args.overwrite:
        return
    for path in (args.output, getattr(args, "mask_out", None)):
        found = existing_output(path) if path is not None else None
        if found:
            raise InputError(f"{found}; pass --overwrite (-y) to replace it, or name another output")


def run(args: argparse.Namespace) -> int:
    from ..faces import apply_strength, check_strength
    from ..runtime.base import check_grain

    check_outputs(args)
    if args.aligned and args.report is not None:
        raise InputError("--report needs whole frames: a clip of --aligned crops has no face tracks to report")
    if args.aligned and args.colorspace is not None:
        raise InputError("--colorspace needs whole frames: --aligned crops are already in the model's display sRGB")
    if args.streams is not None and args.streams < 1:
        raise InputError(f"--streams must be at least 1, got {args.streams}")
    check_strength(args.strength, "--strength")
    check_grain(args.grain, "--grain")
    if not args.aligned:
        from ..wholeframe.command import run as run_whole_frames

        return run_whole_frames(args)
    from ..engine import FaceTrackSession, WindowCache
    from ..media import MediaWriter, check_progressive, open_media, parse_frame_range
    from ..runtime.backends import describe, open_restorer
    from ..wholeframe.command import crops_bar

    restorer = open_restorer(
        args.model, backend=args.backend, device=args.device, precision=args.precision, window=args.window,
        stabilise=args.stabilise, grain=args.grain, streams=args.streams,
    )
    size = restorer.config.crop_size
    with open_media(args.input, sequence_fps=args.fps) as src:
        n = src.frame_count
        if (src.width, src.height) != (size, size):
            raise InputError(
                f"{args.input} is {src.width}x{src.height}; --aligned needs {size}x{size} aligned face crops "
                "for this model"
            )
        if n < 1:
            raise InputError(f"{args.input} has no frames")
        check_progressive(src.metadata, args.input, args.allow_interlaced)
        trim = None if args.frames is None else parse_frame_range(args.frames, n, src.metadata.get("first_frame", 0))
        start, stop = trim or (0, n)
        window = restorer.config.window if args.window is None else args.window
        crops = StreamedCrops(iter(src), n, window, args.input)
        bar = None
        session = FaceTrackSession(
            restorer,
            crops,
            n,
            window=window,
            overlap=args.overlap,
            # One forward pass computes each window once and holds the (at most two) windows a frame
            # needs itself; a cache would only keep windows that are never asked for again.
            cache=WindowCache(0),
            on_window=lambda frames: bar.update(frames) if bar is not None else None,
            ahead=restorer.streams,
        )
        with session, MediaWriter(
            args.output,
            fps=src.fps if src.fps else None,
            width=size,
            height=size,
            bit_depth=src.source_bits,
            codec=args.codec,
            streams_from=src,
            metadata=src.metadata,
            allow_bit_depth_loss=args.allow_bit_depth_loss,
            allow_retime=args.allow_retime,
            trim=trim,
            drop_subtitles=args.drop_subtitles,
        ) as writer:
            if not args.quiet:
                print(f"dvface restore: {stop - start} aligned crops, on {describe(restorer)}", file=sys.stderr)
                bar = crops_bar(session.model_frames(start, stop))
            # Below full strength each crop is mixed with its original, read by a second pass over IN.
            originals = src.frames(start, stop) if args.strength < 1.0 else None
            try:
                for frame in session.iter_frames(start, stop):
                    if originals is not None:
                        frame = apply_strength(next(originals), frame, args.strength)
                    writer.write(frame)
            finally:
                if bar is not None:
                    bar.close()
            if trim is None:
                crops.check_exhausted()
    return 0
