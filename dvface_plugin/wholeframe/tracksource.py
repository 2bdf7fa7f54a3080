"""Where a job's face tracks come from: a hand-edited file, the tracks cache, or a fresh analysis.

Detection and tracking are the slow half of the job that does not depend on the model or the
strength, so their result is cached per input and reused when an artist re-renders with other
settings. A cached or hand-edited file is only trusted for the input it was made from: its digest
of the decoded frames is checked against the input before any frame is restored.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..paths import user_cache_dir
from ..faces import (CenterFaceDetector, FaceDetector, TrackingSettings, Tracks, analysis_settings, analyze,
                     frames_digest)
from ..faces.detector import Detection
from ..media import MediaSource, display_geometry
from .stages import StageTimer



@dataclass
class TrackSource:
    tracks: Tracks
    origin: str  # "analysis", "cache" or "file"
    cache_file: Path | None = None


class TimedDetector:
    """A detector whose calls are charged to the `detect` stage; same settings, so same cache key."""

    def __init__(self, detector: FaceDetector, timer: StageTimer) -> None:
        self._detector = detector
        self._timer = timer

    @property
    def settings(self) -> dict[str, Any]:
        return self._detector.settings

    @property
    def preferred_batch(self) -> int:
        return int(getattr(self._detector, "preferred_batch", 1))

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        return self.detect_batch([rgb])[0]

    def detect_batch(self, frames: list[np.ndarray], pixel_aspect: float = 1.0) -> list[list[Detection]]:
        with self._timer.stage("detect"):
            return self._detector.detect_batch(frames, pixel_aspect)


def default_cache_dir() -> Path:
    return user_cache_dir("tracks")


def cache_file(cache_dir: Path, src: MediaSource, settings: dict[str, Any]) -> Path:
    """Lookup name of an input's cached tracks; only a name: the digest inside decides reuse."""
    key = json.dumps(
        [str(Path(src.path).resolve()), src.width, src.height, src.frame_count, settings],
        sort_keys=True,
        default=str,
    )
    return cache_dir / f"{hashlib.blake2b(key.encode(), digest_size=16).hexdigest()}.json"


def input_digest(src: MediaSource, timer: StageTimer) -> tuple[str, int]:
    """frames_digest of the input and its decoded frame count, streaming (one frame in memory)."""
    count = 0

    def counted() -> Iterator[np.ndarray]:
        nonlocal count
        for frame in timer.iterate(src.frames(), "decode"):
            count += 1
            yield frame

    with timer.stage("track"):
        digest = frames_digest(counted())
    return digest, count


def run_analysis(
    src: MediaSource,
    detector: FaceDetector,
    timer: StageTimer,
    crop_size: int,
    progress: Callable[[Iterator[np.ndarray], str], Iterator[np.ndarray]] | None = None,
) -> Tracks:
    """Detect, track and smooth all faces of `src` (one decoding pass)."""
    frames = timer.iterate(src.frames(), "decode")
    if progress is not None:
        frames = progress(frames, "analysing")
    with timer.stage("track"):
        return analyze(
            frames,
            float(src.fps) if src.fps else 24.0,  # a photo has no rate; tracking then has nothing to bridge
            detector=TimedDetector(detector, timer),
            tracking=TrackingSettings.for_clip(src.frame_count),
            crop_size=crop_size,
            **display_geometry(src.metadata),
        )


def load_tracks_file(path: Path, src: MediaSource, timer: StageTimer, *, check_digest: bool) -> Tracks:
    """A user's tracks file, checked to belong to `src` (size, frame count, and digest unless told not to)."""
    tracks = Tracks.load(path)
    if (tracks.width, tracks.height) != (src.width, src.height):
        raise InputError(
            f"{path} was made for {tracks.width}x{tracks.height} frames but {src.path.name} is "
            f"{src.width}x{src.height}; run `dvface track` on this input to make its tracks file"
        )
    if tracks.frame_count != src.frame_count:
        raise InputError(
            f"{path} covers {tracks.frame_count} frames but {src.path.name} has {src.frame_count}; "
            "run `dvface track` on this input to make its tracks file"
        )
    if check_digest:
        digest, count = input_digest(src, timer)
        if digest != tracks.input_sha256 or count != tracks.frame_count:
            raise InputError(
                f"{path} was made from other frames than {src.path.name} (its input digest differs); "
                "run `dvface track` on this input, or pass --force-tracks if the pixels changed on "
                "purpose (e.g. a regrade) and the faces have not moved"
            )
    return tracks


def obtain_tracks(
    src: MediaSource,
    timer: StageTimer,
    crop_size: int,
    *,
    tracks_file: Path | None = None,
    check_digest: bool = True,
    cache_dir: Path | None = None,
    detector_factory: Callable[[], FaceDetector] = CenterFaceDetector,
    progress: Callable[[Iterator[np.ndarray], str], Iterator[np.ndarray]] | None = None,
) -> TrackSource:
    """Tracks for `src`: from `tracks_file`, else a cache hit in `cache_dir`, else a new analysis."""
    if tracks_file is not None:
        return TrackSource(load_tracks_file(tracks_file, src, timer, check_digest=check_digest), "file")
    detector = detector_factory()
    settings = analysis_settings(detector, TrackingSettings.for_clip(src.frame_count), crop_size=crop_size,
                                 **display_geometry(src.metadata))
    cached_path = cache_file(cache_dir, src, settings) if cache_dir is not None else None
    if cached_path is not None and cached_path.is_file():
        try:
            cached = Tracks.load(cached_path)
        except InputError:
            cached = None  # a damaged cache entry is simply recomputed
        if cached is not None and cached.is_for(input_digest(src, timer)[0], settings):
            return TrackSource(cached, "cache", cached_path)
    tracks = run_analysis(src, detector, timer, crop_size, progress)
    if cached_path is not None:
        try:
            cached_path.parent.mkdir(parents=True, exist_ok=True)
            tracks.save(cached_path)
        except OSError as exc:
            print(f"dvface: warning: cannot cache face tracks in {cached_path.parent}: {exc}", file=sys.stderr)
            cached_path = None
    return TrackSource(tracks, "analysis", cached_path)
