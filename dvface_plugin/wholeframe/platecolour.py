"""Plates in a colour space of their own (`restore --colorspace`, e.g. an ACEScg EXR sequence).

Face analysis and the model see the model's display sRGB (`colour.to_display`); the writer gets
the plate back with only the restorer's change carried into it (`colour.from_display`), so every
sample outside the face mattes is the decoded plate's own value, above 1 and below 0 included.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ..colour import ColourSettings, from_display, to_display
from ..errors import InputError

if TYPE_CHECKING:  # the media package loads PyAV: not for `--help`, which registers these arguments
    from ..media import MediaSource, MediaWriter


def add_arguments(parser: argparse._ActionsContainer) -> None:
    """--colorspace and --ocio, for every command that reads a plate (restore, track, report, batch)."""
    parser.add_argument("--colorspace", default=None, metavar="NAME",
                        help="IN's colour space in the OCIO config (e.g. ACEScg for a scene-linear EXR plate): faces "
                             "are found and restored in the model's sRGB and only their change goes back, so every "
                             "pixel outside the faces keeps its value (default: IN is display sRGB, as video is)")
    parser.add_argument("--ocio", default=None, metavar="CONFIG",
                        help="OCIO config file or built-in URI for --colorspace (default $OCIO, else "
                             "ocio://studio-config-latest, the ACES studio config inside OpenColorIO)")


def settings(args: argparse.Namespace) -> ColourSettings | None:
    """The plate's colour from parsed arguments (validated now, before any decoding); None: display sRGB."""
    return plate_colour(args.colorspace, args.ocio)


def plate_colour(colorspace: str | None, ocio: str | None) -> ColourSettings | None:
    """The plate's colour from a --colorspace and --ocio pair (as a batch job's settings keep them)."""
    if colorspace is None:
        if ocio is not None:
            raise InputError("--ocio names the config of --colorspace; give IN's colour space with --colorspace NAME")
        return None
    return ColourSettings(colorspace=colorspace, ocio=ocio or "", unpremultiply=False)


def viewed(src: MediaSource, colour: ColourSettings | None) -> MediaSource:
    """`src` as the model sees it: itself, or its display sRGB view."""
    return src if colour is None else DisplaySource(src, colour)


def _float(plate: np.ndarray) -> np.ndarray:
    from ..media.pixels import FLOAT_DTYPE, rgb_to_dtype

    return rgb_to_dtype(plate, FLOAT_DTYPE)


def _display(plate: np.ndarray, colour: ColourSettings) -> np.ndarray:
    return to_display(_float(plate), None, colour)


class DisplaySource:
    """`src` as the model sees it, for the face analysis and the report: same frames, display sRGB."""

    def __init__(self, src: MediaSource, colour: ColourSettings) -> None:
        self._src, self.colour = src, colour

    def __getattr__(self, name: str) -> Any:
        return getattr(self._src, name)

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        for plate in self._src.frames(start, stop):
            yield _display(plate, self.colour)

    def read(self, n: int) -> np.ndarray:
        return _display(self._src.read(n), self.colour)


class PlateRoundTrip:
    """Feeds the compositor display frames and hands its writer plates: `frames` then `write`.

    Each plate is held with its display frame (the same array the compositor's look-ahead holds,
    which pasting copies rather than changes) from decoding until its frame is written, or passed:
    a range's warm-up frames are read but not written."""

    def __init__(self, colour: ColourSettings, writer: MediaWriter) -> None:
        self.colour, self.writer = colour, writer
        self._held: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._next = 0

    def frames(self, plates: Iterator[np.ndarray], first: int, start: int) -> Iterator[np.ndarray]:
        """Display frames of `plates` (clip frames first, first + 1, ...); writes begin at `start`."""
        self._next = start
        for n, plate in enumerate(plates, first):
            plate = _float(plate)
            display = to_display(plate, None, self.colour)
            self._held[n] = (plate, display)
            yield display

    def write(self, frame: np.ndarray, matte: np.ndarray | None = None) -> None:
        """The compositor's frame (display sRGB) as the plate: unchanged outside `matte`."""
        n, self._next = self._next, self._next + 1
        for early in [k for k in self._held if k < n]:
            del self._held[early]
        plate, display = self._held.pop(n)
        if matte is not None:
            plate = from_display(plate, None, display, frame, matte, self.colour)
        self.writer.write(plate, matte)
