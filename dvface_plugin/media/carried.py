"""What a video output carries over from its source besides the pictures.

The source's audio and subtitle streams are copied packet by packet (never re-encoded), cut and
moved so that they keep their time against the first written frame; closed captions that a
broadcast source holds inside its pictures become a caption track, frame by frame.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
from av.sidedata.sidedata import Type as SideDataType

from ..errors import InputError
from .reader import MediaSource
from .sequences import READ_EXTENSIONS

# Stream tags a muxer writes of its own (Matroska's statistics, the writing library).
_MUXER_STREAM_TAGS = {"duration", "number_of_frames", "number_of_bytes", "encoder", "vendor_id"}
# The subtitle codecs a container holds untouched, where it does not hold them all (MXF: none).
_SUBTITLE_CODECS = {".mp4": {"mov_text"}, ".mov": {"mov_text", "eia_608"}, ".mxf": set()}


def source_path(source: str | Path | MediaSource) -> Path:
    return source.path if isinstance(source, MediaSource) else Path(source)


def has_carried_streams(source: str | Path | MediaSource | None) -> bool:
    """Whether `source` is a media file with audio or subtitle streams (False for images)."""
    if source is None:
        return False
    if isinstance(source, MediaSource):
        return source.has_audio or source.has_subtitles
    path = Path(source)
    if path.suffix.lower() in READ_EXTENSIONS or path.is_dir():
        return False
    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio or container.streams.subtitles)
    except (av.FFmpegError, OSError) as exc:
        raise InputError(f"Cannot read audio or subtitles from {path}: {exc}.") from exc


class CarriedStreams:
    """The audio and subtitle streams of `streams_from`, added to the output `container` (a file with
    extension `ext`); what it cannot hold as it is is refused here, naming one that can. `mux(until)`
    then copies their packets up to a time of the output, interleaved with the video.

    The output starts with the source's frame `trim[0]` (0 without a trim), shown at the source's
    `metadata["start"]` plus that many frames (MPEG program and transport streams start late, at any
    time): packets are moved back by as much, those before it left out, and a trim's end cuts them.
    """

    def __init__(self, container: av.container.OutputContainer, ext: str,
                 streams_from: str | Path | MediaSource, *, fps: Fraction, trim: tuple[int, int] | None,
                 drop_subtitles: bool) -> None:
        source = source_path(streams_from)
        self._input: av.container.InputContainer | None = av.open(str(source))
        try:
            self._map = self._add_streams(container, source, ext.lower(), drop_subtitles)
        except BaseException:
            self.close()
            raise
        self._packets = iter(())
        if self._map:  # demux() of no stream would give every stream
            self._packets = self._input.demux(*(self._input.streams[index] for index in self._map))
        else:
            self.close()
        self._pending: av.Packet | None = None
        start = Fraction(streams_from.metadata.get("start", 0)) if isinstance(streams_from, MediaSource) else 0
        first, stop = trim or (0, None)
        # Source seconds [begin, end) of what the output carries (None: all of it, as it is).
        self._span = (None if not (start or first) else
                      (start + Fraction(first) / fps, None if stop is None else start + Fraction(stop) / fps))

    def _add_streams(self, container: av.container.OutputContainer, source: Path, ext: str,
                     drop_subtitles: bool) -> dict[int, av.stream.Stream]:
        mapping = {}
        for stream in self._input.streams.audio:
            name = stream.codec_context.name
            if ext == ".mp4" and name.startswith("pcm_"):
                raise InputError(f"{source.name} has {name} audio, which .mp4 cannot hold "
                                 f"untouched; write .mov or .mkv to keep the audio as it is.")
            if ext == ".mxf" and (name not in ("pcm_s16le", "pcm_s24le") or stream.sample_rate != 48000):
                raise InputError(f"{source.name} has {name} audio at {stream.sample_rate} Hz; .mxf holds only "
                                 f"48 kHz 16- or 24-bit PCM, so write .mov or .mkv to keep the audio as it is.")
            try:
                mapping[stream.index] = _carried(container, stream)
            except ValueError as exc:
                raise InputError(f"{ext} cannot hold the {name} audio of {source.name}; write "
                                 f".mkv or .mov to keep it untouched.") from exc
        for stream in [] if drop_subtitles else self._input.streams.subtitles:
            name = stream.codec_context.name
            holder = ".mov" if name in _SUBTITLE_CODECS[".mov"] else ".mkv"
            refusal = (f"{source.name} has {name} subtitles, which {ext} cannot hold; write {holder} to keep them "
                       "as they are, or drop them explicitly (--drop-subtitles)")
            if ext in _SUBTITLE_CODECS and name not in _SUBTITLE_CODECS[ext]:
                raise InputError(refusal)
            try:
                mapping[stream.index] = _carried(container, stream)
            except ValueError as exc:  # Matroska takes neither of the .mov ones
                raise InputError(refusal) from exc
        return mapping

    def mux(self, container: av.container.OutputContainer, until: Fraction | None) -> None:
        """Mux packets up to output time `until` (seconds; None = all)."""
        if self._input is None:
            return
        while True:
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                return
            if packet.dts is None and packet.pts is None:
                continue  # demuxer flush packet
            stamp = packet.pts if packet.pts is not None else packet.dts
            seconds = stamp * packet.time_base
            begin, end = self._span or (0, None)
            if self._span is not None:
                if seconds < begin:
                    continue  # before the first frame (the codec's priming too)
                if end is not None and seconds >= end:
                    self.close()  # after the last frame: the rest is not needed
                    return
            if until is not None and seconds - begin >= until:
                self._pending = packet
                return
            if begin:
                shift = round(begin / packet.time_base)
                packet.pts = None if packet.pts is None else packet.pts - shift
                packet.dts = None if packet.dts is None else packet.dts - shift
            packet.stream = self._map[packet.stream.index]
            container.mux(packet)

    def close(self) -> None:
        if self._input is not None:
            self._input.close()
            self._input = None


class CaptionTrack:
    """A .mov caption track (c608) holding the CEA-608 captions each source frame carries inside its
    picture (ATSC A/53 user data, as broadcast sends them), one packet per frame that has any."""

    def __init__(self, container: av.container.OutputContainer, fps: Fraction) -> None:
        self._stream = container.add_mux_stream("eia_608", rate=fps)
        self._stream.time_base = 1 / fps

    def mux(self, container: av.container.OutputContainer, source: av.VideoFrame, index: int) -> None:
        """The caption bytes of `source`, as the track's packet for output frame `index`."""
        data = source.side_data.get(SideDataType.A53_CC)
        # (flags, byte, byte) triplets: valid ones of type 0 and 1 are CEA-608 (fields 1 and 2), the rest 708
        triplets = bytes(data) if data is not None else b""
        kept = b"".join(triplets[i:i + 3] for i in range(0, len(triplets) - 2, 3)
                        if triplets[i] & 0x04 and triplets[i] & 0x03 in (0, 1))
        if kept:
            packet = av.Packet(kept)
            packet.stream, packet.time_base = self._stream, self._stream.time_base
            packet.pts = packet.dts = index
            packet.duration = 1
            container.mux(packet)


def _carried(container: av.container.OutputContainer, stream: av.stream.Stream) -> av.stream.Stream:
    """An output stream for `stream`'s packets, with its tags (language, title) and disposition
    (default, forced, hearing impaired): what a player names and picks tracks by."""
    out = container.add_stream_from_template(stream)
    for key, value in stream.metadata.items():
        if key.lower() not in _MUXER_STREAM_TAGS and not key.lower().startswith("_statistics"):
            out.metadata[key] = value
    out.disposition = stream.disposition
    return out
