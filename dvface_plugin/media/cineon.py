"""Cineon scans (.cin): read as 10-bit RGB, written back with the scan's own header.

Kodak's Cineon format predates DPX and holds many film archives' scans; FFmpeg reads neither it
nor writes it. The common form, and the only one read here, is three channels of 10-bit
printing-density codes, each pixel one 32-bit word (red in bits 31..22, green 21..12, blue
11..2: "packing 5"), top row first, in either byte order. A restored frame has the scan's size
and depth, so its file is the scan's header, unchanged, followed by the restored codes packed
the same way: the film information, the transfer (black and white points) and every other field
of the scan stay as they were. Other variants are refused with the way to convert them to DPX.
"""

from __future__ import annotations

import struct
from pathlib import Path

import av
import numpy as np

from ..errors import InputError

_MAGIC = {b"\x80\x2a\x5f\xd7": ">", b"\xd7\x5f\x2a\x80": "<"}
_HEADER = 712  # through the image data format information
_CONVERT = "convert the scans to 10-bit DPX (e.g. `oiiotool scan.####.cin -o scan.####.dpx`) and restore those"


def _layout(head: bytes, path: Path) -> tuple[str, int, int, int]:
    """(byte order, image data offset, width, height) of a Cineon header, or a clear refusal."""
    order = _MAGIC.get(head[:4])
    if order is None or len(head) < _HEADER:
        raise InputError(f"Cannot read image {path}: it is not a Cineon file (no Cineon magic number). "
                         "Is it a valid CIN file?")
    offset = struct.unpack(order + "I", head[4:8])[0]
    orientation, channels = head[192], head[193]
    bits = head[198]
    width, height = struct.unpack(order + "II", head[200:208])
    interleave, packing, signed, sense = head[680:684]
    line_padding = struct.unpack(order + "I", head[684:688])[0]
    found = (channels, bits, packing, interleave, orientation, line_padding, signed, sense)
    if found != (3, 10, 5, 0, 0, 0, 0, 0):
        raise InputError(
            f"{path.name}: only 3-channel 10-bit Cineon scans with one 32-bit word per pixel, top row first, "
            f"are read (this one: {channels} channel(s) of {bits} bits, packing {packing}, interleave "
            f"{interleave}, orientation {orientation}, line padding {line_padding}); {_CONVERT}")
    if offset < _HEADER or width < 1 or height < 1:
        raise InputError(f"Cannot read image {path}: its Cineon header is damaged (image at byte {offset}, "
                         f"{width}x{height}). Is it a valid CIN file?")
    return order, offset, width, height


def decode_cineon(path: Path) -> av.VideoFrame:
    """The scan's picture as a gbrp10le frame of its 10-bit codes."""
    data = path.read_bytes()
    order, offset, width, height = _layout(data[:_HEADER], path)
    if len(data) < offset + 4 * width * height:
        raise InputError(f"Cannot read image {path}: it ends before its {width}x{height} pixels. "
                         "Is it a valid CIN file?")
    words = np.frombuffer(data, order + "u4", count=width * height, offset=offset)
    codes = np.stack([(words >> shift) & 0x3FF for shift in (22, 12, 2)], axis=-1).astype(np.uint16)
    return av.VideoFrame.from_ndarray(codes.reshape(height, width, 3), format="gbrp10le")


def encode_cineon(frame: av.VideoFrame, scan: Path, out: Path) -> None:
    """Write `frame` (the restored picture, any RGB format) to `out` as the Cineon scan `scan` was
    written: its header, then the codes at 10 bits in its byte order."""
    with scan.open("rb") as file:
        head = file.read(_HEADER)
        order, offset, width, height = _layout(head, scan)
        file.seek(0)
        header = file.read(offset)
    if (frame.width, frame.height) != (width, height):
        raise InputError(f"{out.name}: the restored frame is {frame.width}x{frame.height}, its scan "
                         f"{scan.name} {width}x{height}; a Cineon file keeps its scan's size")
    codes = frame.to_ndarray(format="gbrp10le").astype(np.uint32)
    words = (codes[..., 0] << 22) | (codes[..., 1] << 12) | (codes[..., 2] << 2)
    out.write_bytes(header + words.astype(order + "u4").tobytes())
