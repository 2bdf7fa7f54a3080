"""`--frames` ranges and the timecode of a range's first frame."""

from __future__ import annotations

from fractions import Fraction

import pytest

from dvface_plugin.errors import InputError
from dvface_plugin.media.trim import advance_timecode, parse_frame_range

NTSC = Fraction(30000, 1001)


@pytest.mark.parametrize(("text", "first", "expect"), [
    ("0-9", 0, (0, 10)), ("5-", 0, (5, 100)), ("99-99", 0, (99, 100)), (" 1001 - 1010 ", 1001, (0, 10)),
    ("1050-", 1001, (49, 100)),
])
def test_ranges_become_indices(text, first, expect):
    assert parse_frame_range(text, 100, first) == expect


@pytest.mark.parametrize(("text", "first", "message"), [
    ("", 0, "not a range"), ("3", 0, "not a range"), ("a-b", 0, "not a range"), ("-5", 0, "not a range"),
    ("9-3", 0, "comes after"), ("0-100", 0, "frames are 0-99"), ("1000-1005", 1001, "frames are 1001-1100"),
])
def test_bad_ranges_name_the_problem_and_the_clip(text, first, message):
    with pytest.raises(InputError, match=message):
        parse_frame_range(text, 100, first)


@pytest.mark.parametrize(("timecode", "frames", "fps", "expect"), [
    ("01:00:00:00", 25, Fraction(25), "01:00:01:00"),
    ("00:59:59:23", 1, Fraction(24000, 1001), "01:00:00:00"),  # nominal 24 at 23.976
    ("23:59:59:24", 1, Fraction(25), "00:00:00:00"),
    ("00:00:59;29", 1, NTSC, "00:01:00;02"),  # drop frame skips ;00 and ;01 ...
    ("00:09:59;29", 1, NTSC, "00:10:00;00"),  # ... except every tenth minute
    ("00:00:00;00", 17982, NTSC, "00:10:00;00"),
    ("01:00:00;00", 1800, Fraction(60000, 1001), "01:00:30;00"),
    ("not a timecode", 5, Fraction(25), "not a timecode"),
])
def test_timecodes_advance_like_a_deck(timecode, frames, fps, expect):
    assert advance_timecode(timecode, frames, fps) == expect


def test_drop_frame_counts_match_a_frame_by_frame_walk():
    """Every label from 00:00:00;00 is the previous one's successor, never a skipped ;00/;01."""
    label, seen = "00:00:00;00", set()
    for n in range(1, 20000):
        nxt = advance_timecode("00:00:00;00", n, NTSC)
        assert nxt == advance_timecode(label, 1, NTSC) and nxt not in seen
        h, m, s, f = (int(x) for x in nxt.replace(";", ":").split(":"))
        assert not (s == 0 and f < 2 and m % 10)
        seen.add(nxt)
        label = nxt
