"""Windowed, order-independent restoration of aligned face tracks (see `session`).

Importing the engine imports no torch: `Restorer` (the torch backend) loads on first use, so the
onnxruntime backend runs where torch is not installed.
"""

from .backends import BACKENDS, PriorState, TrackRestorer, open_restorer, resolve_model_folder
from .cache import CacheStats, WindowCache
from .session import FaceTrackSession, FrameRangeError, SessionClosedError
from .windows import Window, WindowGrid

__all__ = [
    "BACKENDS",
    "CacheStats",
    "FaceTrackSession",
    "FrameRangeError",
    "PriorState",
    "Restorer",
    "SessionClosedError",
    "TrackRestorer",
    "Window",
    "WindowCache",
    "WindowGrid",
    "load_model",
    "open_restorer",
    "resolve_model_folder",
]


def __getattr__(name: str):
    if name in ("Restorer", "load_model"):
        from . import restorer

        return getattr(restorer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
