"""Windowed, order-independent restoration of aligned face tracks (see `session`).

The engine asks a restorer (`dvface_plugin.runtime`) for windows, caches them and cross-fades
them into frames; it imports the runtime and nothing above it, and no torch.
"""

from .cache import CacheStats, WindowCache
from .session import FaceTrackSession, FrameRangeError, SessionClosedError, restore_track
from .windows import Window, WindowGrid

__all__ = [
    "CacheStats",
    "FaceTrackSession",
    "FrameRangeError",
    "SessionClosedError",
    "Window",
    "WindowCache",
    "WindowGrid",
    "restore_track",
]
