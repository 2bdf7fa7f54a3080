"""DVFace video face restoration as a VapourSynth filter: `vsdvface.restore(clip, ...)`."""

from .filter import cache_stats, restore, window_cache

__version__ = "0.1.0"
__all__ = ["cache_stats", "restore", "window_cache"]
