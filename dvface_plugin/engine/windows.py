"""The fixed window grid of a clip and the cross-fade weights of overlapping windows.

Which windows exist, which frames each covers and how much each contributes to a frame depend
only on (n_frames, window, overlap, quantum), never on which frame a host asked for first: that
is what makes frame n the same whatever the access order, and a farm split equal to a whole-clip
render.

Windows start every `window - overlap` frames. The window that would run past the clip end is
instead anchored to end on the last frame, its length rounded up to `quantum*k + 1` frames (the
VAE's temporal stride) so the model never pads in time; it then overlaps its neighbour by up to
`quantum - 1` more frames than the others. Every frame is covered by one or two windows.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Window:
    index: int
    start: int  # first frame (clip index, 0-based)
    stop: int  # one past the last frame

    @property
    def length(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class WindowGrid:
    n_frames: int
    window: int
    overlap: int
    quantum: int = 1

    def __post_init__(self) -> None:
        if self.n_frames < 1:
            raise ValueError(f"a clip needs at least one frame, got n_frames={self.n_frames}")
        if self.quantum < 1 or (self.window - 1) % self.quantum:
            raise ValueError(f"window must be {self.quantum}k+1 frames, got {self.window}")
        if self.overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {self.overlap}")
        # Needed so that no frame is covered by three windows, even after the end anchoring.
        if self.window < 1:
            raise ValueError(f"window must be at least one frame, got {self.window}")
        if self.window - 2 * self.overlap < self.quantum - 1:
            raise ValueError(
                f"overlap {self.overlap} is too large for window {self.window}: "
                f"use overlap <= {(self.window - self.quantum + 1) // 2}"
            )

    @property
    def stride(self) -> int:
        return self.window - self.overlap

    @cached_property
    def windows(self) -> tuple[Window, ...]:
        n, w, s = self.n_frames, self.window, self.stride
        if n <= w:
            return (Window(0, 0, n),)
        starts = []
        start = 0
        while start + w < n:
            starts.append(start)
            start += s
        tail = n - start  # > overlap, <= window
        tail = min(w, -(-(tail - 1) // self.quantum) * self.quantum + 1)
        starts.append(n - tail)
        return tuple(Window(i, a, min(a + w, n)) for i, a in enumerate(starts))

    @cached_property
    def _starts(self) -> list[int]:
        return [win.start for win in self.windows]

    def covering(self, frame: int) -> tuple[Window, ...]:
        """The windows that contribute to `frame`, in ascending order."""
        if not 0 <= frame < self.n_frames:
            raise IndexError(f"frame {frame} is outside the clip [0, {self.n_frames})")
        last = bisect.bisect_right(self._starts, frame) - 1
        found = [self.windows[last]]
        if last > 0 and self.windows[last - 1].stop > frame:
            found.insert(0, self.windows[last - 1])
        return tuple(found)

    def windows_for(self, start: int, stop: int) -> tuple[Window, ...]:
        """All windows contributing to frames [start, stop), ascending."""
        if not 0 <= start < stop <= self.n_frames:
            raise IndexError(f"frame range [{start}, {stop}) is outside the clip [0, {self.n_frames})")
        first = self.covering(start)[0].index
        last = self.covering(stop - 1)[-1].index
        return self.windows[first : last + 1]

    def input_span(self, start: int, stop: int) -> tuple[int, int]:
        """Input frames a host must provide to render output frames [start, stop)."""
        wins = self.windows_for(start, stop)
        return wins[0].start, wins[-1].stop

    def weights(self, index: int) -> np.ndarray:
        """Cross-fade weights (float64, one per frame of window `index`).

        Linear ramps over each overlap; the two windows sharing a frame have weights summing
        to one, so no normalisation (and no order-dependent division) is needed.
        """
        wins = self.windows
        win = wins[index]
        pos = np.arange(win.length, dtype=np.float64)
        weights = np.ones(win.length, dtype=np.float64)
        if index > 0:
            ov = wins[index - 1].stop - win.start
            weights = np.minimum(weights, (pos + 1) / (ov + 1))
        if index + 1 < len(wins):
            ov = win.stop - wins[index + 1].start
            weights = np.minimum(weights, (win.length - pos) / (ov + 1))
        return weights
