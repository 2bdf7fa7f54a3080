"""A scan's DPX header carried to its restored frame.

A film scan's DPX header says how to read its code values (transfer: printing density or
logarithmic; the reference black and white codes; colorimetry) and where the frame belongs
(edge code, frame position, timecode, scanner, slate). FFmpeg's encoder writes none of that: its
files end after the image header, marked "unspecified video". So each restored file gets the
film and television headers and the descriptive fields of the scan it was made from (SMPTE 268M
offsets), converted to its own byte order; the fields that describe its own encoding (sizes,
offsets, bit depth, packing) stay the encoder's.
"""

from __future__ import annotations

import struct
from pathlib import Path

_BYTE_ORDER = {b"SDPX": ">", b"XPDS": "<"}
_INDUSTRY_END = 2048  # the film (1664..1920) and television (1920..2048) headers end here
# (start, end, width) of the carried fields; width 1 is text or single bytes, 2 and 4 are numbers.
_CARRIED = (
    (260, 660, 1),     # project name, copyright
    (801, 803, 1),     # image element 1: transfer, colorimetric
    (820, 852, 1),     # its description
    (1408, 1432, 4),   # orientation: offsets, centre, original size
    (1432, 1620, 1),   # source file name, time, input device, serial
    (1620, 1628, 2),   # border validity
    (1628, 1636, 4),   # pixel aspect
    (1664, 1712, 1),   # film: manufacturer, type, offset, prefix, count, format
    (1712, 1732, 4),   # frame position, sequence length, held count, frame rate, shutter angle
    (1732, 1864, 1),   # frame id, slate
    (1920, 1928, 4),   # television: timecode, user bits
    (1928, 1932, 1),   # interlace, field number, video signal standard
    (1932, 1972, 4),   # sample rates, frame rate, time offset, gamma, black and white levels
)
_REFERENCE_CODES = (784, 800, 4)  # reference low/high code values and quantities: only at equal bit depth
_BIT_SIZE = 803


def carry_header(source: Path, target: Path) -> list[str]:
    """Give the DPX file `target` (as FFmpeg wrote it) the header fields of the DPX scan `source`.
    Nothing changes when either is not a DPX file. Returns the fields left out: none."""
    with source.open("rb") as file:
        head = file.read(_INDUSTRY_END)
    data = target.read_bytes()
    theirs, ours = _BYTE_ORDER.get(head[:4]), _BYTE_ORDER.get(data[:4])
    if theirs is None or ours is None or len(head) < _INDUSTRY_END:
        return []
    offset = struct.unpack(ours + "I", data[4:8])[0]
    header, pixels = bytearray(data[:offset].ljust(_INDUSTRY_END, b"\0")), data[offset:]
    fields = _CARRIED + ((_REFERENCE_CODES,) if head[_BIT_SIZE] == header[_BIT_SIZE] else ())
    for start, end, width in fields:
        chunk = head[start:end]
        if width > 1 and theirs != ours:
            chunk = b"".join(chunk[i:i + width][::-1] for i in range(0, len(chunk), width))
        header[start:end] = chunk
    size = max(offset, _INDUSTRY_END)
    for at, value in ((4, size), (16, size + len(pixels)), (28, size - 1664), (808, size)):
        header[at:at + 4] = struct.pack(ours + "I", value)  # image offset, file size, industry size, data offset
    target.write_bytes(bytes(header[:size]) + pixels)
    return []
