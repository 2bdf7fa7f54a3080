"""Where dvface keeps what it can rebuild (tracks analyses, ONNX exports, TensorRT engines)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def user_cache_dir(kind: str) -> Path:
    """`$DVFACE_CACHE_DIR/<kind>`, else the platform's user cache folder + `dvface/<kind>`."""
    if os.environ.get("DVFACE_CACHE_DIR"):
        return Path(os.environ["DVFACE_CACHE_DIR"]).expanduser() / kind
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "dvface" / kind
