"""Interlaced video as field pictures and back (wholeframe.fields), on synthetic frames."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from dvface_plugin.media import first_field
from dvface_plugin.wholeframe.fields import FieldSource, FieldWeaver


class Frames:
    """A stand-in VideoSource of RGB frames: frame k is filled with k * 10 plus its row number."""

    def __init__(self, n: int, height: int = 7) -> None:
        self.frame_count, self.fps, self.path = n, Fraction(25), "tape.mov"
        self.bit_depth, self.metadata = 8, {"color": {"colorspace": 2}}
        self._frames = [(np.arange(height, dtype=np.uint8)[:, None, None] + 10 * k).repeat(4, 1).repeat(3, 2)
                        for k in range(n)]

    def decoded_frames(self, start=0, stop=None):
        for frame in self._frames[start:stop]:
            yield av.VideoFrame.from_ndarray(frame, format="rgb24")


class Recorder:
    def __init__(self):
        self.written = []

    def write(self, frame, matte=None):
        self.written.append((frame, matte))


class Stored:
    """A stand-in VideoSource holding the given RGB frames (uint8 or uint16)."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self.frame_count, self.fps, self.path, self._frames = len(frames), Fraction(25), "tape.mov", frames
        self.bit_depth, self.metadata = 8 * frames[0].itemsize, {"color": {"colorspace": 2}}

    def decoded_frames(self, start=0, stop=None):
        for frame in self._frames[start:stop]:
            yield av.VideoFrame.from_ndarray(frame, format="rgb24" if frame.dtype == np.uint8 else "rgb48le")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("height", [8, 7])
def test_weaving_the_two_field_pictures_gives_the_frame_back_exactly(dtype, height):
    frames = [(np.random.default_rng(height + k).random((height, 5, 3)) * 200 * (1 if dtype == np.uint8 else 257))
              .astype(dtype) for k in range(3)]
    for first in (0, 1):
        writer = Recorder()
        weaver = FieldWeaver(writer, first)
        for picture in FieldSource(Stored(frames), first).frames():
            weaver.write(picture)
        assert len(writer.written) == 3 and all(matte is None for _, matte in writer.written)
        assert all(woven.dtype == dtype and np.array_equal(woven, frame) for (woven, _), frame in zip(writer.written, frames))


def test_field_source_shows_each_frame_as_its_two_fields_in_display_order():
    src = FieldSource(Frames(3), first=1)  # bottom field first
    assert (src.frame_count, src.fps, src.path) == (6, Fraction(50), "tape.mov")
    pictures = list(src.frames())
    assert len(pictures) == 6
    assert pictures[0][1, 0, 0] == 1 and pictures[1][0, 0, 0] == 0  # frame 0: its odd rows, then its even
    assert pictures[4][3, 0, 0] == 23 and pictures[5][2, 0, 0] == 22
    middle = list(src.frames(1, 4))  # a range starting and ending mid-frame
    assert len(middle) == 3 and all(np.array_equal(a, b) for a, b in zip(middle, pictures[1:4]))


def test_the_weaver_takes_each_mattes_own_field_rows():
    writer = Recorder()
    weaver = FieldWeaver(writer, 0)
    picture = np.zeros((4, 2, 3), np.uint8)
    weaver.write(picture, None)
    weaver.write(picture + 9, np.ones((4, 2), np.float32))
    frame, matte = writer.written[0]
    assert frame[:, 0, 0].tolist() == [0, 9, 0, 9] and matte[:, 0].tolist() == [0, 1, 0, 1]


def test_the_field_shown_first_comes_from_the_field_order_tag():
    assert [first_field({"field_order": tag}) for tag in (2, 3, 4, 5)] == [0, 1, 1, 0]  # FFmpeg's TT, BB, TB, BT
    assert first_field({"interlaced": "field order unknown"}) is None and first_field({"field_order": 1}) is None


def _field_rate_clip(tmp_path, pix_fmt: str) -> tuple[Path, list[np.ndarray]]:
    """An interlaced clip in `pix_fmt` woven (top field first) from pictures rendered at the field
    rate: on the left, still stripes 6 rows apart; on the right, a red square moving 7 pixels a field."""
    from dvface_plugin.media import MediaWriter, open_media

    renders = []
    for t in range(8):
        picture = np.full((64, 96, 3), 128, np.uint8)
        picture[:, :32] = (128 + 60 * np.cos(np.arange(64) * np.pi / 3)).round()[:, None, None]  # still detail
        picture[26:38, 34 + 7 * t:44 + 7 * t] = (220, 40, 40)
        renders.append(picture)
    blank = tmp_path / "blank.mkv"  # a source in `pix_fmt` for the writer to take its format from
    with av.open(str(blank), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 64, pix_fmt
        for _ in range(4):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((64, 96, 3), np.uint8), format="rgb24")))
        container.mux(stream.encode())
    path = tmp_path / "tape.mkv"
    with open_media(blank) as source, MediaWriter(path, fps=25, width=96, height=64, planes_from=source,
                                                  bit_depth=source.source_bits, woven_fields=True) as writer:
        for k in range(4):
            woven = renders[2 * k].copy()
            woven[1::2] = renders[2 * k + 1][1::2]
            writer.write(woven if pix_fmt == "yuv420p" else woven.astype(np.uint16) * 257, np.ones((64, 96), np.float32))
    return path, renders


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le"])
def test_a_field_picture_keeps_still_detail_and_shows_nothing_of_the_other_fields_moment(tmp_path, pix_fmt):
    """Where nothing moves a field picture has both fields' lines (line doubling would halve the
    stripes' contrast), at the clip's ends too; where the square moves, no sample shows where it
    was a field earlier or later (4:2:0 chroma is stored per field: read over the frame, these
    rows turned red); pictures read from mid-clip are those of the whole clip."""
    import cv2

    from dvface_plugin.media import open_media

    path, renders = _field_rate_clip(tmp_path, pix_fmt)
    with open_media(path) as src:
        pictures = [p.astype(float) / np.iinfo(p.dtype).max * 255 for p in FieldSource(src, first=0).frames()]
        for start, stop in ((0, 3), (3, 6), (5, 8)):
            again = FieldSource(src, first=0).frames(start, stop)
            assert all(np.array_equal(a, b.astype(float) / np.iinfo(b.dtype).max * 255)
                       for a, b in zip(pictures[start:stop], again, strict=True))
    assert len(pictures) == 8
    for t, (picture, render) in enumerate(zip(pictures, renders)):
        assert np.abs(picture[2:-2, 2:30] - render[2:-2, 2:30]).max() <= 2  # the stripes
        square = render[..., 0] > 200
        near = cv2.dilate(square.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0  # 4:2:0 blurs its edge
        elsewhere = np.any([renders[u][..., 0] > 200 for u in (t - 1, t + 1) if 0 <= u < 8], axis=0) & ~near
        assert elsewhere.sum() >= 48 and np.abs(picture[elsewhere] - 128).max() <= 2  # grey there, not red
        inner = cv2.erode(square.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert inner.sum() >= 48 and picture[inner].mean(0)[0] > 190  # and red where it is
