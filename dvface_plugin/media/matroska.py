"""Record a non-square pixel aspect in a finished Matroska file.

FFmpeg's Matroska muxer takes the display size from the stream's aspect ratio, which PyAV cannot
set, so an FFV1 file (whose bitstream carries no aspect ratio a player reads) would play squeezed.
This edits the video track's header in place, as FFmpeg itself writes it for such a stream
(DisplayWidth:DisplayHeight = the display aspect ratio, DisplayUnit 3). The header grows by a few
bytes, taken from the Void the muxer reserves after the SeekHead, so only the first kilobytes are
rewritten and no cluster or cue moves.
"""

from __future__ import annotations

import zlib
from fractions import Fraction
from pathlib import Path

from ..errors import DVFaceError

_SEGMENT, _SEEK_HEAD, _SEEK, _SEEK_ID, _SEEK_POSITION = 0x18538067, 0x114D9B74, 0x4DBB, 0x53AB, 0x53AC
_TRACKS, _TRACK_ENTRY, _TRACK_TYPE, _VIDEO = 0x1654AE6B, 0xAE, 0x83, 0xE0
_DISPLAY_WIDTH, _DISPLAY_HEIGHT, _DISPLAY_UNIT = 0x54B0, 0x54BA, 0x54B2
_VOID, _CRC32 = 0xEC, 0xBF
_DISPLAY_UNIT_DAR = 3
_VIDEO_TRACK = 1


class _Element:
    """One EBML element of `data`: its ID, where it starts, header length and payload size."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.id, id_len = _vint(data, pos, keep_marker=True)
        self.size, self.size_len = _vint(data, pos + id_len)
        self.start = pos
        self.data_start = pos + id_len + self.size_len
        self.end = self.data_start + self.size
        self.id_bytes = data[pos:pos + id_len]


def _vint(data: bytes, pos: int, keep_marker: bool = False) -> tuple[int, int]:
    first = data[pos]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > 8 or pos + length > len(data):
        raise ValueError("bad EBML number")
    value = first if keep_marker else first & (0xFF >> length)
    for b in data[pos + 1:pos + length]:
        value = (value << 8) | b
    return value, length


def _size_bytes(value: int, length: int) -> bytes:
    """An EBML size in exactly `length` bytes (the length the muxer chose, so nothing else moves)."""
    if value >= (1 << (7 * length)) - 1:
        raise ValueError("element grew past its size field")
    return ((1 << (7 * length)) | value).to_bytes(length, "big")


def _uint_element(element_id: bytes, value: int, length: int | None = None) -> bytes:
    length = length or max(1, (value.bit_length() + 7) // 8)
    return element_id + _size_bytes(length, 1) + value.to_bytes(length, "big")


def _children(data: bytes, parent: _Element) -> list[_Element]:
    out, pos = [], parent.data_start
    while pos < parent.end:
        child = _Element(data, pos)
        out.append(child)
        pos = child.end
    if pos != parent.end:
        raise ValueError("children overrun their parent")
    return out


def _rebuild(data: bytes, parent: _Element, parts: list[bytes]) -> bytes:
    """`parent` with these children, its size field as long as before, its CRC-32 recomputed."""
    body = b"".join(parts)
    children = _children(data, parent)
    if children and children[0].id == _CRC32:  # the first child when present; covers all the rest
        crc = zlib.crc32(b"".join(parts[1:])).to_bytes(4, "little")
        body = parts[0][:len(parts[0]) - 4] + crc + body[len(parts[0]):]
    return parent.id_bytes + _size_bytes(len(body), parent.size_len) + body


def _uint(data: bytes, element: _Element) -> int:
    return int.from_bytes(data[element.data_start:element.end], "big")


def _video_track_tracks(data: bytes, tracks: _Element, width: int, height: int, sar: Fraction) -> bytes:
    dar = Fraction(width * sar.numerator, height * sar.denominator)
    parts, found = [], False
    for entry in _children(data, tracks):
        entry_children = _children(data, entry) if entry.id == _TRACK_ENTRY else []
        is_video = any(c.id == _TRACK_TYPE and _uint(data, c) == _VIDEO_TRACK for c in entry_children)
        if not is_video or found:
            parts.append(data[entry.start:entry.end])
            continue
        found = True
        entry_parts = []
        for child in entry_children:
            if child.id != _VIDEO:
                entry_parts.append(data[child.start:child.end])
                continue
            kept = [data[c.start:c.end] for c in _children(data, child)
                    if c.id not in (_DISPLAY_WIDTH, _DISPLAY_HEIGHT, _DISPLAY_UNIT)]
            kept += [_uint_element(_DISPLAY_WIDTH.to_bytes(2, "big"), dar.numerator),
                     _uint_element(_DISPLAY_HEIGHT.to_bytes(2, "big"), dar.denominator),
                     _uint_element(_DISPLAY_UNIT.to_bytes(2, "big"), _DISPLAY_UNIT_DAR)]
            entry_parts.append(_rebuild(data, child, kept))
        parts.append(_rebuild(data, entry, entry_parts))
    if not found:
        raise ValueError("no video track")
    return _rebuild(data, tracks, parts)


def _patched_head(data: bytes, width: int, height: int, sar: Fraction) -> tuple[int, bytes]:
    """(offset, bytes) replacing the file from the reserved Void to the end of Tracks."""
    header = _Element(data, 0)
    segment = _Element(data, header.end)
    if segment.id != _SEGMENT:
        raise ValueError("no Segment")
    seek_head = void = tracks = None
    pos = segment.data_start
    while tracks is None:
        element = _Element(data, pos)
        if element.id == _SEEK_HEAD and seek_head is None:
            seek_head = element
        elif element.id == _VOID and seek_head is not None:
            void = element
        elif element.id == _TRACKS:
            tracks = element
        pos = element.end
    if seek_head is None or void is None or void.start < seek_head.end:
        raise ValueError("no reserved space after the SeekHead")
    new_tracks = _video_track_tracks(data, tracks, width, height, sar)
    grow = len(new_tracks) - (tracks.end - tracks.start)
    void_len = void.end - void.start - grow
    if void_len < 1 + void.size_len:
        raise ValueError("reserved space too small")
    new_void = bytes([_VOID]) + _size_bytes(void_len - 1 - void.size_len, void.size_len)
    new_void += bytes(void_len - len(new_void))
    # Everything between the Void and Tracks (Info, Tags...) moves `grow` bytes towards the front.
    seek_parts = []
    for child in _children(data, seek_head):
        if child.id != _SEEK:
            seek_parts.append(data[child.start:child.end])
            continue
        seek_children = _children(data, child)
        position = next(c for c in seek_children if c.id == _SEEK_POSITION)
        value = _uint(data, position)
        if void.end <= segment.data_start + value <= tracks.start:
            value -= grow
        parts = [data[c.start:c.end] if c is not position
                 else c.id_bytes + _size_bytes(c.size, c.size_len) + value.to_bytes(c.size, "big")
                 for c in seek_children]
        seek_parts.append(_rebuild(data, child, parts))
    new_seek_head = _rebuild(data, seek_head, seek_parts)
    if len(new_seek_head) != seek_head.end - seek_head.start or seek_head.end != void.start:
        raise ValueError("unexpected SeekHead layout")
    return seek_head.start, new_seek_head + new_void + data[void.end:tracks.start] + new_tracks


def set_display_aspect(path: str | Path, width: int, height: int, sar: Fraction) -> None:
    """Make the Matroska file at `path` (FFmpeg-written, one video track of `width` x `height`)
    display its pixels `sar` wide: its header is edited in place, its frames are not touched."""
    path = Path(path)
    with open(path, "r+b") as fh:
        data = fh.read(1 << 20)  # header, SeekHead, Info and Tracks sit in the first kilobytes
        try:
            offset, head = _patched_head(data, width, height, sar)
        except (ValueError, IndexError, StopIteration) as exc:
            raise DVFaceError(f"cannot record the {sar.numerator}:{sar.denominator} pixel aspect in "
                              f"{path.name} ({exc}); write .mov or .mp4 instead, which keep it") from None
        fh.seek(offset)
        fh.write(head)
