"""Interlaced frames: their field order where the file does not say it (FFmpeg's idet), and
their field pictures (FFmpeg's bwdif, one full-height picture per field).

Each picture keeps its field's own samples (chroma rows included: interlaced 4:2:0 stores a
chroma row per field) and fills the other field's lines motion-adaptively: where nothing moves
they are the other field's own lines, so a still face keeps its full vertical detail (line
doubling halves it); where something moves they are interpolated from the field alone, so no
line shows the other field's moment.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction

import av

# A file that does not say it is interlaced is taken as such when idet sees one field order in at
# least this share of the frames it looks at, and in at least this many (noise fools it in fewer).
_WOVEN_SHARE, _MIN_WOVEN = 0.8, 4


def field_pictures(frames: Iterable[av.VideoFrame], first: int) -> Iterator[av.VideoFrame]:
    """Two pictures per frame of `frames`, in display order (`first`: the row parity of the field
    shown first, 0 top). A frame's pictures depend on it and its two neighbours only, so a range
    read with one frame more on each side gives its pictures as the whole clip would."""
    return _filtered(frames, "bwdif", f"mode=send_field:parity={('tff', 'bff')[first]}:deint=all")


def found_field_order(frames: Iterable[av.VideoFrame]) -> int | None:
    """The field order FFmpeg's idet filter finds in `frames`, for video whose file does not say
    (analogue captures in lossless codecs rarely do): FFmpeg's AVFieldOrder, 2 top field first or
    3 bottom field first. Only when it finds that order in nearly every frame: None when they look
    progressive, are too still to tell, or are noise it cannot read."""
    seen = 0

    def counted() -> Iterator[av.VideoFrame]:
        nonlocal seen
        for seen, frame in enumerate(frames, 1):
            yield frame

    last = None
    for last in _filtered(counted(), "idet", ""):
        pass
    metadata = {} if last is None else last.metadata  # idet's running counts, on every frame it passes
    tff, bff = (float(metadata.get(f"lavfi.idet.multiple.{order}", 0)) for order in ("tff", "bff"))
    if max(tff, bff) < max(_MIN_WOVEN, _WOVEN_SHARE * seen):
        return None
    return 2 if tff > bff else 3


def _filtered(frames: Iterable[av.VideoFrame], name: str, args: str) -> Iterator[av.VideoFrame]:
    """`frames` through the FFmpeg video filter `name` (its options `args`), as it gives them out."""
    graph = sink = None
    for index, frame in enumerate(frames):
        if graph is None:
            graph = av.filter.Graph()
            source = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format,
                                      time_base=Fraction(1, 1))
            node = graph.add(name, args)
            sink = graph.add("buffersink")
            source.link_to(node)
            node.link_to(sink)
            graph.configure()
        frame.pts = index
        graph.push(frame)
        yield from _ready(sink)
    if graph is not None:
        graph.push(None)
        yield from _ready(sink)


def _ready(sink: av.filter.context.FilterContext) -> Iterator[av.VideoFrame]:
    while True:
        try:
            yield sink.pull()
        except (av.BlockingIOError, av.EOFError):
            return
