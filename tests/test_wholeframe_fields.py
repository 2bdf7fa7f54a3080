"""Interlaced video as field pictures and back (wholeframe.fields), on synthetic frames."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from dvface_plugin.media import first_field
from dvface_plugin.wholeframe.fields import FieldSource, FieldWeaver, field_picture


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


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("height", [8, 7])
def test_weaving_the_two_field_pictures_gives_the_frame_back_exactly(dtype, height):
    frame = (np.random.default_rng(height).random((height, 5, 3)) * 200).astype(dtype)
    for first in (0, 1):
        writer = Recorder()
        weaver = FieldWeaver(writer, first)
        weaver.write(field_picture(frame[first::2], first, height))
        weaver.write(field_picture(frame[1 - first :: 2], 1 - first, height))
        assert len(writer.written) == 1 and writer.written[0][1] is None
        assert writer.written[0][0].dtype == frame.dtype and np.array_equal(writer.written[0][0], frame)


def test_a_field_picture_keeps_its_rows_and_fills_the_others_from_their_neighbours():
    frame = np.array([0, 100, 20, 100, 40, 100, 60], np.uint8)[:, None, None].repeat(2, 1).repeat(3, 2)
    top = field_picture(frame[0::2], 0, 7)[:, 0, 0]
    assert top.tolist() == [0, 10, 20, 30, 40, 50, 60]  # the 100s were the other field
    bottom = field_picture(np.array([0, 20, 40], np.uint8)[:, None, None], 1, 6)[:, 0, 0]
    assert bottom.tolist() == [0, 0, 10, 20, 30, 40]  # the first row has no own row above it


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


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le"])
def test_each_field_is_read_with_its_own_4_2_0_chroma(tmp_path, pix_fmt):
    """A red top field woven with a blue bottom field, stored as interlaced 4:2:0 stores it (a chroma
    row per field): each field picture must come back red or blue, not half its rows purple."""
    from dvface_plugin.media import MediaWriter, open_media

    woven = np.zeros((32, 32, 3), np.uint8)
    woven[0::2, :, 0] = 200  # top field red
    woven[1::2, :, 2] = 200  # bottom field blue
    blank = tmp_path / "blank.mkv"  # a source in `pix_fmt` for the writer to take its format from
    with av.open(str(blank), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, pix_fmt
        container.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")))
        container.mux(stream.encode())
    path = tmp_path / "tape.mkv"
    with open_media(blank) as source, MediaWriter(path, fps=25, width=32, height=32, planes_from=source,
                                                  bit_depth=source.source_bits, woven_fields=True) as writer:
        writer.write(woven if pix_fmt == "yuv420p" else woven.astype(np.uint16) * 257, np.ones((32, 32), np.float32))
    with open_media(path) as src:
        top, bottom = (picture.astype(float) / np.iinfo(picture.dtype).max * 255
                       for picture in FieldSource(src, first=0).frames())
    for picture, own, other in ((top, 0, 2), (bottom, 2, 0)):
        assert (picture[4:-4, 4:-4, own] > 190).all() and (picture[4:-4, 4:-4, other] < 10).all()
