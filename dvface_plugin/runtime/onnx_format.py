"""What an ONNX export folder holds, shared by the exporter and the onnxruntime model."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

FORMAT = "dvface-onnx"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
ENCODE_GRAPH = "encode_priors.onnx"
RESTORE_GRAPH = "restore.onnx"
SHARED_DATA = "weights.onnx.data"  # every graph's weights, each tensor once (see onnx_export.share_external_data)


def short_graphs(frames: int) -> tuple[str, str]:
    """File names of the (encode, restore) graphs for windows of `frames` frames, shorter than the
    export's own: a short clip runs on those instead of being padded to a whole window."""
    return f"encode_priors_t{frames}.onnx", f"restore_t{frames}.onnx"
_SHA_MEMO: dict[tuple, str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered per (path, inode, size, times) in this process: a 1.3B model's weights
    take seconds to hash, and `ensure_onnx` followed by `OrtModel` would otherwise hash them twice."""
    stat = os.stat(path)
    key = (str(Path(path).resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    if key not in _SHA_MEMO:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        _SHA_MEMO[key] = h.hexdigest()
    return _SHA_MEMO[key]
