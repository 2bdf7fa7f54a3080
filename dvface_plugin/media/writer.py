"""Atomic writer for video files, image sequences and photos.

Everything is written to a temporary file or folder beside the target and moved into
place only on a clean close, so an exception, Ctrl-C or crash never leaves a half-written
clip that looks finished. What a video carries over besides the pictures (audio, subtitles,
captions) is `carried`'s.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import tempfile
import warnings
import weakref
from collections.abc import Iterator, Mapping
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..errors import InputError
from ..processes import remove_orphans
from .carried import CaptionTrack, CarriedStreams, has_carried_streams, source_path
from .formats import (FFV1_SOURCE_FORMATS, OutputSpec, check_video_output, odd_for_chroma, output_spec,
                      parse_fps)
from .cineon import encode_cineon
from .dpx import carry_header
from .exr import carry_attributes
from .matroska import set_display_aspect
from .pixels import (as_planar, copy_alpha, depth_class, format_bits, matrix_for, planar_name, rgb_to_dtype,
                     rgb_to_frame)
from .reader import ImageSource, MediaSource, first_field, pixel_aspect, quarter_turns
from .trim import advance_timecode
from .sequences import (
    decode_image,
    encode_image,
    existing_frames,
    image_codec,
    parse_pattern,
)

# FFmpeg colour enums (AVCOL_*). A tag the source leaves unspecified stays unspecified: the
# writer never claims a colour space it was not told.
_AVCOL_SPC_RGB = 0
_AVCOL_SPC_BT709 = 1
_AVCOL_UNSPECIFIED = 2
_AVCOL_RANGE_MPEG = 1
_AVCOL_RANGE_JPEG = 2
_UNSET = (None, 0, 2, 3)  # reserved / unspecified values
_FRAME_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))


class MediaWarning(UserWarning):
    """A lossy step the caller allowed, or an output property a player may not handle."""


# Image encoders whose files take the header of the source file they were made from (its own format).
_HEADER_CARRIERS = {"dpx": carry_header, "exr": carry_attributes}


def _discard(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.unlink(path)


PARTIAL_TAG = ".partial-"  # .<stem>.partial-<pid>-<token><suffix>: a MediaWriter's output until it closes


def remove_stale_partials(folder: Path, stem: str, suffix: str) -> int:
    """Delete this output's partials (`stem` + PARTIAL_TAG + pid ... + `suffix`) whose writing
    process no longer runs; returns how many."""
    candidates = folder.glob(glob.escape(stem + PARTIAL_TAG) + "*")
    return remove_orphans((p for p in candidates if p.name.endswith(suffix)), PARTIAL_TAG)


def check_constant_rate(metadata: Mapping, source: str, allow_retime: bool = False) -> None:
    """Refuse to write a variable-frame-rate source (`metadata` of its MediaSource) to a video
    file, which would play every frame for the same time: a silent retime."""
    if metadata.get("variable_frame_rate") and not allow_retime:
        raise InputError(f"{source} has variable frame timing, which a constant-rate output would "
                         "retime; convert it first (ffmpeg -i IN -fps_mode cfr OUT), write an image sequence, "
                         "or pass --allow-retime to accept the retime")


def existing_output(path: str | Path) -> str | None:
    """What already lies where an output would go (a file, or frames of a sequence pattern), or
    None: a command refuses before any work rather than replacing someone's render."""
    pattern = parse_pattern(path)
    if pattern is None:
        return f"{path} already exists" if os.path.lexists(path) else None
    frames = existing_frames(pattern) if pattern.folder.is_dir() else {}
    return f"{len(frames)} frames of {pattern.display} already exist" if frames else None


class MediaWriter:
    """Write HxWx3 RGB frames to a video file, an image sequence or a photo.

    `bit_depth` is the number of significant bits of the frames (8, 10, 12, 16, or 32 for
    float); lossy depth reductions raise unless `allow_bit_depth_loss` is set. Float frames
    written to integer outputs are taken as [0, 1] and clipped. `metadata` may be a source's
    `metadata`: its `timecode`, `tags`, `chapters`, `color`, `field_order`, `pixel_aspect`, `rotation`
    and `first_frame` are carried over (image files have no rotation tag: a rotated video's frames are
    written turned upright), and a half-float source (its `pix_fmt`) is written as half in .exr.
    A variable-frame-rate source's metadata is refused for a video file unless `allow_retime`.
    `start_number` overrides the first frame number of a sequence (default: the metadata's
    `first_frame`, else 1). `streams_from` copies every audio and subtitle stream of that file
    untouched (its subtitles not with `drop_subtitles`), with their language, title and disposition,
    timed from its first frame (`carried.CarriedStreams`).
    `trim = (start, stop)` says the output holds only frames [start, stop) of that source (a
    `--frames` preview): its timecode and sequence numbers start at frame `start`'s, and the audio,
    subtitles and chapters are cut to those frames' time (audio and subtitles to the nearest packet).
    `planes_from` (a video source, with codec ffv1) writes the source's own YUV format, and
    `write(frame, matte)` takes every sample where the matte is 0 from the source's decoded
    frame, not from `frame`: a frame without faces, and the plate around them, stay bit-identical
    to the source as any decoder decodes it (an RGB round trip moves about a quarter of them).
    A DPX or EXR sequence written from a `planes_from` of the same format gives each file the
    header of the source file it was made from (`dpx.carry_header`, `exr.carry_attributes`).
    `woven_fields` says each frame is two fields woven (interlaced): 4:2:0 chroma is made per field.
    The closed captions a `planes_from` video carries in its pictures go into a .mov's caption track.
    """

    def __init__(self, path: str | Path, fps: Fraction | int | float | str | None = None, *,
                 width: int, height: int, bit_depth: int = 8, codec: str | None = None,
                 streams_from: str | Path | MediaSource | None = None,
                 metadata: Mapping | None = None, allow_bit_depth_loss: bool = False,
                 allow_retime: bool = False, start_number: int | None = None,
                 trim: tuple[int, int] | None = None, planes_from: MediaSource | None = None,
                 encoder_options: Mapping[str, str] | None = None, woven_fields: bool = False,
                 drop_subtitles: bool = False) -> None:
        source_format = _copyable_format(planes_from, width, height)
        half_float = bit_depth == 32 and "f16" in str((metadata or {}).get("pix_fmt", ""))  # a half EXR plate
        grey = planes_from is not None and str(planes_from.metadata.get("pix_fmt", "")).startswith("gray")
        # A scan's or plate's alpha goes back into each image made from it (not where turned upright).
        alpha = (isinstance(planes_from, ImageSource) and bool(planes_from.metadata.get("alpha"))
                 and not quarter_turns(metadata or {}))
        self.spec: OutputSpec = output_spec(path, codec, bit_depth, allow_bit_depth_loss=allow_bit_depth_loss,
                                            source_pix_fmt=source_format, half_float=half_float, grey=grey,
                                            alpha=alpha, source_codec=planes_from and planes_from.metadata.get("codec"),
                                            interlaced=first_field(metadata or {}) is not None)
        for message in self.spec.warnings:
            warnings.warn(message, MediaWarning, stacklevel=2)
        # Closed captions inside the source's video stream go into a .mov's caption track (c608).
        self._captions_from = (planes_from if planes_from is not None and planes_from.metadata.get("captions")
                               and self.spec.path.suffix.lower() == ".mov" else None)
        if planes_from is not None:
            _warn_left_out(self.spec.path.name, planes_from, alpha_kept=self.spec.alpha,
                           hdr_kept=self.spec.encoder == "libx265", captions_kept=self._captions_from is not None)
        if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
            raise InputError(f"Output size must be positive integers, got {width}x{height}.")
        self.width, self.height, self.bit_depth = width, height, bit_depth
        self.frames_written = 0
        self._metadata = dict(metadata or {})
        self._pixel_aspect = pixel_aspect(self._metadata)
        self._options = {**self.spec.options, **(encoder_options or {})}
        self._closed = False
        # Woven fields in a vertically subsampled format (4:2:0) keep a chroma row per field.
        self._field_chroma = (woven_fields and self.spec.kind == "video"
                              and _chroma_per_field(self.spec.pix_fmt, width, height))
        if self.spec.kind == "video":
            check_constant_rate(self._metadata, f"the source of {self.spec.path.name}", allow_retime)
            if fps is None:
                raise InputError(f"{self.spec.path.name}: video output needs a frame rate (fps=...); "
                                 f"pass the source's fps to keep its timing.")
            self.fps = parse_fps(fps)
            self._options.update(check_video_output(self.spec, width, height, self.fps, first_field(self._metadata),
                                                    self._pixel_aspect))
            if self.spec.encoder == "libx265" and first_field(self._metadata) is not None:
                warnings.warn(f"{self.spec.path.name}: H.265 codes whole frames, so this interlaced clip reads back "
                              "progressive; write H.264 (.mp4), ProRes (.mov) or .mkv (FFV1) to keep its field order",
                              MediaWarning, stacklevel=2)
        else:
            self.fps = parse_fps(fps) if fps else Fraction(0)
            self._warn_dropped_streams(streams_from)
        self._trim = trim
        self._drop_subtitles = drop_subtitles
        # Decoded source frames to copy samples from, opened at the first write.
        # DNxHR's decoders read every picture as BT.709: a source coded otherwise is converted, not copied.
        self._to_bt709 = self.spec.encoder == "dnxhd" and self._source_matrix()[1] != "ITU709"
        self._planes_from = (planes_from if source_format and self.spec.pix_fmt == source_format
                             and not self._to_bt709 else None)
        # Scans and plates whose headers each restored file of their own format takes (DPX: transfer,
        # edge code, timecode; EXR: chromaticities, timecode, the host's attributes).
        self._headers_from = (planes_from if isinstance(planes_from, ImageSource)
                              and self.spec.encoder in (*_HEADER_CARRIERS, "cin")
                              and planes_from.metadata["codec"] == self.spec.encoder else None)
        if self.spec.encoder == "cin" and self._headers_from is None:
            raise InputError(f"{self.spec.path.name}: a Cineon file is written only from the Cineon scan it "
                             "restores (it keeps that scan's header); write .dpx instead")
        # Whose alpha each frame takes where the source's samples are not copied as they are: an RGBA
        # sequence's files, or a YUVA video's frames (ProRes 4444: decoded at 12 bits, coded at 10).
        self._alpha_from = planes_from if self.spec.alpha and self._planes_from is None else None
        # The source whose decoded frames the video's frames are made with (samples, alpha, captions).
        self._frames_from = (planes_from if self.spec.kind == "video" and (
            self._planes_from or self._alpha_from or self._captions_from) else None)
        self._warned_left_out = False
        self._planes: Iterator[av.VideoFrame] | None = None
        self._source_frame: av.VideoFrame | None = None
        self._frames_pulled = 0
        self._source_offset = trim[0] if trim else 0  # the source frame of the first written
        self._start_number = (start_number if start_number is not None
                              else int(self._metadata.get("first_frame", 1)) + self._source_offset)
        target = self.spec.path
        # Partials carry the writer's pid: those of a killed run of this output are removed here,
        # never one a live process still writes.
        try:
            if self.spec.kind == "sequence":
                stem, folder, suffix = f".{self.spec.pattern.prefix}dvface", self.spec.pattern.folder, ""
                remove_stale_partials(folder, stem, suffix)
                self._tmp = tempfile.mkdtemp(dir=folder, prefix=f"{stem}{PARTIAL_TAG}{os.getpid()}-")
            else:
                stem, suffix = f".{target.stem}", target.suffix
                remove_stale_partials(target.parent, stem, suffix)
                # Not mkstemp: its 0600 mode would survive the rename; this honours the umask.
                self._tmp = str(target.parent / f"{stem}{PARTIAL_TAG}{os.getpid()}-{secrets.token_hex(4)}{suffix}")
                os.close(os.open(self._tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except OSError as exc:  # named after the output the user asked for, not our hidden partial
            raise OSError(exc.errno, exc.strerror, str(target)) from None
        self._finalizer = weakref.finalize(self, _discard, self._tmp)
        try:
            if self.spec.kind == "video":
                self._open_video(streams_from)
            else:
                # Image files have no rotation tag: a rotated video's frames are turned upright (exactly).
                self._turns = quarter_turns(self._metadata)
                size = (height, width) if self._turns % 2 else (width, height)
                # Cineon has no FFmpeg encoder: media.cineon writes it whole, in the scan's header.
                self._image = (None if self.spec.encoder == "cin" else
                               image_codec(self.spec.encoder, self.spec.pix_fmt, *size, self._options))
                if self._image is not None and self._pixel_aspect != 1:  # recorded (turned upright: inverted)
                    self._image.sample_aspect_ratio = 1 / self._pixel_aspect if self._turns % 2 else self._pixel_aspect
        except BaseException:
            self.abort()
            raise

    # -- setup -----------------------------------------------------------------------------

    def _source_matrix(self) -> tuple[int, str]:
        """The source's colourspace tag and the matrix the reader decoded it with (an untagged source's
        guessed by frame height, as players guess it), so an untagged output decodes back to the same colours."""
        tag = (self._metadata.get("color") or {}).get("colorspace")
        tag = _AVCOL_UNSPECIFIED if tag in _UNSET or tag == _AVCOL_SPC_RGB else tag
        return tag, matrix_for(tag, self.height)

    def _warn_dropped_streams(self, streams_from: str | Path | MediaSource | None) -> None:
        if has_carried_streams(streams_from):
            warnings.warn(f"{self.spec.path.name}: image files cannot carry audio or subtitles; those of "
                          f"{source_path(streams_from)} are not copied. Write .mov/.mkv/.mp4 to "
                          f"keep them.", MediaWarning, stacklevel=3)

    def _open_video(self, streams_from: str | Path | MediaSource | None) -> None:
        spec = self.spec
        muxer_options = {"movflags": "+faststart"} if spec.path.suffix.lower() == ".mp4" else {}
        self._container = av.open(self._tmp, "w", options=muxer_options)
        options = dict(self._options)
        if spec.encoder == "libx265" and self._metadata.get("hdr"):  # x265 writes it as SEI in the stream
            options["x265-params"] = ":".join(filter(None, (options.get("x265-params"), _x265_hdr(self._metadata["hdr"]))))
        if self._planes_from is not None and self._planes_from.chroma_siting:  # the same samples sit alike
            options["chroma_sample_location"] = self._planes_from.chroma_siting
        stream = self._container.add_stream(spec.encoder, rate=self.fps, options=options)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, spec.pix_fmt
        stream.time_base = self._frame_time_base = 1 / self.fps
        ctx = stream.codec_context
        color = self._metadata.get("color") or {}
        primaries, trc = color.get("color_primaries"), color.get("color_trc")
        ctx.color_primaries = _AVCOL_UNSPECIFIED if primaries in _UNSET else primaries
        ctx.color_trc = _AVCOL_UNSPECIFIED if trc in _UNSET else trc
        if spec.pix_fmt.startswith("yuv"):
            tag, self._matrix = (_AVCOL_SPC_BT709, "ITU709") if self._to_bt709 else self._source_matrix()
            ctx.colorspace = tag
            # Copied samples keep the source's range and tag (an untagged range stays untagged:
            # decoders take it as limited), and faces are converted to it; otherwise limited.
            ctx.color_range = (int(color.get("color_range") or 0) if self._planes_from is not None
                               else _AVCOL_RANGE_MPEG)
            self._full_range = ctx.color_range == _AVCOL_RANGE_JPEG
        elif spec.pix_fmt.startswith("gray"):  # a black-and-white source's own samples: its range, no matrix
            self._matrix, self._full_range = "ITU709", False
            ctx.colorspace = _AVCOL_UNSPECIFIED
            ctx.color_range = int(color.get("color_range") or 0)
        else:
            self._matrix, self._full_range = "ITU709", False
            ctx.colorspace = _AVCOL_SPC_RGB
        if self._metadata.get("field_order"):  # an interlaced source's tag (MKV and MOV keep it; H.264/5 do not)
            ctx.field_order = int(self._metadata["field_order"])
        if self._pixel_aspect != 1:  # MOV and MP4 store it from here, H.264/5 in their bitstream too
            ctx.sample_aspect_ratio = self._pixel_aspect
        if self._metadata.get("rotation"):  # a phone's upright clip, stored on its side
            stream.set_display_rotation(self._metadata["rotation"])
        if spec.encoder == "libx265" and spec.path.suffix.lower() in (".mp4", ".mov"):
            stream.codec_tag = "hvc1"  # Apple players only accept the hvc1 tag
        self._video = stream
        timecode = self._metadata.get("timecode")
        if timecode:
            stream.metadata["timecode"] = advance_timecode(str(timecode), self._source_offset, self.fps)
        for key, value in (self._metadata.get("tags") or {}).items():
            self._container.metadata[str(key)] = str(value)
        chapters = self._metadata.get("chapters")
        if chapters:
            self._container.set_chapters(_chapters_within(chapters, self._trim, self.fps))
        self._carried: CarriedStreams | None = None
        if has_carried_streams(streams_from):
            self._carried = CarriedStreams(self._container, spec.path.suffix, streams_from, fps=self.fps,
                                           trim=self._trim, drop_subtitles=self._drop_subtitles)
        self._captions = None if self._captions_from is None else CaptionTrack(self._container, self.fps)
        try:
            self._container.start_encoding()
        except (av.FFmpegError, ValueError) as exc:
            raise InputError(f"Cannot start {spec.path.name} ({spec.encoder}, {spec.pix_fmt}): "
                             f"{exc}") from exc

    # -- writing ---------------------------------------------------------------------------

    def write(self, frame: np.ndarray, matte: np.ndarray | None = None) -> None:
        """Append one HxWx3 RGB frame (uint8, uint16 or float32). With `planes_from`, `matte`
        (HxW, 0 where nothing changed; None: nothing did) says which samples come from `frame`."""
        if self._closed:
            raise InputError("write() after close(): open a new MediaWriter.")
        rgb = self._validated(frame)
        if self.spec.kind == "video":
            source = self._next_source_frame() if self._frames_from is not None else None
            if self._planes_from is not None:
                picture = self._over_source(rgb, matte, source)
            else:
                picture = self._to_frame(rgb)
                if self._alpha_from is not None:  # colour converted, alpha the source's, in this format
                    copy_alpha(source.reformat(format=self.spec.pix_fmt), picture)
            self._mux_captions(source)
            self._encode(picture)
        else:
            if self.spec.kind == "photo" and self.frames_written:
                raise InputError(f"{self.spec.path.name} is a single photo; use a pattern such as "
                                 f"name_%04d{self.spec.path.suffix} to write a sequence.")
            name = (self.spec.pattern.name(self._start_number + self.frames_written)
                    if self.spec.kind == "sequence" else None)
            out = Path(self._tmp) / name if name else Path(self._tmp)
            upright = np.ascontiguousarray(np.rot90(rgb, self._turns))
            picture = rgb_to_frame(upright, self.spec.pix_fmt)
            if self._alpha_from is not None:
                source = self._alpha_from.file(self._source_offset + self.frames_written)
                copy_alpha(decode_image(source)[0].reformat(format=self.spec.pix_fmt), picture)
            if self.spec.encoder == "cin":  # the scan's own header, then the codes
                encode_cineon(picture, self._headers_from.file(self._source_offset + self.frames_written), out)
            else:
                encode_image(self._image, picture, out)
                if self._headers_from is not None:
                    self._carry_header(out)
        self.frames_written += 1

    def _carry_header(self, out: Path) -> None:
        """Give the image file `out` the header of the source file it was made from."""
        source = self._headers_from.file(self._source_offset + self.frames_written)
        left_out = _HEADER_CARRIERS[self.spec.encoder](source, out)
        if left_out and not self._warned_left_out:
            self._warned_left_out = True
            warnings.warn(f"{self.spec.path.name}: the attributes {', '.join(left_out)} of {source.name} cannot be "
                          "written back by this OpenEXR and are left out", MediaWarning, stacklevel=3)

    def _over_source(self, rgb: np.ndarray, matte: np.ndarray | None, source: av.VideoFrame) -> av.VideoFrame:
        """The source's decoded frame with the samples under `matte` taken from `rgb`."""
        source = as_planar(source)  # packed 4:2:2, NV12, JPEG-range YUV: the same samples, planar
        if matte is None or not (covered := np.asarray(matte) > 0).any():
            return source
        out = self._to_frame(rgb)
        dtype = np.dtype(np.uint16 if FFV1_SOURCE_FORMATS[self.spec.pix_fmt] > 8 else np.uint8)
        keep: dict[tuple[int, int], np.ndarray] = {}  # per plane shape: U and V share theirs
        for index, (ours, theirs) in enumerate(zip(out.planes, source.planes, strict=True)):
            new, old = _plane_samples(ours, dtype), _plane_samples(theirs, dtype)
            if index == 3:  # alpha (YUVA): the source's everywhere; only colour is restored
                new[...] = old
                continue
            if new.shape not in keep:
                keep[new.shape] = ~(_field_subsampled if self._field_chroma else _subsampled)(covered, new.shape)
            new[keep[new.shape]] = old[keep[new.shape]]
        return out

    def _next_source_frame(self) -> av.VideoFrame:
        """The decoded source frame the next written frame is made from (its samples, alpha or captions);
        the frames of pieces appended as they are are passed over."""
        if self._planes is None:
            start, stop = self._trim or (0, None)
            self._planes = self._frames_from.decoded_frames(start, stop)
        while self._frames_pulled <= self.frames_written:
            self._source_frame = next(self._planes, None)
            if self._source_frame is None:
                raise InputError(f"{self._frames_from.path.name} ended after {self._frames_pulled} frames while "
                                 f"{self.spec.path.name} was being written; the source changed during the run")
            self._frames_pulled += 1
        return self._source_frame

    def _mux_captions(self, source: av.VideoFrame | None) -> None:
        """The caption track's packet for the next frame, from the source frame it is made from."""
        if self._captions is not None:
            self._captions.mux(self._container, source, self.frames_written)

    @property
    def copies_source_samples(self) -> bool:
        """Whether `write` takes the samples outside its matte from `planes_from` (its matte None: all)."""
        return self._planes_from is not None

    def append_video_from(self, path: str | Path) -> bool:
        """Append every frame of the video file `path` (e.g. `dvface batch`'s FFV1 pieces) as it is:
        its packets, not re-encoded, when they are exactly what this writer's encoder would produce
        (same codec, size, pixel format and codec header); else its decoded samples, encoded with
        no RGB round trip, when they are in this writer's pixel format and size. Returns False,
        having written nothing, when neither holds; the caller then decodes and `write`s the frames."""
        if self._closed:
            raise InputError("append_video_from() after close(): open a new MediaWriter.")
        if self.spec.kind != "video":
            return False
        with av.open(str(path)) as piece:
            if len(piece.streams.video) != 1:
                return False
            stream = piece.streams.video[0]
            ours, theirs = self._video.codec_context, stream.codec_context
            if theirs.pix_fmt != ours.pix_fmt or (theirs.width, theirs.height) != (self.width, self.height):
                return False
            if theirs.name == ours.name and bytes(theirs.extradata or b"") == bytes(ours.extradata or b""):
                for packet in piece.demux(stream):
                    if packet.size == 0:
                        continue  # demuxer flush packet
                    packet.stream = self._video
                    packet.pts = packet.dts = self.frames_written
                    packet.time_base = self._frame_time_base
                    packet.duration = 1
                    self._container.mux(packet)
                    self._mux_carried(until=Fraction(self.frames_written + 1) / self.fps)
                    self._mux_captions(self._next_source_frame() if self._captions_from is not None else None)
                    self.frames_written += 1
                return True
            for frame in piece.decode(stream):
                frame.pict_type = av.video.frame.PictureType.NONE  # an intra codec's "I" would force keyframes
                self._mux_captions(self._next_source_frame() if self._captions_from is not None else None)
                self._encode(frame)
                self.frames_written += 1
        return True

    def _encode(self, video_frame: av.VideoFrame) -> None:
        """Encode `video_frame` as the next frame, with the audio and subtitles up to its end."""
        video_frame.colorspace = self._video.codec_context.colorspace  # encoders that tag from the frame
        video_frame.pts = self.frames_written
        video_frame.time_base = self._frame_time_base
        for packet in self._video.encode(video_frame):
            self._container.mux(packet)
        self._mux_carried(until=Fraction(self.frames_written + 1) / self.fps)

    def _validated(self, frame: np.ndarray) -> np.ndarray:
        index = self.frames_written
        if not isinstance(frame, np.ndarray) or frame.shape != (self.height, self.width, 3):
            shape = getattr(frame, "shape", type(frame).__name__)
            raise InputError(f"{self.spec.path.name}: frame {index} has shape {shape}, expected "
                             f"({self.height}, {self.width}, 3) RGB; frames must not change size.")
        if frame.dtype not in _FRAME_DTYPES:
            raise InputError(f"frame {index} has dtype {frame.dtype}; use uint8, uint16 or float32.")
        if frame.dtype == np.uint16 and depth_class(self.bit_depth) == 8:
            raise InputError(f"frame {index} is uint16 but the writer was opened with bit_depth="
                             f"{self.bit_depth}; pass the frames' real depth (e.g. 16) so the "
                             f"output keeps it, or convert the frames to uint8 yourself.")
        rgb = rgb_to_dtype(frame, self.spec.dtype)
        if self.spec.options.get("format") == "half":
            # FFmpeg's EXR encoder truncates float -> half; round to nearest first.
            rgb = rgb.astype(np.float16).astype(np.float32)
        return rgb

    def _to_frame(self, rgb: np.ndarray) -> av.VideoFrame:
        """`rgb` in the output's pixel format; woven fields in 4:2:0 get each field's own chroma,
        as interlaced video stores it, so a moving face's colour is not averaged across fields."""
        if not self._field_chroma:
            return rgb_to_frame(rgb, self.spec.pix_fmt, self._matrix, self._full_range)
        frame = av.VideoFrame(self.width, self.height, self.spec.pix_fmt)
        dtype = np.dtype(np.uint16 if format_bits(frame.format) > 8 else np.uint8)
        for parity in (0, 1):
            field = rgb_to_frame(np.ascontiguousarray(rgb[parity::2]), self.spec.pix_fmt, self._matrix,
                                 self._full_range)
            for ours, theirs in zip(frame.planes, field.planes, strict=True):
                _plane_samples(ours, dtype)[parity::2] = _plane_samples(theirs, dtype)
        frame.color_range = field.color_range  # the tags the conversion set
        return frame

    # -- finishing -------------------------------------------------------------------------

    def close(self) -> None:
        """Finish the file and move it into place (the only moment the target appears)."""
        if self._closed:
            return
        try:
            if self.frames_written == 0:
                raise InputError(f"No frames were written to {self.spec.path.name}; nothing saved.")
            if self.spec.kind == "video":
                for packet in self._video.encode(None):
                    self._container.mux(packet)
                self._mux_carried(until=None)
                self._container.close()
                self._close_carried_input()
                if self._pixel_aspect != 1 and self.spec.path.suffix.lower() == ".mkv":
                    set_display_aspect(self._tmp, self.width, self.height, self._pixel_aspect)
                os.replace(self._tmp, self.spec.path)
            elif self.spec.kind == "photo":
                os.replace(self._tmp, self.spec.path)
            else:
                for name in sorted(os.listdir(self._tmp)):
                    os.replace(os.path.join(self._tmp, name), self.spec.pattern.folder / name)
                os.rmdir(self._tmp)
                self._warn_stale_frames()
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._finalizer.detach()

    def _warn_stale_frames(self) -> None:
        first = self._start_number
        written = range(first, first + self.frames_written)
        stale = [n for n in existing_frames(self.spec.pattern) if n not in written]
        if stale:
            warnings.warn(f"{self.spec.pattern.display}: {len(stale)} older frames outside "
                          f"{written.start}-{written.stop - 1} remain in the folder (e.g. frame "
                          f"{stale[0]}); delete them before reading the sequence back.",
                          MediaWarning, stacklevel=3)

    def abort(self) -> None:
        """Drop everything written so far; the target is left as it was."""
        if self._closed:
            return
        self._closed = True
        container = getattr(self, "_container", None)
        if container is not None:
            try:
                container.close()
            except (av.FFmpegError, OSError, ValueError):
                pass  # the partial file is deleted next; its trailer does not matter
        self._close_carried_input()
        self._finalizer()

    def _mux_carried(self, until: Fraction | None) -> None:
        """The carried audio and subtitles up to output time `until` (seconds; None = all)."""
        if self._carried is not None:
            self._carried.mux(self._container, until)

    def _close_carried_input(self) -> None:
        if getattr(self, "_carried", None) is not None:
            self._carried.close()

    def __enter__(self) -> MediaWriter:
        return self

    def __exit__(self, exc_type: type | None, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _warn_left_out(name: str, source: MediaSource, alpha_kept: bool, hdr_kept: bool,
                   captions_kept: bool) -> None:
    """Say what of `source` an output made from it does not hold, rather than drop it silently."""
    if source.metadata.get("hdr") and not hdr_kept:
        warnings.warn(f"{name}: {source.path.name} carries HDR10 mastering metadata (mastering display, light "
                      "levels), which only H.265 outputs here write; pass --codec h265 to keep it, or set it again "
                      "when you encode the master", MediaWarning, stacklevel=3)
    if source.metadata.get("alpha") and not alpha_kept:
        warnings.warn(f"{name}: {source.path.name} has an alpha channel, which this output does not hold (an "
                      "image sequence of PNG, TIFF, 8/16-bit DPX or EXR does); take the alpha from the source when "
                      "compositing", MediaWarning, stacklevel=3)
    if source.metadata.get("captions") and not captions_kept:
        warnings.warn(f"{name}: {source.path.name} carries closed captions (CEA-608/708) inside its video stream, "
                      "which only a .mov output keeps here (its CEA-608 captions, as a caption track); write .mov, "
                      "or extract them from the source (e.g. with ccextractor) and add them back", MediaWarning,
                      stacklevel=3)
    others = source.metadata.get("other_video_streams")
    if others:
        warnings.warn(f"{name}: {source.path.name} has {others} more video stream{'s' * (others > 1)}; only the "
                      "first is restored and written", MediaWarning, stacklevel=3)


def _x265_hdr(hdr: Mapping) -> str:
    """x265's parameters for a source's HDR10 metadata (`metadata["hdr"]`): chromaticities in units
    of 0.00002, luminance in units of 0.0001 cd/m2, primaries in x265's G, B, R order."""
    params = ["hdr10=1"]
    if "primaries" in hdr and "luminance" in hdr:
        (r, g, b), white = hdr["primaries"], hdr["white"]
        xy = "".join(f"{name}({round(x / 0.00002)},{round(y / 0.00002)})" for name, (x, y) in
                     (("G", g), ("B", b), ("R", r), ("WP", white)))
        low, high = hdr["luminance"]
        params.append(f"master-display={xy}L({round(high / 0.0001)},{round(low / 0.0001)})")
    if "max_cll" in hdr:
        params.append(f"max-cll={hdr['max_cll']},{hdr['max_fall']}")
    return ":".join(params)


def _chapters_within(chapters: list[tuple[Fraction, Fraction, dict]], trim: tuple[int, int] | None,
                     fps: Fraction) -> list[dict]:
    """A source's chapters (`metadata["chapters"]`) as the muxer takes them, cut to the frames
    [start, stop) of a trimmed output and timed from its first frame."""
    begin, end = (Fraction(0), None) if trim is None else (trim[0] / fps, trim[1] / fps)
    scale = 1_000_000  # microseconds
    kept = []
    for start, stop, tags in chapters:
        start, stop = max(start, begin), stop if end is None else min(stop, end)
        if stop > start:
            kept.append({"id": len(kept) + 1, "start": round((start - begin) * scale), "end": round((stop - begin) * scale),
                         "time_base": Fraction(1, scale), "metadata": tags})
    return kept


def _copyable_format(source: MediaSource | None, width: int, height: int) -> str | None:
    """The format a writer copies the source's samples in: the planar YUV that holds its decoded
    samples exactly (`pixels.planar_name`), at this size, with the dimensions its chroma
    subsampling needs; None when there is none (the output is then RGB)."""
    if source is None or source.pix_fmt is None or (source.width, source.height) != (width, height):
        return None
    stored = planar_name(source.pix_fmt)
    if stored not in FFV1_SOURCE_FORMATS:
        return None
    return None if odd_for_chroma(stored, width, height) else stored


def _plane_samples(plane: av.video.plane.VideoPlane, dtype: np.dtype) -> np.ndarray:
    """A writable (rows, columns) view of one plane's samples, without the row padding."""
    return np.frombuffer(plane, dtype).reshape(plane.height, -1)[:, :plane.width]


def _chroma_per_field(pix_fmt: str, width: int, height: int) -> bool:
    """Whether woven fields in `pix_fmt` keep a chroma row per field: the format subsamples chroma
    vertically and the height splits into two fields of whole chroma rows. Interlaced 4:2:0 stores
    chroma this way (chroma row r belongs to field r % 2), so it is written field by field."""
    fmt = av.VideoFormat(pix_fmt, width, height)
    if len(fmt.components) < 3 or fmt.is_rgb:
        return False
    factor = -(-height // max(fmt.components[1].height, 1))  # rows per chroma row
    return factor > 1 and height % (2 * factor) == 0


def _field_subsampled(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """`_subsampled` for woven fields: chroma row r belongs to field r % 2."""
    out = np.empty(shape, bool)
    for parity in (0, 1):
        out[parity::2] = _subsampled(mask[parity::2], (shape[0] // 2, shape[1]))
    return out


def _subsampled(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """`mask` on a plane of `shape`: a chroma sample is covered when any pixel it spans is."""
    fy, fx = -(-mask.shape[0] // shape[0]), -(-mask.shape[1] // shape[1])
    if (fy, fx) == (1, 1):
        return mask
    padded = np.zeros((shape[0] * fy, shape[1] * fx), bool)
    padded[:mask.shape[0], :mask.shape[1]] = mask
    return padded.reshape(shape[0], fy, shape[1], fx).any(axis=(1, 3))
