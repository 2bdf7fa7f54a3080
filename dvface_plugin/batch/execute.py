"""Rendering one chunk into a lossless piece, and joining a file's pieces into its output.

A chunk of aligned crops runs one engine session; a chunk of whole frames runs the whole-frame
compositor over the file's face tracks (analysed once per file by the driver), so track ids and
landmark smoothing never change at a chunk boundary. Pieces are FFV1 .mkv files (lossless at 8
and 16 bits), or for float plates (EXR, float TIFF), which FFV1 cannot hold, folders of float
EXR files; either is written under a hidden name and renamed into place whole, so a piece that
exists is complete. An FFV1 output (the default .mkv) is joined from the pieces' packets without
re-encoding; any other format encodes the decoded pieces once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..engine import FaceTrackSession, WindowCache
from ..errors import DVFaceError, InputError
from ..faces import apply_strength
from ..media import MediaWarning, MediaWriter, open_media
from ..media.writer import PARTIAL_TAG
from ..runtime.backends import open_restorer
from .plan import Chunk

FAIL_AFTER_ENV = "DVFACE_BATCH_FAIL_AFTER"  # test hook: a worker raises after this many chunks
DRIVER_KILL_AFTER_ENV = "DVFACE_BATCH_DRIVER_KILL_AFTER"  # test hook: the driver SIGKILLs itself after this
# many chunks are marked done (a lost driver: no cleanup, no final manifest save)
CRASH_ONCE_ENV = "DVFACE_BATCH_CRASH_ONCE"  # test hook: a marker path; the first worker to render a
# second chunk creates it and kills its own process mid-chunk (a lost worker), once per job


def piece_fps(src) -> object:
    return src.fps if src.fps else 24


def piece_path(base: Path, src) -> Path:
    """Where the piece of chunk `base` (its path without extension; `src` the open source) lies:
    `base`.mkv, or for float frames, which FFV1 cannot hold, the folder `base` of float EXR files."""
    return base if src.source_bits == 32 else base.with_name(base.name + ".mkv")


@contextmanager
def piece_writer(base: Path, src, width: int, height: int, planes_from=None, trim: tuple[int, int] | None = None,
                 woven_fields: bool = False) -> Iterator[MediaWriter]:
    """A lossless writer for the piece of chunk `base` (`src` its open source), which appears at
    `piece_path` only once it is complete. Whole-frame pieces take `planes_from`, `trim` and
    `woven_fields` as `MediaWriter` does; float pieces need none (an image sequence is progressive,
    and each EXR holds every float as it is). What the output will leave out of the source (HDR10
    metadata, captions) its own writer says, once, so a piece's writer says nothing."""
    target = piece_path(base, src)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = None  # a float piece's folder until it is complete (a video piece: MediaWriter's own partial)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MediaWarning)
        if target == base:
            scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}{PARTIAL_TAG}{os.getpid()}-"))
            writer = MediaWriter(scratch / "f_%06d.exr", width=width, height=height, bit_depth=32, codec="float")
        else:
            writer = MediaWriter(target, fps=piece_fps(src), width=width, height=height, bit_depth=src.source_bits,
                                 codec="ffv1", planes_from=planes_from, trim=trim, woven_fields=woven_fields)
    try:
        with writer:
            yield writer
        if scratch is not None:
            shutil.rmtree(target, ignore_errors=True)  # a piece whose chunk the manifest did not record as done
            os.replace(scratch, target)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


class ChunkWorker:
    """Holds one loaded model and renders chunks with it (a Ray actor in `dvface batch`)."""

    def __init__(self, options: dict, fail_after: int | None = None, crash_marker: str | None = None) -> None:
        self.options = options
        # Float sums (hence 16-bit outputs, by 1 code value) depend on the model's thread count.
        self.restorer = open_restorer(
            options["model"], backend=options["backend"], device=options["device"], precision=options["precision"],
            threads=options["threads"], window=options["window"], stabilise=options["stabilise"],
            grain=options["grain"],
        )
        self.fail_after = fail_after
        self.crash_marker = crash_marker
        self.rendered = 0

    def render(self, source: str, n_frames: int, chunk: dict, piece: str, tracks: str | None = None) -> str:
        """Render output frames [start, stop) of `source` into the piece `piece` (its path without
        extension, `piece_path`); returns the piece's path.

        `tracks`: the file's face tracks (JSON) for whole frames; None for aligned crops."""
        if self.fail_after is not None and self.rendered >= self.fail_after:
            raise RuntimeError(f"injected failure after {self.rendered} chunks ({FAIL_AFTER_ENV})")
        if self.crash_marker and self.rendered >= 1:
            try:
                os.close(os.open(self.crash_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os._exit(1)
        if tracks is None:
            done = render_chunk(self.restorer, source, n_frames, Chunk(**chunk), Path(piece), self.options)
        else:
            done = render_frames_chunk(self.restorer, source, Path(tracks), Chunk(**chunk), Path(piece), self.options)
        self.rendered += 1
        return str(done)

    def pid(self) -> int:
        return os.getpid()


def render_chunk(restorer, source: str, n_frames: int, chunk: Chunk, piece: Path, options: dict) -> Path:
    size = restorer.config.crop_size
    with open_media(source) as src:
        if (src.width, src.height) != (size, size):
            raise InputError(f"{source} is {src.width}x{src.height}; --aligned needs {size}x{size} crops for this model")
        crops = np.stack(list(src.frames(chunk.read_start, chunk.read_stop)))
        if len(crops) != chunk.read_stop - chunk.read_start:
            raise InputError(f"{source} ended before frame {chunk.read_stop}; the file is truncated: re-encode it")
        session = FaceTrackSession(
            restorer,
            None,
            n_frames,
            get_crops=lambda a, b: crops[a - chunk.read_start : b - chunk.read_start],
            window=options["window"],
            overlap=options["overlap"],
            cache=WindowCache(0),  # one forward pass: nothing is asked twice
            ahead=restorer.streams,
        )
        with session, piece_writer(piece, src, size, size) as writer:
            for n, frame in enumerate(session.iter_frames(chunk.start, chunk.stop), chunk.start):
                writer.write(apply_strength(crops[n - chunk.read_start], frame, options["strength"]))
        return piece_path(piece, src)


def render_frames_chunk(restorer, source: str, tracks_file: Path, chunk: Chunk, piece: Path, options: dict) -> Path:
    """Whole pictures [start, stop) with every chosen face restored and pasted back, as `dvface restore`:
    frames, or an interlaced file's fields (two a frame; the chunk then holds frames [start/2, stop/2))."""
    from ..faces import Tracks, select_tracks
    from ..wholeframe.compositor import restore_stream
    from ..wholeframe.fields import FieldSource, FieldWeaver, restore_by_fields
    from ..wholeframe.platecolour import PlateRoundTrip, plate_colour
    from ..wholeframe.stages import StageTimer

    chosen = select_tracks(Tracks.load(tracks_file), options["faces"], options["min_face"])
    colour = plate_colour(options["colorspace"], options["ocio"])
    with open_media(source) as src:
        first = restore_by_fields(src.metadata, Path(source).name, options.get("allow_interlaced", False), quiet=True)
        pictures, per_frame = (src, 1) if first is None else (FieldSource(src, first), 2)
        # In the source's own YUV format with its samples around the faces, as `dvface restore` writes.
        with piece_writer(piece, src, src.width, src.height, planes_from=src,
                          trim=(chunk.start // per_frame, chunk.stop // per_frame),
                          woven_fields=first is not None) as writer:
            frames, sink = pictures.frames(chunk.read_start, chunk.read_stop), writer
            if first is not None:
                sink = FieldWeaver(sink, first)
            if colour is not None:  # the model sees display sRGB; each plate picture gets back only its faces' change
                sink = PlateRoundTrip(colour, sink)
                frames = sink.frames(frames, chunk.read_start, chunk.start)
            restore_stream(
                frames, chosen, restorer, sink, StageTimer(),
                name=Path(source).name, strength=options["strength"], window=options["window"],
                overlap=options["overlap"], span=(chunk.read_start, chunk.start, chunk.stop),
            )
            if writer.frames_written != chunk.frames // per_frame:
                raise InputError(f"{source} ended before frame {chunk.stop}; the file is truncated: re-encode it")
    return piece_path(piece, src)


def output_writer(src, output: Path, options: dict, woven_fields: bool = False) -> MediaWriter:
    """The writer of a file's output (`src` its open source): the source's audio, subtitles and
    metadata, and its samples where the format keeps them. The driver opens one for each file
    before any work, so whatever it refuses is said first."""
    return MediaWriter(
        output,
        fps=src.fps if src.fps else None,
        width=src.width,
        height=src.height,
        bit_depth=src.source_bits,
        codec=options["codec"],
        streams_from=src,
        metadata=src.metadata,
        allow_bit_depth_loss=options["allow_bit_depth_loss"],
        allow_retime=options["allow_retime"],
        planes_from=src,  # an FFV1 output in the source's YUV format takes the pieces' packets as they are
        woven_fields=woven_fields,
        drop_subtitles=options["drop_subtitles"],
    )


def assemble(source: str, pieces: list[str], output: Path, options: dict, woven_fields: bool = False) -> None:
    """Write the file's output from its pieces in order, with the source's audio and metadata
    (`woven_fields`: the pieces are an interlaced file restored field by field)."""
    output.parent.mkdir(parents=True, exist_ok=True)  # a sequence's own folder in OUTDIR
    with open_media(source) as src, output_writer(src, output, options, woven_fields) as writer:
        for piece in pieces:
            if writer.append_video_from(piece):  # FFV1: their packets; another codec: their samples encoded
                continue
            if writer.copies_source_samples:  # writing decoded frames would put the source's back
                raise DVFaceError(f"{piece} cannot be joined into {output} without re-encoding; delete "
                                  f"{Path(piece).parent} and run the batch again")
            with open_media(piece) as part:
                for frame in part:
                    writer.write(frame)
        if writer.frames_written != src.frame_count:
            raise InputError(f"{output}: joined {writer.frames_written} frames, the source has {src.frame_count}")
