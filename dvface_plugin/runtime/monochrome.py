"""Black-and-white in, black-and-white out: a restored face keeps its input's colour where the
input has next to none.

The model restores colour faces; on a black-and-white or toned (sepia, a colour cast) film frame
it adds faint colour of its own, lips and lids a few levels pink or blue (on the bundled model the
colour of black-and-white faces spread 1.3x to 3x the input's; docs/benchmarks.md "Black-and-white
faces"). Where a frame's input colour hardly varies over the crop, its restoration keeps the
restored luma and takes the input's colour pixel for pixel, so a grey film stays grey and a toned
one keeps its tone. Colour footage (9 levels of spread and more on every benchmark clip) keeps the
model's colour; between the two limits the two are mixed, so a frame near the line cannot switch.
"""

from __future__ import annotations

import numpy as np

LUMA = np.float32([0.299, 0.587, 0.114])  # BT.601 luma weights
MONO_LEVELS = (2.0, 4.0)  # colour spread (8-bit levels) at or under which a frame is monochrome, and from which it is colour
_LEVEL = np.float32(2.0 / 255.0)  # one 8-bit level in model units ([-1, 1])


def colour_of(pixels: np.ndarray) -> np.ndarray:
    """(..., 3) RGB minus its luma: what a frame has beyond black and white (0 on grey)."""
    return pixels - (pixels @ LUMA)[..., None]


def colour_spread(colour: np.ndarray) -> np.ndarray:
    """(T,) per frame of a (T, H, W, 3) `colour_of`: the larger standard deviation of R - Y and
    B - Y over the frame, in the colour's own units (near 0 on grey and on toned film alike)."""
    return np.maximum(colour[..., 0].std(axis=(1, 2)), colour[..., 2].std(axis=(1, 2)))


def monochrome_weight(colour: np.ndarray) -> np.ndarray:
    """(T,) float32 per frame of a window's `colour_of` in model units: 1 where the input is
    monochrome (`colour_spread` at most `MONO_LEVELS[0]` 8-bit levels), 0 where it is colour (from
    `MONO_LEVELS[1]`), linear between."""
    spread = colour_spread(colour) / _LEVEL
    low, high = MONO_LEVELS
    return np.clip((high - spread) / (high - low), 0.0, 1.0).astype(np.float32)


def keep_input_colour(restored: np.ndarray, colour: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The restored window with its own colour replaced, frame by frame in proportion to `weight`
    (T,), by `colour`: the input's `colour_of`, already multiplied by that weight."""
    mix = weight[:, None, None, None]
    return np.clip(restored - mix * colour_of(restored) + colour.astype(np.float32), -1.0, 1.0)
