"""Interlaced video restored field by field, and woven back.

Each frame of interlaced video holds two fields shot a field period apart. Restoring the frame
as one picture would blend them on every moving face, so the job runs on the fields instead:
`FieldSource` shows the clip as twice as many pictures, each one field with the other field's
lines filled in (`media.deinterlace`: in place, so a face keeps its size and position, and its
full detail where it is still), and `FieldWeaver` takes the restored pictures in pairs and puts
each field's own lines back into one frame. Analysis, tracking and restoration see a progressive
clip at the field rate; the output keeps the source's frames, field order and every sample
outside the face mattes.
"""

from __future__ import annotations

import warnings
from fractions import Fraction
from typing import Any, Iterator

import numpy as np

from ..media import MediaWarning, VideoSource, check_progressive, first_field
from ..media.deinterlace import field_pictures
from ..media.pixels import frame_to_rgb


def restore_by_fields(metadata: Any, source: str, allow_interlaced: bool, *, quiet: bool = False) -> int | None:
    """The first field's row parity when `source` (`metadata` of its MediaSource) is restored field
    by field; None to restore its frames as pictures (progressive, or `allow_interlaced`). An
    interlaced source of unknown field order is refused. One whose file does not say it is
    interlaced, but whose frames are, is restored by fields with a warning (unless `quiet`: a
    batch chunk, whose job already warned)."""
    if allow_interlaced:
        return None
    first = first_field(metadata)
    if first is None:
        check_progressive(metadata, source)
        found = metadata.get("field_order_found")
        if found is not None:
            first = first_field({"field_order": found})
            if not quiet:
                warnings.warn(f"{source} does not say it is interlaced, but its frames are "
                              f"({('top', 'bottom')[first]} field first, found by FFmpeg's idet): it is restored "
                              "field by field; pass --allow-interlaced if its pictures are progressive",
                              MediaWarning)  # one place, so a job that asks twice (restore --report) warns once
    return first


class FieldSource:
    """`src` seen as its fields in display order: picture 2k is frame k's first field, 2k + 1 its second."""

    def __init__(self, src: VideoSource, first: int) -> None:
        self._src, self.first = src, first
        self.frame_count = 2 * src.frame_count
        self.fps = Fraction(src.fps) * 2

    def __getattr__(self, name: str) -> Any:
        return getattr(self._src, name)

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        stop = self.frame_count if stop is None else min(stop, self.frame_count)
        if start >= stop:
            return
        first, last = start // 2, (stop + 1) // 2  # the frames holding pictures [start, stop)
        depth, colorspace = self._src.bit_depth, self._src.metadata["color"]["colorspace"]
        n = 2 * (first - 1) if self._src.frame_count > 1 else 0
        for picture in field_pictures(self._neighboured(first, last), self.first):
            if start <= n < stop:
                yield frame_to_rgb(picture, depth, colorspace)
            n += 1

    def _neighboured(self, first: int, last: int) -> Iterator[Any]:
        """Decoded frames [first, last) with a neighbour on each side, as the whole clip gives each
        frame its pictures: the frames before and after, or at the clip's ends its only
        neighbour on both sides (without it, the deinterlacer takes the ends for still)."""
        count, decoded = self._src.frame_count, self._src.decoded_frames
        if count < 2:
            yield from decoded(first, last)
            return
        if first == 0:
            yield from decoded(1, 2)
        yield from decoded(max(first - 1, 0), min(last + 1, count))
        if last == count:
            yield from decoded(count - 2, count - 1)


class FieldWeaver:
    """A writer of field pictures: each pair becomes one frame of `writer` (`write(frame, matte)`),
    the first picture's rows of its own field and the second's of the other."""

    def __init__(self, writer: Any, first: int) -> None:
        self._writer, self._first = writer, first
        self._held: tuple[np.ndarray, np.ndarray | None] | None = None

    def write(self, picture: np.ndarray, matte: np.ndarray | None = None) -> None:
        if self._held is None:
            self._held = (picture, matte)
            return
        (first, first_matte), self._held = self._held, None
        frame = first.copy()
        frame[1 - self._first :: 2] = picture[1 - self._first :: 2]
        if first_matte is None and matte is None:
            self._writer.write(frame, None)
            return
        woven = np.zeros_like(matte) if first_matte is None else np.array(first_matte)
        woven[1 - self._first :: 2] = 0 if matte is None else matte[1 - self._first :: 2]
        self._writer.write(frame, woven)
