"""Windowed, order-independent restoration of aligned face tracks (see `session`)."""

from .cache import CacheStats, WindowCache
from .restorer import PriorState, Restorer, load_model
from .session import FaceTrackSession, FrameRangeError, SessionClosedError
from .windows import Window, WindowGrid

__all__ = [
    "CacheStats",
    "FaceTrackSession",
    "FrameRangeError",
    "PriorState",
    "Restorer",
    "SessionClosedError",
    "Window",
    "WindowCache",
    "WindowGrid",
    "load_model",
]
