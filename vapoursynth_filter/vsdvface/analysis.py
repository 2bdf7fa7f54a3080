"""The analysis pass for a clip: run once per clip content and settings, then reused.

Detection, tracking and smoothing must see the frames in order, so the filter runs them over the
whole clip when `restore()` is called, before any frame is requested: inside a frame callback the
only way to read other frames would be a synchronous `get_frame`, which can deadlock the core.
The result is keyed by `frames_digest` of the 8-bit frames the detector sees plus every analysis
setting, kept in the process and in the tracks cache folder that `dvface restore/track` use, so
re-evaluating a script (previewers do on every edit, e.g. of `strength`) or the next `vspipe`
run costs one decode and hash of the clip instead of a detection pass.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from dvface_plugin.errors import InputError
from dvface_plugin.paths import user_cache_dir
from dvface_plugin.faces import (CenterFaceDetector, FaceDetector, TrackingSettings, Tracks, analysis_settings,
                                 analyze, frames_digest)
from dvface_plugin.faces.detector import default_providers

_MEMO: OrderedDict[str, Tracks] = OrderedDict()
_MEMO_SIZE = 16
_LOCK = threading.Lock()
_DETECTORS: dict[tuple[str, ...], CenterFaceDetector] = {}


def detector() -> CenterFaceDetector:
    """One CenterFace session per provider list for the process (onnxruntime sessions may be shared)."""
    providers = default_providers()
    key = tuple(providers)
    with _LOCK:
        if key not in _DETECTORS:
            _DETECTORS[key] = CenterFaceDetector(providers=providers)
        return _DETECTORS[key]


def cache_dir() -> Path:
    """The tracks cache shared with `dvface restore` and `dvface track`."""
    return user_cache_dir("tracks")


def analyse_clip(
    frames: Callable[[], Iterable[np.ndarray]],
    frame_count: int,
    fps: float,
    det: FaceDetector,
    crop_size: int,
    *,
    pixel_aspect: float = 1.0,
    disk_cache: bool = True,
) -> Tracks:
    """Tracks of the clip whose frames `frames()` yields in order (called once, twice on a miss)."""
    tracking = TrackingSettings.for_clip(frame_count)
    settings = analysis_settings(det, tracking, crop_size=crop_size, pixel_aspect=pixel_aspect)
    digest = frames_digest(frames())
    key = hashlib.sha256(json.dumps([digest, settings, float(fps)], sort_keys=True).encode()).hexdigest()
    with _LOCK:
        if key in _MEMO:
            _MEMO.move_to_end(key)
            return _MEMO[key]
    path = cache_dir() / f"vs-{key[:32]}.json"
    tracks = _load_cached(path, digest, settings, fps) if disk_cache else None
    if tracks is None:
        tracks = analyze(frames(), fps, detector=det, tracking=tracking, crop_size=crop_size,
                         pixel_aspect=pixel_aspect)
        if disk_cache:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tracks.save(path)
            except OSError:
                pass  # a read-only cache folder only costs the next run a detection pass
    with _LOCK:
        _MEMO[key] = tracks
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
    return tracks


def _load_cached(path: Path, digest: str, settings: dict, fps: float) -> Tracks | None:
    if not path.is_file():
        return None
    try:
        tracks = Tracks.load(path)
    except InputError:
        return None
    return tracks if tracks.is_for(digest, settings) and tracks.fps == float(fps) else None


def load_tracks_file(path: str | os.PathLike, width: int, height: int, frame_count: int) -> Tracks:
    """A tracks file (`dvface track`, or hand-edited), checked against the clip's size and length.

    Its digest is not compared: files come from other decoders and formats of the same shot. What
    is checked is what would make the boxes meaningless.
    """
    tracks = Tracks.load(path)
    if (tracks.width, tracks.height, tracks.frame_count) != (width, height, frame_count):
        raise InputError(
            f"{path} was made for a {tracks.width}x{tracks.height} clip of {tracks.frame_count} frames, this clip "
            f"is {width}x{height} with {frame_count}; run `dvface track` on this clip's source or pass tracks=None"
        )
    return tracks
