"""Part of a clip: the frame range a user names (`--frames A-B`) and the timecode its first frame has.

Frames are named as the host names them: a video's from 0, an image sequence's by its own
numbers (shot_1001.exr is frame 1001), so a range read off a timeline or a file name works as is.
"""

from __future__ import annotations

import re
from fractions import Fraction

from ..errors import InputError

_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d*)\s*$")
_TIMECODE = re.compile(r"^(\d+):(\d\d):(\d\d)([:;.,])(\d\d)$")


def parse_frame_range(text: str, n_frames: int, first_number: int = 0) -> tuple[int, int]:
    """Frames "A-B" (inclusive) or "A-" (to the end) as indices [start, stop) into the clip.

    `first_number` is the name of the clip's first frame (0 for a video, an image sequence's
    first file number).
    """
    match = _RANGE.match(text or "")
    if match is None:
        raise InputError(f"--frames {text!r} is not a range; write FIRST-LAST such as 100-148, or FIRST- for "
                         "the rest of the clip")
    last_number = first_number + n_frames - 1
    a = int(match.group(1))
    b = int(match.group(2)) if match.group(2) else last_number
    if a > b:
        raise InputError(f"--frames {text}: the first frame comes after the last; write FIRST-LAST")
    if a < first_number or b > last_number:
        raise InputError(f"--frames {text} is outside the clip, whose frames are {first_number}-{last_number}")
    return a - first_number, b - first_number + 1


def advance_timecode(timecode: str, frames: int, fps: Fraction) -> str:
    """The SMPTE timecode `frames` frames after `timecode` (drop-frame when written with ';').

    A timecode this does not recognise is returned unchanged rather than guessed at.
    """
    match = _TIMECODE.match(str(timecode).strip())
    if match is None or fps <= 0 or frames == 0:
        return timecode
    hours, minutes, seconds, separator, frame = match.groups()
    base = round(fps)  # timecode counts nominal frames: 30 at 30000/1001
    drop = separator in ";," and base % 30 == 0
    skipped = 2 * base // 30 if drop else 0  # frame numbers skipped each minute but every tenth
    total_minutes = 60 * int(hours) + int(minutes)
    count = (total_minutes * 60 + int(seconds)) * base + int(frame)
    count -= skipped * (total_minutes - total_minutes // 10)
    count += frames
    if drop:  # back from a frame count to a label: re-insert the skipped numbers
        per_ten = 10 * 60 * base - 9 * skipped
        tens, rest = divmod(count, per_ten)
        count += 9 * skipped * tens + (skipped * ((rest - skipped) // (60 * base - skipped)) if rest >= skipped
                                       else 0)
    frame_label = count % base
    total_seconds = count // base
    label_hours = total_seconds // 3600 % 24
    return (f"{label_hours:02d}:{total_seconds // 60 % 60:02d}:{total_seconds % 60:02d}"
            f"{separator}{frame_label:02d}")
