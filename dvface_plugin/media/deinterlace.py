"""Interlaced frames as field pictures: FFmpeg's bwdif, one full-height picture per field.

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


def field_pictures(frames: Iterable[av.VideoFrame], first: int) -> Iterator[av.VideoFrame]:
    """Two pictures per frame of `frames`, in display order (`first`: the row parity of the field
    shown first, 0 top). A frame's pictures depend on it and its two neighbours only, so a range
    read with one frame more on each side gives its pictures as the whole clip would."""
    graph = sink = None
    for index, frame in enumerate(frames):
        if graph is None:
            graph = av.filter.Graph()
            source = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format,
                                      time_base=Fraction(1, 1))
            bwdif = graph.add("bwdif", f"mode=send_field:parity={('tff', 'bff')[first]}:deint=all")
            sink = graph.add("buffersink")
            source.link_to(bwdif)
            bwdif.link_to(sink)
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
