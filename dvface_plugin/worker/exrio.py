"""OpenEXR frames with alpha and extra channels, for the compositing-host round trip.

The media module reads RGB only; a host plate also has alpha, and the worker hands back the face
matte as a named channel (`dvface.matte`, which Nuke shows as layer "dvface", channel "matte"), and
with it `dvface.changed`: 1 exactly where the worker changed the plate (matte > 0), 0 elsewhere, so
a host can take the restored pixels there and its own everywhere else (a Keymix in Nuke).
Files are written to a hidden temporary name in the target folder and renamed into place, so a
reader (or a worker killed mid-frame) never sees a half-written frame.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import OpenEXR

from ..errors import InputError
from ..processes import remove_orphans

MATTE_CHANNEL = "dvface.matte"
CHANGED_CHANNEL = "dvface.changed"
PARTIAL_TAG = ".dvface-partial-"


@dataclass
class ExrFrame:
    rgb: np.ndarray  # float32 HxWx3 over the display window
    alpha: np.ndarray | None  # float32 HxW, None when the file has no A channel
    pixel_aspect: float = 1.0


def read_exr(path: str | Path) -> ExrFrame:
    """R, G, B (and A) as float32 over the display window; outside the data window is 0."""
    path = Path(path)
    try:
        with OpenEXR.File(str(path), separate_channels=True) as f:
            header = f.header()  # only valid while the file is open
            display, data = header["displayWindow"], header["dataWindow"]
            aspect = float(header.get("pixelAspectRatio", 1.0))
            channels = {name: np.array(ch.pixels, dtype=np.float32) for name, ch in f.channels().items()}
    except Exception as exc:  # OpenEXR raises plain RuntimeError/OSError variants
        raise InputError(f"{path}: cannot read as OpenEXR ({exc}); render the input as EXR") from exc
    missing = [c for c in "RGB" if c not in channels]
    if missing:
        raise InputError(f"{path}: no {', '.join(missing)} channel(s); render rgb (or rgba) to the EXR")
    (dx0, dy0), (dx1, dy1) = (np.asarray(v, int) for v in display)
    (wx0, wy0), (wx1, wy1) = (np.asarray(v, int) for v in data)
    height, width = dy1 - dy0 + 1, dx1 - dx0 + 1

    def canvas(plane: np.ndarray) -> np.ndarray:
        if (wx0, wy0, wx1, wy1) == (dx0, dy0, dx1, dy1):
            return plane
        out = np.zeros((height, width), np.float32)
        x0, y0 = max(wx0, dx0), max(wy0, dy0)
        x1, y1 = min(wx1, dx1), min(wy1, dy1)
        if x1 >= x0 and y1 >= y0:
            src = plane[y0 - wy0 : y1 - wy0 + 1, x0 - wx0 : x1 - wx0 + 1]
            out[y0 - dy0 : y1 - dy0 + 1, x0 - dx0 : x1 - dx0 + 1] = src
        return out

    rgb = np.stack([canvas(channels[c]) for c in "RGB"], axis=-1)
    alpha = canvas(channels["A"]) if "A" in channels else None
    return ExrFrame(rgb, alpha, aspect)


def write_exr(path: str | Path, frame: ExrFrame, matte: np.ndarray | None = None) -> None:
    """Float32, lossless ZIP; renamed into place only once complete. A matte comes with its changed mask."""
    path = Path(path)
    channels = {c: np.ascontiguousarray(frame.rgb[..., i], np.float32) for i, c in enumerate("RGB")}
    if frame.alpha is not None:
        channels["A"] = np.ascontiguousarray(frame.alpha, np.float32)
    if matte is not None:
        channels[MATTE_CHANNEL] = np.ascontiguousarray(matte, np.float32)
        channels[CHANGED_CHANNEL] = (np.asarray(matte) > 0).astype(np.float32)  # colour.from_display's rule
    header = {
        "compression": OpenEXR.ZIP_COMPRESSION,
        "type": OpenEXR.scanlineimage,
        "pixelAspectRatio": float(frame.pixel_aspect),
    }
    tmp = path.parent / f".{path.name}{PARTIAL_TAG}{os.getpid()}-{secrets.token_hex(4)}"
    try:
        with OpenEXR.File(header, channels) as f:
            f.write(str(tmp))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_partials(folder: Path) -> int:
    """Delete partial frames left by worker processes that no longer run; returns how many."""
    return remove_orphans(folder.glob(f".*{PARTIAL_TAG}*"), PARTIAL_TAG)


