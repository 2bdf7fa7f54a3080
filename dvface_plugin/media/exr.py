"""A plate's EXR attributes carried to its restored frame.

An EXR plate's header holds more than its pixels: its chromaticities (which primaries its RGB
means), timecode, frame rate, and the camera's and compositing host's own attributes. FFmpeg's
encoder writes none of them (and adds a gamma and a writer of its own), so each restored file is
written again with the attributes of the plate of the same frame; those that describe its own
layout (channels, windows, compression, line order) stay its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_OWN = frozenset({"channels", "compression", "dataWindow", "displayWindow", "lineOrder", "type", "tiles",
                  "chunkCount", "version", "name", "pixelAspectRatio", "screenWindowCenter", "screenWindowWidth"})


def carry_attributes(source: Path, target: Path) -> list[str]:
    """Give the EXR file `target` (as FFmpeg wrote it) the attributes of the EXR plate `source`;
    returns the names of those this OpenEXR cannot write back (left out)."""
    import OpenEXR  # only for EXR plates: the media package loads without it

    with OpenEXR.File(str(source)) as file:
        theirs = {key: value for key, value in file.header().items() if key not in _OWN}
    with OpenEXR.File(str(target), separate_channels=True) as file:
        ours = {key: value for key, value in file.header().items() if key in _OWN}
        channels = {name: np.array(channel.pixels) for name, channel in file.channels().items()}
    unwritable = [key for key, value in theirs.items() if isinstance(value, OpenEXR.OpaqueAttribute)]
    header = {**ours, **{key: value for key, value in theirs.items() if key not in unwritable}}
    with OpenEXR.File(header, channels) as file:
        file.write(str(target))
    return unwritable
