"""Synthetic Cineon scans for the tests, written byte by byte from Kodak's layout."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

LABEL = b"KODAK 5219 scan, reel 3"  # the header's label field: a restored file must keep it


def cineon_scan(path: Path, codes: np.ndarray, order: str = ">", channels: int = 3, packing: int = 5) -> Path:
    """One Cineon file of the (H, W, 3) 10-bit RGB `codes`: a 1024-byte header, then one 32-bit
    word per pixel (red in bits 31..22), in byte order `order` ('>' or '<')."""
    h, w = codes.shape[:2]
    head = bytearray(1024)
    head[0:4] = b"\x80\x2a\x5f\xd7" if order == ">" else b"\xd7\x5f\x2a\x80"
    struct.pack_into(order + "IIIII", head, 4, 1024, 1024, 0, 0, 1024 + 4 * w * h)
    head[24:28] = b"V4.5"
    head[193] = channels
    for c in range(channels):
        at = 196 + 28 * c
        head[at + 1], head[at + 2] = c + 1, 10
        struct.pack_into(order + "IIffff", head, at + 4, w, h, 0.0, 0.0, 1023.0, 2.048)
    head[452:452 + len(LABEL)] = LABEL
    head[681] = packing
    struct.pack_into(order + "f", head, 1024 - 4 - 40, 0.6)  # gamma, in the origination header
    codes = codes.astype(np.uint32)
    words = (codes[..., 0] << 22) | (codes[..., 1] << 12) | (codes[..., 2] << 2)
    path.write_bytes(bytes(head) + words.astype(order + "u4").tobytes())
    return path
