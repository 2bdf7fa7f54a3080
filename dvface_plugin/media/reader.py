"""Reading video files, image sequences and photos as streams of full-depth RGB frames.

Decoding streams frame by frame (memory does not grow with clip length); `read(n)` seeks,
for hosts that request frames out of order.
"""

from __future__ import annotations

import itertools
import struct
import threading
from abc import ABC, abstractmethod
from functools import cached_property
from collections.abc import Callable, Iterator, Mapping
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.sidedata.sidedata import Type as SideDataType

from ..errors import InputError
from .deinterlace import found_field_order
from .formats import parse_fps
from .pixels import DTYPE_BY_DEPTH, chroma_siting, depth_class, format_bits, frame_to_rgb
from .sequences import (
    READ_EXTENSIONS,
    FramePattern,
    decode_image,
    parse_pattern,
    resolve_sequence,
    scan_folder,
)

DEFAULT_SEQUENCE_FPS = Fraction(24)
SITING_FRAMES = 24  # frames from the start tried for one whose chroma tells the siting
# Forward decoding beats a seek for short jumps; beyond this many frames read(n) seeks.
_SEEK_DISTANCE = 12
# FFmpeg colour enum fields of a frame, with the value that means "unspecified".
_COLOR_UNSET = {"colorspace": 2, "color_range": 0, "color_primaries": 2, "color_trc": 2}
# FFmpeg's AVFieldOrder for interlaced streams -> row parity of the field shown first (0 top, 1 bottom).
_FIRST_FIELD = {2: 0, 3: 1, 4: 1, 5: 0}
_UNKNOWN_ORDER, _BOTTOM_FIRST = 0, 3
_IDET_FRAMES = 120  # frames FFmpeg's idet looks at when the file does not say whether it is interlaced
_FOUND_FIELD_ORDERS: dict[tuple[str, int, int], int | None] = {}  # what idet found, by file version
_MUXER_TAGS = {"major_brand", "minor_version", "compatible_brands", "encoder", "duration",
               "handler_name", "vendor_id", "language", "timecode"}


class MediaSource(ABC):
    """Common interface of video files, image sequences and photos.

    Attributes: `path`, `fps` (exact Fraction; Fraction(0) for a photo), `frame_count`,
    `width`, `height`, `bit_depth` (8, 16 or 32 = float: the array depth handed out),
    `source_bits` (significant bits in the file, e.g. 10 for yuv420p10le; pass this as the
    writer's `bit_depth` to keep exactly what the source had), `dtype`, `is_photo`,
    `has_audio`, `has_subtitles`, `metadata` (dict; `timecode`, `tags`, `chapters`, `color`, `first_frame`,
    `pixel_aspect` when known),
    `pix_fmt` (a video's decoded pixel format, e.g. yuv420p; None for images), `chroma_siting`.
    """

    path: Path
    fps: Fraction
    width: int
    height: int
    source_bits: int
    pix_fmt: str | None = None
    chroma_siting: str | None = None  # where a video's chroma samples sit (FFmpeg's name); None: unspecified
    is_photo: bool = False
    has_audio: bool = False
    has_subtitles: bool = False
    metadata: dict

    @property
    def bit_depth(self) -> int:
        return depth_class(self.source_bits)

    @property
    def dtype(self) -> np.dtype:
        return DTYPE_BY_DEPTH[self.bit_depth]

    @property
    @abstractmethod
    def frame_count(self) -> int:
        """Number of frames (video: from the container or one demux pass, no decoding)."""

    @abstractmethod
    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """HxWx3 RGB arrays for frames [start, stop), decoded one at a time."""

    @abstractmethod
    def read(self, n: int) -> np.ndarray:
        """Frame `n` (0-based), in any order."""

    def close(self) -> None:  # noqa: B027 - only video sources hold files between calls
        """Release open files; iterators already running keep their own handles."""

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.frames()

    def __len__(self) -> int:
        return self.frame_count

    def __enter__(self) -> MediaSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _range(self, start: int, stop: int | None) -> tuple[int, int]:
        count = self.frame_count
        stop = count if stop is None else min(stop, count)
        if not 0 <= start <= count:
            raise IndexError(f"start frame {start} is outside 0..{count} of {self.path.name}")
        return start, stop

    def _check_index(self, n: int) -> None:
        if not 0 <= n < self.frame_count:
            raise IndexError(f"frame {n} is outside 0..{self.frame_count - 1} of {self.path.name}")

    def _check_size(self, width: int, height: int, index: int) -> None:
        if (width, height) != (self.width, self.height):
            raise InputError(f"{self.path.name}: frame {index} is {width}x{height} but the clip "
                             f"started at {self.width}x{self.height}; frames must not change size. "
                             f"Conform the clip to one resolution first.")


class VideoSource(MediaSource):
    """A video file decoded with PyAV (first video stream)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        container, stream = self._open()
        try:
            # Container colour tags, read before decoding: decoders overwrite them with the
            # bitstream's (often unspecified) values.
            container_color = {key: getattr(stream.codec_context, key) for key in _COLOR_UNSET}
            field_order = stream.codec_context.field_order
            first = next(self._decoded(container, stream), None)
            if first is None:
                raise InputError(f"{path.name} holds no decodable video frames; re-export the clip.")
            self.width, self.height = first.width, first.height
            self.source_bits = format_bits(first.format)
            self.pix_fmt = first.format.name
            self._pts_index: list[int] | None = None
            self._packet_count: int | None = None
            self.fps, variable = _frame_rate(stream, path, self._index)
            # MP4/MOV sample tables list every frame without reading data; entries an edit
            # list discards are not shown, so they are not counted. Other containers are
            # counted by one demux pass when the count is first needed.
            self._nb_frames = (sum(1 for e in stream.index_entries if not e.is_discard)
                               if container.format.name.startswith("mov") else 0)
            self.has_audio = bool(container.streams.audio)
            self.has_subtitles = bool(container.streams.subtitles)
            self.metadata = self._collect_metadata(container, stream, first)
            if variable:
                self.metadata["variable_frame_rate"] = True
            field_order = field_order or stream.codec_context.field_order  # some demuxers learn it by decoding
            if field_order not in _FIRST_FIELD and first.interlaced_frame and _is_sd_dv(stream, first):
                field_order = _BOTTOM_FIRST  # DV's own standard (IEC 61834), which .dv and .avi do not tag
            if field_order in _FIRST_FIELD:
                self.metadata["field_order"] = field_order  # the tag a writer keeps
                self.metadata["interlaced"] = ("top", "bottom")[_FIRST_FIELD[field_order]] + " field first"
            elif first.interlaced_frame:
                self.metadata["interlaced"] = "field order unknown"
            elif field_order == _UNKNOWN_ORDER:  # the file says neither progressive nor interlaced
                found = self._found_field_order()
                if found is not None:  # not a tag: restore_by_fields decides what to do with it
                    self.metadata["field_order_found"] = found
            sar = stream.sample_aspect_ratio  # the container's, else the bitstream's
            if sar is not None and sar > 0 and sar != 1:
                self.metadata["pixel_aspect"] = sar
            self.metadata["color"] = {
                key: container_color[key] if getattr(first, key) == unset else getattr(first, key)
                for key, unset in _COLOR_UNSET.items()}
        finally:
            container.close()
        self._cursor: Iterator[av.VideoFrame] | None = None
        self._cursor_next = -1
        self._lock = threading.Lock()

    def _found_field_order(self) -> int | None:
        """`deinterlace.found_field_order` of the first frames, looked at once per file version in a
        process (a job opens its source several times; idet decodes up to 120 frames)."""
        stat = self.path.stat()
        key = (str(self.path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in _FOUND_FIELD_ORDERS:
            _FOUND_FIELD_ORDERS[key] = found_field_order(self.decoded_frames(0, _IDET_FRAMES))
        return _FOUND_FIELD_ORDERS[key]

    def _open(self) -> tuple[av.container.InputContainer, av.VideoStream]:
        try:
            container = av.open(str(self.path))
        except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
            raise InputError(f"Cannot open {self.path}: {exc}. Is it a video file?") from exc
        if not _pictures(container):
            container.close()
            raise InputError(f"{self.path.name} has no video frames (no usable video stream); "
                             f"check that it is the clip you meant.")
        stream = _pictures(container)[0]
        stream.thread_type = "AUTO"
        return container, stream

    def _decoded(self, container: av.container.InputContainer,
                 stream: av.VideoStream) -> Iterator[av.VideoFrame]:
        try:
            yield from container.decode(stream)
        except av.FFmpegError as exc:
            raise InputError(f"{self.path.name} cannot be decoded: {exc}. The file may be "
                             f"truncated or damaged.") from exc

    def _collect_metadata(self, container: av.container.InputContainer, stream: av.VideoStream,
                          frame: av.VideoFrame) -> dict:
        tags = {k.lower(): v for k, v in container.metadata.items() if k.lower() not in _MUXER_TAGS}
        meta: dict = {
            "container": container.format.name,
            "codec": stream.codec_context.name,
            "pix_fmt": frame.format.name,
            "source_bits": self.source_bits,
            "tags": tags,
            "audio_codecs": [a.codec_context.name for a in container.streams.audio],
        }
        for s in (stream, *container.streams):
            timecode = s.metadata.get("timecode") or s.metadata.get("TIMECODE")
            if timecode:
                meta["timecode"] = timecode
                break
        else:
            if "timecode" in container.metadata:
                meta["timecode"] = container.metadata["timecode"]
        if frame.pts:  # MPEG program and transport streams start late, at any time: audio is timed from here
            meta["start"] = Fraction(frame.pts) * stream.time_base
        hdr = _hdr_metadata(frame)
        if hdr:
            meta["hdr"] = hdr
        if frame.side_data.get(SideDataType.A53_CC) is not None:  # broadcast sends them with every picture
            meta["captions"] = True  # CEA-608/708 closed captions inside the video stream
        others = len(_pictures(container)) - 1
        if others:
            meta["other_video_streams"] = others  # only the first is restored and written
        chapters = container.chapters()
        if chapters:  # (start, end) in seconds, and each chapter's own tags (its title)
            meta["chapters"] = [(Fraction(c["start"]) * c["time_base"], Fraction(c["end"]) * c["time_base"],
                                 dict(c["metadata"])) for c in chapters]
        if frame.rotation:
            meta["rotation"] = frame.rotation
        if len(frame.format.components) in (2, 4):  # gray+alpha or RGBA/YUVA: frames hand out colour only
            meta["alpha"] = True
        return meta

    def _index(self) -> list[int] | None:
        """Presentation timestamps of all frames in display order (demux only, no decode).

        None when the stream has no timestamps (raw elementary streams): such files are
        counted by packets and read from the start instead of seeking.
        """
        if self._packet_count is None:
            container, stream = self._open()
            try:
                pts = [p.pts for p in container.demux(stream) if p.size and not p.is_discard]
            finally:
                container.close()
            self._packet_count = len(pts)
            self._pts_index = None if None in pts else sorted(pts)
        return self._pts_index

    @cached_property
    def chroma_siting(self) -> str | None:
        """The siting the decoder gives this video's frames (`pixels.chroma_siting`), found once,
        from the first frames, so every writer copying its samples (each batch chunk too) tags alike."""
        return chroma_siting(self.decoded_frames(0, SITING_FRAMES))

    @property
    def frame_count(self) -> int:
        if self._nb_frames > 0:
            return self._nb_frames
        self._index()
        return self._packet_count

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        # The count costs a demux pass on some containers: only check it when seeking.
        if start:
            start, stop = self._range(start, stop)
        colorspace = self.metadata["color"]["colorspace"]
        return (frame_to_rgb(frame, self.bit_depth, colorspace) for frame in self._generate(start, stop))

    def decoded_frames(self, start: int = 0, stop: int | None = None) -> Iterator[av.VideoFrame]:
        """Frames [start, stop) as the decoder gives them, in `pix_fmt`: what a writer copies
        samples from so that they stay bit-identical to the source's."""
        if start:
            start, stop = self._range(start, stop)
        return self._generate(start, stop)

    def _generate(self, start: int, stop: int | None) -> Iterator[av.VideoFrame]:
        if stop is not None and start >= stop:
            return
        container, stream = self._open()
        try:
            index, skip, frames = start, start, None
            pts = self._index() if start > 0 else None
            if pts is not None and start < len(pts):
                container.seek(pts[start], stream=stream, backward=True, any_frame=False)
                frames = self._decoded(container, stream)
                first = next((f for f in frames if f.pts is None or f.pts >= pts[start]), None)
                if first is not None and first.pts in (None, pts[start]):
                    frames, skip = itertools.chain([first], frames), 0
                else:  # the demuxer seeked past it (raw elementary streams, program streams): from the start
                    container.close()
                    container, stream = self._open()
                    frames = None
            for frame in frames or self._decoded(container, stream):
                if skip:
                    skip -= 1
                    continue
                self._check_size(frame.width, frame.height, index)
                yield frame
                index += 1
                if stop is not None and index >= stop:
                    return
        finally:
            container.close()

    def read(self, n: int) -> np.ndarray:
        self._check_index(n)
        with self._lock:  # hosts (VapourSynth FrameEval) call read() from several threads
            return self._read_locked(n)

    def _read_locked(self, n: int) -> np.ndarray:
        if self._cursor is None or not self._cursor_next <= n < self._cursor_next + _SEEK_DISTANCE:
            self._drop_cursor()
            self._cursor = self._generate(n, None)
            self._cursor_next = n
        frame = None
        while self._cursor_next <= n:
            try:
                frame = next(self._cursor, None)
            except BaseException:
                self._drop_cursor()
                raise
            if frame is None:
                self._drop_cursor()
                raise InputError(f"{self.path.name}: frame {n} could not be decoded "
                                 f"(the file ends early or is damaged).")
            self._cursor_next += 1
        return frame_to_rgb(frame, self.bit_depth, self.metadata["color"]["colorspace"])

    def close(self) -> None:
        with self._lock:
            self._drop_cursor()

    def _drop_cursor(self) -> None:
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None
            self._cursor_next = -1


def _frame_rate(stream: av.VideoStream, path: Path,
                timestamps: Callable[[], list[int] | None]) -> tuple[Fraction, bool]:
    """Exact frame rate and whether the stream's frame timing varies.

    The stream's declared rate is exact (30, 24000/1001) where the average is often a
    rounding artefact (345000000/11500001), skewed by edit lists, or a placeholder (raw DV
    reports its time base, 60000). When the two disagree by more than 2%, the frames'
    `timestamps` (sorted, in the stream's time base) decide: evenly spaced, they give the
    rate; uneven, the timing is variable and the average stands for it.
    """
    declared, average = stream.guessed_rate, stream.average_rate
    if declared and average and abs(float(average / declared) - 1) > 0.02:
        steady = _steady_rate(timestamps(), Fraction(stream.time_base))
        if steady is None:
            return Fraction(average), True
        return (Fraction(declared) if abs(float(steady / declared) - 1) < 0.002 else steady), False
    rate = declared or average or stream.base_rate
    if not rate:
        raise InputError(f"{path.name} has no frame rate; remux it with a rate set.")
    return Fraction(rate), False


def _hdr_metadata(frame: av.VideoFrame) -> dict:
    """HDR10 mastering display (primaries R, G, B and white point as CIE xy, luminance min and
    max in cd/m2) and content light levels (MaxCLL, MaxFALL) a decoded frame carries, as numbers."""
    found: dict = {}
    display = frame.side_data.get(SideDataType.MASTERING_DISPLAY_METADATA)
    if display is not None:
        v = struct.unpack("<20i", bytes(display)[:80]) + struct.unpack("<2i", bytes(display)[80:88])
        ratios = [v[i] / v[i + 1] if v[i + 1] else 0.0 for i in range(0, 20, 2)]
        if v[20]:
            found["primaries"], found["white"] = [ratios[0:2], ratios[2:4], ratios[4:6]], ratios[6:8]
        if v[21]:
            found["luminance"] = ratios[8:10]
    light = frame.side_data.get(SideDataType.CONTENT_LIGHT_LEVEL)
    if light is not None:
        found["max_cll"], found["max_fall"] = struct.unpack("<2I", bytes(light)[:8])
    return found


def _pictures(container: av.container.InputContainer) -> list[av.VideoStream]:
    """The video streams that hold a clip: not cover art or thumbnails (attached pictures)."""
    return [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]


def _is_sd_dv(stream: av.VideoStream, frame: av.VideoFrame) -> bool:
    """Standard-definition DV (DV25, DVCAM, DVCPRO, DVCPRO50: 720x480 or 720x576), whose
    interlaced pictures are always bottom field first."""
    return stream.codec_context.name == "dvvideo" and (frame.width, frame.height) in ((720, 480), (720, 576))


def _steady_rate(pts: list[int] | None, time_base: Fraction) -> Fraction | None:
    """The rate of evenly spaced timestamps (steps within one tick of each other, as rounding to
    a millisecond time base leaves them), None when they are uneven or unknown."""
    if pts is None or len(pts) < 3:
        return None
    steps = np.diff(pts)
    if steps.min() <= 0 or steps.max() - steps.min() > 1:
        return None
    return (Fraction(len(steps), int(pts[-1] - pts[0])) / time_base).limit_denominator(1001)


def first_field(metadata: Mapping) -> int | None:
    """Row parity of the field shown first (0 top, 1 bottom) of an interlaced source (`metadata` of
    its MediaSource) whose field order is known, else None."""
    return _FIRST_FIELD.get(metadata.get("field_order"))


def pixel_aspect(metadata: Mapping) -> Fraction:
    """Width of a source's pixels over their height (`metadata` of its MediaSource): 64:45 for
    anamorphic 16:9 PAL, 1 for square pixels or when the file does not say."""
    return Fraction(metadata.get("pixel_aspect") or 1)


def quarter_turns(metadata: Mapping) -> int:
    """Counter-clockwise quarter turns (0-3) that show a source's pictures upright (`metadata` of its
    MediaSource; its display rotation, -90 for a phone clip or photo stored on its side)."""
    return round(float(metadata.get("rotation") or 0) / 90) % 4


def display_geometry(metadata: Mapping) -> dict[str, float]:
    """How a source's pictures are displayed (`metadata` of its MediaSource), as the face analysis
    takes it: `pixel_aspect` (float) and `rotation` (0, 90, 180 or 270 degrees counter-clockwise)."""
    return {"pixel_aspect": float(pixel_aspect(metadata)), "rotation": 90 * quarter_turns(metadata)}


def check_progressive(metadata: Mapping, source: str, allow_interlaced: bool = False) -> None:
    """Refuse to restore an interlaced source (`metadata` of its MediaSource): the model would take
    each frame's two fields, shot 1/50 or 1/60 s apart, as one picture and blend them on every moving face."""
    if metadata.get("interlaced") and not allow_interlaced:
        raise InputError(f"{source} is interlaced ({metadata['interlaced']}): restoring its frames as pictures "
                         "would blend the two fields of every moving face; deinterlace it first (ffmpeg -i IN "
                         "-vf bwdif=mode=send_field OUT, or QTGMC), or pass --allow-interlaced if its pictures "
                         "are progressive (PsF, film)")


class ImageSource(MediaSource):
    """A numbered image sequence, or a single photo (`is_photo`, fps 0, one frame)."""

    def __init__(self, files: list[Path], numbers: list[int], pattern: FramePattern | None,
                 fps: Fraction) -> None:
        self._files = files
        self.path = files[0] if pattern is None else pattern.path(numbers[0])
        self.is_photo = pattern is None
        first, aspect = decode_image(files[0])
        self.width, self.height = first.width, first.height
        self.source_bits = format_bits(first.format)
        self.fps = Fraction(0) if self.is_photo else fps
        self.metadata = {
            "container": "image" if self.is_photo else "image_sequence",
            "codec": files[0].suffix.lstrip(".").lower(),
            "pix_fmt": first.format.name,
            "source_bits": self.source_bits,
            "tags": {},
        }
        if pattern is not None:
            self.path = Path(pattern.display)
            self.metadata.update(first_frame=numbers[0], pattern=pattern.display,
                                 frame_numbers=(numbers[0], numbers[-1]))
        if len(first.format.components) in (2, 4):  # gray+alpha or RGBA: frames hand out colour only
            self.metadata["alpha"] = True
        if aspect is not None and aspect > 0 and aspect != 1:  # an anamorphic scan or plate
            self.metadata["pixel_aspect"] = aspect
        if first.rotation:  # a phone photo's EXIF orientation, as the decoder reports it
            self.metadata["rotation"] = first.rotation

    @property
    def frame_count(self) -> int:
        return len(self._files)

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        start, stop = self._range(start, stop)
        return (self.read(n) for n in range(start, stop))

    def file(self, n: int) -> Path:
        """The image file of frame `n`."""
        self._check_index(n)
        return self._files[n]

    def read(self, n: int) -> np.ndarray:
        self._check_index(n)
        frame = decode_image(self._files[n])[0]
        self._check_size(frame.width, frame.height, n)
        return frame_to_rgb(frame, self.bit_depth)


def open_media(path: str | Path, *, sequence_fps: Fraction | int | str | None = None) -> MediaSource:
    """Open a video file, an image sequence (pattern or folder of numbered frames) or a photo.

    Image sequences carry no frame rate: they get `sequence_fps`, or 24 when not given
    (`metadata['fps_assumed']` is then True). A photo has fps Fraction(0).
    """
    path = Path(path)
    pattern = parse_pattern(path)
    if pattern is None and path.is_dir():
        pattern = scan_folder(path)
    fps = parse_fps(sequence_fps) if sequence_fps is not None else DEFAULT_SEQUENCE_FPS
    if pattern is not None:
        numbers, files = resolve_sequence(pattern)
        source: MediaSource = ImageSource(files, numbers, pattern, fps)
        source.metadata["fps_assumed"] = sequence_fps is None
        return source
    if not path.is_file():
        raise InputError(f"{path} does not exist; check the path.")
    if sequence_fps is not None:  # a video keeps its own timing, and a photo has none: never retime
        raise InputError(f"{path} is not an image sequence; a frame rate (--fps) applies only to numbered "
                         "image sequences such as shot_%04d.png, so leave it out")
    if path.suffix.lower() in READ_EXTENSIONS:
        return ImageSource([path], [0], None, fps)
    return VideoSource(path)
